"""Fine-tuning: a freshly built network starts from trained weights of another task.

The weights (`assign.weights_kind`) are a dataset tag of the trained weights
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

import os
import warnings

import keras

from keras_pyramid import applications
from keras_pyramid.models.init import built_shapes_first
from keras_pyramid.models.pyramidnet import normalization_statistics
from keras_pyramid.training.run_layout import MODEL_FILE
from keras_pyramid.utils.checks import fail
from keras_pyramid.weights import cache, convert
from keras_pyramid.weights.assign import (
    HEAD,
    WeightsMismatch,
    assign_by_name,
    refused,
    weighted_layers,
    weights_kind,
)
from keras_pyramid.weights.files import WeightsMisfit, load_keras_file, load_weights_file

__all__ = ["build_optimizer", "load_backbone", "set_backbone_trainable", "weights_statistics"]


def _source_kind(weights):
    """`weights_kind`, refusing None: fine-tuning starts from some weights."""
    kind = weights_kind(weights)
    if kind is None:
        fail("weights", "be a dataset tag, a .keras or .weights.h5 file, or a training run "
                        "directory to fine-tune from", weights)
    return kind


def _trained(model_name, tag):
    """The configuration and `TrainedWeights` of `tag` for registered `model_name`."""
    if model_name is None:
        fail("weights", "come with the registered `model_name` whose trained weights a "
                        "dataset tag names (a model built from hyperparameters has none)",
             tag)
    return applications.trained_weights(model_name, tag, with_architecture=True)


def _source(model_name, weights, kind):
    """What the weights come as: a tag's converted tensors (by layer name,
    no model built), or the model of a `.keras` file or run directory."""
    if kind == "tag":
        return convert.read_tensors(cache.converted_weights(*_trained(model_name, weights)))
    return load_keras_file(os.path.join(weights, MODEL_FILE) if kind == "run" else weights)


def weights_statistics(model_name, weights):
    """The (mean, std), 0-255 scale, that `weights` were trained with: the
    entry's for a tag, the source model's input normalization for a `.keras`
    file or a run directory, (None, None) for a `.weights.h5` (it does not
    say) or a source without normalization. Build the new model with them,
    so that raw pixels mean what they meant in training."""
    kind = _source_kind(weights)
    if kind == "weights.h5":
        return None, None
    if kind == "tag":
        _, entry = _trained(model_name, weights)
        mean, std = entry.mean, entry.std
    else:
        mean, std = normalization_statistics(_source(model_name, weights, kind))
    if mean is None:
        return None, None
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _weights_file_model(model, weights):
    """A copy of `model` holding a `.weights.h5` loaded with Keras'
    `load_weights`, or its backbone (up to `head_relu`) when the file's
    classifier does not fit. The file holds no architecture: it must be of
    `model`'s layer structure. A file that is no weights file at all is
    refused at once (`files.UnloadableFile`, naming it)."""
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
                return load_weights_file(candidate, weights)
        except WeightsMisfit as error:  # a shape or structure misfit: try the backbone
            reason = error.reason
    fail("weights", f"fit {model.name} ({reason})", weights)


def load_backbone(model, model_name, weights):
    """Copies trained weights into a freshly built `model`, by layer name
    (`assign.assign_by_name`, all or nothing).

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
    kind = _source_kind(weights)
    if kind == "weights.h5":
        source = _weights_file_model(model, weights)
    else:
        source = _source(model_name, weights, kind)
    try:
        copied = assign_by_name(source, model, head="replace")
    except WeightsMismatch as error:
        raise refused(weights, error) from None
    return {"source": os.fspath(weights), "kind": kind, **copied}


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
    import jax.numpy as jnp  # the JAX backend's own: only imported under it

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
