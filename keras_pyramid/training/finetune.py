"""Fine-tuning: a freshly built network starts from trained weights of another task.

The weights (`weights_kind`) are a dataset tag of the trained weights
("cifar10", "cifar100", "svhn", "imagenet"), a `.keras` file, a `.weights.h5`
file, or a training run directory (its `model.keras`). Build the new model
with the preprocessing the weights were trained with, then copy them in:

    mean, std = finetune.weights_statistics(name, weights)
    model = keras_pyramid.build(name, classes=5, mean=mean, std=std, input_shape=...)
    finetune.load_backbone(model, name, weights)   # a new 5-class head

Two phases, ONE optimizer. The classifier first learns on the frozen
backbone, then everything trains (`recipe.finetune_recipe`'s
`frozen_epochs()`). One optimizer, built over every variable before
freezing, serves both phases, so its step counter and learning-rate schedule
run on across the switch and a checkpoint written in either phase restores
in either phase (the model's and the optimizer's variables are the same in
both; only which of them train changes):

    optimizer = finetune.build_optimizer(model, recipe.make_optimizer(plan, steps))
    finetune.set_backbone_trainable(model, False)
    model.compile(optimizer, loss, metrics)          # head phase
    model.fit(data, epochs=plan.frozen_epochs(), ...)
    finetune.set_backbone_trainable(model, True)
    model.compile(optimizer, loss, metrics)          # the same optimizer object
    model.fit(data, initial_epoch=plan.frozen_epochs(), epochs=plan.epochs, ...)

Compiling again after each switch is what makes Keras train the new set of
variables (Keras reads them when it compiles its train step); a run resumed
in either phase freezes (or not), compiles, then loads its checkpoint.
`build_optimizer` is `optimizer.build(model.trainable_variables)` plus what
the JAX backend needs (see `_on_trainable_subset`).
"""

import json
import os
import warnings
import zipfile

import keras

from keras_pyramid.models import presets

HEAD = "predictions"
RUN_MODEL = "model.keras"  # what a training run directory holds at its end


def _invalid(reason, weights):
    return ValueError(f"`weights` {reason}. Received: weights={weights!r}")


def weights_kind(weights):
    """"tag", "keras", "weights.h5" or "run" (a directory holding model.keras);
    a one-line ValueError for anything else."""
    if isinstance(weights, str) and weights in presets.DATASET_TAGS:
        return "tag"
    expected = (f"must be a dataset tag {tuple(presets.DATASET_TAGS)}, a .keras or "
                ".weights.h5 file, or a training run directory")
    if not isinstance(weights, (str, os.PathLike)):
        raise _invalid(expected, weights)
    path = os.fspath(weights)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, RUN_MODEL)):
            return "run"
        raise _invalid(f"is a directory without {RUN_MODEL} (not a finished training run)",
                       weights)
    for kind in ("keras", "weights.h5"):
        if path.endswith("." + kind):
            if not os.path.isfile(path):
                raise _invalid("file does not exist", weights)
            return kind
    raise _invalid(expected, weights)


def _trained(model_name, tag):
    """The configuration and `TrainedWeights` of `tag` for registered `model_name`."""
    from keras_pyramid.applications import trained_weights

    if model_name is None:
        raise ValueError(
            "A dataset tag needs the registered `model_name` whose trained weights it "
            f"names (a model built from hyperparameters has none). Received: weights={tag!r}"
        )
    entry = trained_weights(model_name, tag)
    return next(a for a in presets.ARCHITECTURES if entry in a.weights), entry


def _source_model(model_name, weights, kind):
    """The model the weights come in (for a tag, its configuration's plain
    model with the converted file loaded)."""
    if kind == "tag":
        from keras_pyramid.weights.cache import converted_weights, plain_model

        architecture, entry = _trained(model_name, weights)
        source = plain_model(architecture, entry)
        source.load_weights(converted_weights(architecture, entry))
        return source
    return load_keras_file(os.path.join(weights, RUN_MODEL) if kind == "run" else weights)


def load_keras_file(path):
    """`keras.saving.load_model(path, compile=False)`, its variables created
    shapes first: the file's values replace them, so no initializer needs to
    run (under JAX each compiles an XLA program per weight shape: measured
    here, 0.7 s instead of 72 s for PyramidNet-20 on a shared 2-core CPU)."""
    from keras_pyramid.models.pyramidnet import built_shapes_first

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    config["compile_config"] = None  # what compile=False does
    model = built_shapes_first(keras.saving.deserialize_keras_object, config)
    model.load_weights(path)  # Keras reads the weights inside a .keras archive
    return model


def weights_statistics(model_name, weights):
    """The (mean, std), 0-255 scale, that `weights` were trained with: the
    entry's for a tag, the source model's input normalization for a `.keras`
    file or a run directory, (None, None) for a `.weights.h5` (it does not
    say) or a source without normalization. Build the new model with them,
    so that raw pixels mean what they meant in training."""
    from keras_pyramid.models.pyramidnet import normalization_statistics

    kind = weights_kind(weights)
    if kind == "weights.h5":
        return None, None
    if kind == "tag":
        _, entry = _trained(model_name, weights)
        mean, std = entry.mean, entry.std
    else:
        mean, std = normalization_statistics(_source_model(model_name, weights, kind))
    if mean is None:
        return None, None
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _weights_file_model(model, weights):
    """A copy of `model` holding a `.weights.h5` loaded with Keras'
    `load_weights`, or its backbone (up to `head_relu`) when the file's
    classifier does not fit. The file holds no architecture: it must be of
    `model`'s layer structure, and Keras' message says where it is not."""
    from keras_pyramid.models.pyramidnet import built_shapes_first

    source = built_shapes_first(keras.models.clone_model, model)  # `model` stays as it is
    candidates = [source]
    if HEAD in [layer.name for layer in source.layers]:
        candidates.append(keras.Model(source.inputs, source.get_layer("head_relu").output))
    for candidate in candidates:
        try:
            with warnings.catch_warnings():
                # The backbone view has a container the file does not: Keras
                # says so, though every layer of the view loads (tested).
                warnings.filterwarnings("ignore", message="Skipping nested container")
                candidate.load_weights(weights)
            return candidate
        except ValueError as error:  # Keras' load_weights: a shape or structure misfit
            reason = str(error).strip().splitlines()[0]
    raise _invalid(f"does not fit {model.name} ({reason})", weights)


def _copy_by_name(source, model, weights):
    """Copies the conv, BatchNorm and dense weights of `source` into `model`
    by layer name, all or nothing; the classifier only where its shapes
    match. Returns ("copied" | "replaced" | "absent", layers copied)."""
    from keras_pyramid.weights.convert import weighted_layers

    available = {layer.name: layer for layer in weighted_layers(source)}
    head, pairs = "absent", []
    for layer in weighted_layers(model):
        origin = available.pop(layer.name, None)
        shapes = [tuple(w.shape) for w in layer.weights]
        origin_shapes = None if origin is None else [tuple(w.shape) for w in origin.weights]
        if layer.name == HEAD:
            head = "copied" if shapes == origin_shapes else "replaced"
            if head == "replaced":
                continue  # the new task's classifier keeps its fresh initialization
        elif origin is None:
            raise _invalid(f"is of another architecture: it has no layer {layer.name!r} "
                           f"({shapes} in {model.name})", weights)
        elif shapes != origin_shapes:
            raise _invalid(f"is of another architecture: layer {layer.name!r} is {shapes} in "
                           f"{model.name}, {origin_shapes} in the source", weights)
        pairs.append((layer, origin))
    extra = [name for name in available if name != HEAD]
    if extra:
        raise _invalid(f"is of another architecture: it has layers {model.name} lacks, "
                       f"e.g. {extra[0]!r}", weights)
    for layer, origin in pairs:
        layer.set_weights(origin.get_weights())
    return head, len(pairs)


def load_backbone(model, model_name, weights):
    """Copies trained weights into a freshly built `model`, by layer name.

    Every conv, BatchNorm and dense weight of the source goes into the layer
    of the same name; the classifier (`predictions`) only where its shape
    matches, else it keeps its fresh initialization ("replaced"). Any
    regularization of the configuration takes them (regularizers have no
    weights), at any input size (convs do not depend on it), with or without
    `skip_dropped`. The input normalization is not touched: build `model`
    with `weights_statistics`.

    Args:
        model: the new network (a `keras_pyramid` PyramidNet).
        model_name: the registered name `model` was built as (e.g.
            "pyramidnet110_a48_sepdrop"): a tag's weights are those of its
            configuration. None for a model built from hyperparameters,
            which takes files and run directories only.
        weights: a dataset tag, a `.keras` file, a `.weights.h5` file (of
            `model`'s layer structure, any classifier) or a run directory.

    Returns:
        {"source": weights, "kind": weights_kind(weights), "head": "copied",
        "replaced" or "absent" (a model without classifier), "layers": the
        number of layers copied}.

    Raises:
        ValueError, one line, naming `weights` and, for a source of another
        architecture, the first layer that does not fit, with both shapes.
        `model` is unchanged then.
    """
    kind = weights_kind(weights)
    if kind == "weights.h5":
        source = _weights_file_model(model, weights)
    else:
        source = _source_model(model_name, weights, kind)
    head, layers = _copy_by_name(source, model, weights)
    return {"source": os.fspath(weights), "kind": kind, "head": head, "layers": layers}


def _set_trainable(container, trainable):
    """Sets every layer of `container` but the classifier; True if it holds one."""
    holds_head = False
    for layer in container.layers:
        if layer.name == HEAD:
            layer.trainable = holds_head = True
        elif isinstance(layer, keras.Model):
            # A model inside the trained one (`resident.with_augmentation`):
            # it stays trainable itself, its layers are set one by one.
            layer.trainable = True
            holds_head = _set_trainable(layer, trainable) or holds_head
        else:
            layer.trainable = trainable
    return holds_head


def set_backbone_trainable(model, trainable):
    """Freezes (False) or unfreezes (True) every layer of `model` but the
    classifier `predictions`, which stays trainable.

    A frozen BatchNormalization runs in inference mode in Keras 3 (its
    moving statistics are used and not updated, as Keras' transfer-learning
    guide says); the regularizers' gates keep drawing (only BatchNorm reads
    `trainable`). The model's variables, their order and so its checkpoint
    layout do not change, nor do the optimizer's (see `build_optimizer`).
    Compile again after calling this: Keras reads the trainable variables
    when it compiles.
    """
    if not _set_trainable(model, bool(trainable)) and not trainable:
        raise ValueError(f"`model` has no layer {HEAD!r} to train on a frozen backbone. "
                         f"Received: model={model.name!r}")
    return model


def build_optimizer(model, optimizer):
    """Builds `optimizer` over every trainable variable of `model`, before
    any is frozen, so that it serves both phases (see the module doc), on
    every backend. Returns it.

    TensorFlow and PyTorch apply a built optimizer to any subset of its
    variables; JAX needs `_on_trainable_subset`. The optimizer's variables
    are created here: under a distribution, call it inside its scope.
    """
    if optimizer.built:
        raise ValueError("`optimizer` must not be built yet (it is built here, over every "
                         f"variable of the model). Received: optimizer={optimizer!r}")
    from keras_pyramid.weights.convert import weighted_layers

    frozen = [layer.name for layer in weighted_layers(model) if not layer.trainable]
    if frozen:
        raise ValueError(f"`model` must not be frozen yet (build the optimizer first): "
                         f"layer {frozen[0]!r} is. Received: model={model.name!r}")
    optimizer.build(model.trainable_variables)
    if keras.backend.backend() == "jax":
        # A LossScaleOptimizer (mixed float16) hands the update to its inner one.
        _on_trainable_subset(getattr(optimizer, "inner_optimizer", optimizer),
                             list(model.trainable_variables))
    return optimizer


def _on_trainable_subset(optimizer, variables):
    """Lets `optimizer`, built over `variables`, update the trainable subset
    of them under Keras' JAX trainer.

    That trainer passes `optimizer.stateless_apply` the values of the
    model's CURRENTLY trainable variables only, and Keras'
    `BaseOptimizer.stateless_apply` refuses any list but the one it was built
    with ("must be a list of tensors corresponding 1:1 ..."; the trainer's
    "TODO: respect compiled trainable state", keras/src/backend/jax/
    trainer.py, Keras 3.15; TensorFlow and PyTorch call `apply`, which takes
    subsets). So this instance's `stateless_apply` widens the subset to the
    full list: the frozen variables get no gradient (None, which `apply`
    skips, so their momentum and values stay) and a placeholder value that
    nothing reads, and only the subset's new values go back. EMA (which
    would average the placeholders) is refused.
    """
    import jax.numpy as jnp

    if optimizer.use_ema:
        raise ValueError("`optimizer` with use_ema=True cannot update a frozen backbone's "
                         "subset under JAX. Received: optimizer.use_ema=True")
    full_apply = optimizer.stateless_apply

    def stateless_apply(optimizer_variables, grads, trainable_variables):
        if len(trainable_variables) == len(variables):
            return full_apply(optimizer_variables, grads, trainable_variables)
        positions = [i for i, variable in enumerate(variables) if variable.trainable]
        if [tuple(variables[i].shape) for i in positions] != [
                tuple(value.shape) for value in trainable_variables]:
            raise ValueError("the model's trainable variables are not a subset of those "
                             "`optimizer` was built with (see finetune.build_optimizer)")
        all_grads = [None] * len(variables)
        all_values = [jnp.zeros(v.shape, v.dtype) for v in variables]
        for position, grad, value in zip(positions, grads, trainable_variables):
            all_grads[position], all_values[position] = grad, value
        with warnings.catch_warnings():  # "Gradients do not exist for ...": frozen
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            new_values, optimizer_variables = full_apply(optimizer_variables, all_grads,
                                                         all_values)
        return [new_values[i] for i in positions], optimizer_variables

    optimizer.stateless_apply = stateless_apply
