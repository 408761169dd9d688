"""The public builder, the named builders in keras.applications style, and the registry.

`PyramidNet` is the generic builder of `models.pyramidnet` with its
`weights`: a dataset tag is looked up here (`trained_weights`), its file
fetched and converted by `weights.cache`, and its tensors assigned by name
(`weights.assign`), the way keras.applications composes `get_file` and
`load_weights`. The registry and the named builders are generated from
`presets.ARCHITECTURES`, the one table of configurations: each is registered
plain and with every regularizer, under `default_name` (e.g.
"pyramidnet272_a200_sepdrop", "pyramidnet200_a300_imagenet_shakedrop",
"pyramidnet110_a8_multiplicative").

    >>> model = build("pyramidnet272_a200_sepdrop", classes=100)
    >>> model = PyramidNet272SepDrop(classes=100)   # the same network
"""

import difflib
import os

import keras

from keras_pyramid.models import presets, pyramidnet
from keras_pyramid.models.init import built_shapes_first
from keras_pyramid.models.plan import CLASSIFIER
from keras_pyramid.models.presets import ARCHITECTURES, VARIANTS, default_name
from keras_pyramid.models.pyramidnet import check_input_shape, input_channels
from keras_pyramid.models.regularizers import REGULARIZED
from keras_pyramid.training.run_layout import MODEL_FILE
from keras_pyramid.utils.checks import fail
from keras_pyramid.weights import cache, convert
from keras_pyramid.weights.assign import (
    WeightsMismatch,
    assign_by_name,
    refused,
    weights_kind,
)
from keras_pyramid.weights.files import load_keras_file, load_weights_file


def find_trained_weights(depth, alpha, bottleneck, variant, widening, tag):
    """The `presets.Architecture` of a configuration and its `TrainedWeights`
    for dataset `tag`, or a ValueError saying which configurations and tags
    have weights. The one lookup of trained weights."""
    name = default_name(depth, alpha, None, variant, widening)
    for architecture in presets.ARCHITECTURES:  # read now: tests and benchmarks swap it
        if (architecture.name() == name and architecture.bottleneck == bottleneck
                and architecture.weights):
            return architecture, architecture.weights_for(tag)
    with_weights = sorted(a.name() for a in presets.ARCHITECTURES if a.weights)
    raise ValueError(
        f"No trained weights for {name}{' (bottleneck)' if bottleneck else ''}; these "
        f"configurations have some: {', '.join(with_weights)}. Received: weights={tag!r}"
    )


def _trained_source(depth, alpha, bottleneck, arguments, tag):
    """(the converted tensors' loader, classes, mean, std) of a dataset tag."""
    architecture, entry = find_trained_weights(
        depth, alpha, bottleneck, arguments.get("variant", "cifar"),
        arguments.get("widening", "additive"), tag)
    check_rgb_input(arguments, tag)
    classes = arguments.get("classes")
    if arguments.get("include_top", True) and classes not in (None, entry.classes):
        fail("classes", f"be {entry.classes} (or None) with `weights={tag!r}` and "
                        "`include_top=True`; use include_top=False for a new head", classes)

    def tensors():
        return convert.read_tensors(cache.converted_weights(architecture, entry))

    return tensors, entry.classes, entry.mean, entry.std


def check_rgb_input(arguments, tag):
    """Trained weights take 3 (RGB) channels: their stem's kernel is 3 deep."""
    input_shape = arguments.get("input_shape")
    if input_shape is None and arguments.get("input_tensor") is not None:
        input_shape = tuple(arguments["input_tensor"].shape[1:])
    if input_shape is None:
        return
    data_format = keras.config.image_data_format()
    variant = arguments.get("variant", "cifar")
    if input_channels(check_input_shape(input_shape, data_format, variant), data_format) != 3:
        fail("input_shape", f"have 3 (RGB) channels with `weights={tag!r}` (the trained stem "
                            "takes RGB)", input_shape)


def _keras_source(path):
    """(the source model's loader, classes, mean, std) of a `.keras` file:
    weights mean what they mean only with the preprocessing they were
    trained with, so it comes along unless given."""
    source = load_keras_file(path)
    mean, std = pyramidnet.normalization_statistics(source)
    names = [layer.name for layer in source.layers]
    classes = source.get_layer(CLASSIFIER).units if CLASSIFIER in names else None
    return (lambda: source), classes, mean, std


def resolve_weights(weights, depth, alpha, bottleneck, arguments):
    """(kind, loader, defaults): what `weights` are, a function returning
    their source for `assign_by_name` (None for a `.weights.h5`, which Keras
    loads), and the classes, mean and std they bring where not given."""
    kind = weights_kind(weights)
    if kind is None or kind == "weights.h5":
        return kind, None, {}
    if kind == "tag":
        loader, *facts = _trained_source(depth, alpha, bottleneck, arguments, weights)
    else:
        path = os.path.join(weights, MODEL_FILE) if kind == "run" else weights
        loader, *facts = _keras_source(path)
    brought = dict(zip(("classes", "mean", "std"), facts))
    return kind, loader, {key: value if arguments.get(key) is None else arguments[key]
                          for key, value in brought.items()}


def PyramidNet(depth, alpha, bottleneck=False, *, weights=None, **arguments):
    """Builds a PyramidNet with `weights`; every other argument is
    `keras_pyramid.models.pyramidnet.PyramidNet`'s (see its Args).

    Args:
        weights: None (random init); a dataset tag ("cifar10", "cifar100",
            "svhn", "imagenet") for the configuration's trained weights (see
            `presets`; fetched and converted once, then cached under
            KERAS_HOME), which also set `classes` (another value with
            `include_top=True` is a ValueError, as in keras.applications) and
            the preprocessing they were trained with; the path to a
            `.weights.h5` file (Keras' `load_weights`, same layer structure);
            or the path to a `.keras` file or a training run directory, whose
            conv, BatchNorm and dense weights are copied by layer name (e.g.
            from another regularization; the classifier only with
            `include_top=True`), with its classes and preprocessing unless
            given.

    Returns:
        A `keras.Model`.
    """
    kind, loader, defaults = resolve_weights(weights, depth, alpha, bottleneck, arguments)
    if kind is None:
        return pyramidnet.PyramidNet(depth, alpha, bottleneck, **arguments)
    # The initial values are overwritten: no Keras initializer needs to run
    # (under JAX each compiles an XLA program per weight shape).
    model = built_shapes_first(pyramidnet.PyramidNet, depth, alpha, bottleneck,
                               **{**arguments, **defaults})
    if loader is None:
        return load_weights_file(model, weights)  # one line naming the file, if it fails
    try:
        assign_by_name(loader(), model)
    except WeightsMismatch as error:
        raise refused(weights, error) from None
    return model


def _presets():
    presets = {}
    for architecture in ARCHITECTURES:
        for regularization in (None,) + REGULARIZED:
            presets[architecture.name(regularization)] = {
                **architecture.arguments(),
                "regularization": regularization,
                "params": architecture.parameters,
                # Regularizers have no weights: every variant takes the plain ones.
                "weights": tuple(entry.dataset for entry in architecture.weights),
            }
    return presets


PRESETS = _presets()
ARCHITECTURE_KEYS = ("depth", "alpha", "bottleneck", "variant", "widening", "head_dropout",
                     "regularization")


def list_models(variant=None, pretrained=False):
    """The registered model names, sorted; only those of `variant` ("cifar"
    or "imagenet") when given, and only those with trained weights (for
    `weights=TAG`; `PRESETS[name]["weights"]` lists the tags) when
    `pretrained`."""
    variants = {preset["variant"] for preset in PRESETS.values()}
    if variant is not None and variant not in variants:
        raise ValueError(
            f"`variant` must be None or one of {tuple(sorted(variants))}. "
            f"Received: variant={variant!r}"
        )
    return sorted(name for name, preset in PRESETS.items()
                  if (variant is None or preset["variant"] == variant)
                  and (preset["weights"] or not pretrained))


def check_model_name(name):
    """`name` if registered, else a ValueError naming the closest registered
    names (`difflib.get_close_matches`: similarity >= 0.6, at most 3)."""
    if isinstance(name, str) and name in PRESETS:
        return name
    close = [repr(match) for match in difflib.get_close_matches(str(name), PRESETS, n=3)]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    fail("name", f"be a registered model name{hint}; `keras_pyramid.list_models()` lists "
                 "them", name)


def build(name, **overrides):
    """Builds a registered model by name; every keyword given overrides the
    registered configuration as given (None too: `classifier_activation=None`
    gives logits, `regularization=None` the plain network), keywords not given
    keep the registered or builder defaults.

    Example: `build("pyramidnet110_a48_sepdrop", classes=100, drop_rate=None)`
    is `PyramidNet(110, 48, regularization="sepdrop", classes=100)` (the
    builder reads `drop_rate=None` as its default, 0.5).
    """
    arguments = {key: PRESETS[check_model_name(name)][key] for key in ARCHITECTURE_KEYS}
    arguments["name"] = name
    arguments.update(overrides)
    depth = arguments.pop("depth")
    alpha = arguments.pop("alpha")
    bottleneck = arguments.pop("bottleneck")
    return PyramidNet(depth, alpha, bottleneck, **arguments)


def trained_weights(name, tag, with_architecture=False):
    """The `presets.TrainedWeights` of registered model `name` (any
    regularization) for dataset `tag` (with its `presets.Architecture`
    first, `with_architecture`); a ValueError lists those that exist."""
    preset = PRESETS[check_model_name(name)]
    found = find_trained_weights(preset["depth"], preset["alpha"], preset["bottleneck"],
                                 preset["variant"], preset["widening"], tag)
    return found if with_architecture else found[1]


BASE_DOCSTRING = """Instantiates the {title} architecture{extra}.

Reference: Han, Kim, Kim, "Deep Pyramidal Residual Networks" (CVPR 2017){reference}.
{depth} layers, {kind} units, {variant} variant, {widening} widening, alpha {alpha} by
default ({alpha_meaning}).

Args:
    alpha: number > 0 (default {alpha}).
    include_top: whether to include the classifier.
    weights: None (random init), a dataset tag of the trained weights
        ({tags}), or the path to a `.weights.h5` or `.keras` file.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple, default ({size}, {size}, 3).
    pooling: None, "avg" or "max" when `include_top=False`.
    classes: number of classes; None: the weights' (with a tag), else {classes}.
    classifier_activation: activation of the top layer; None for logits.
    name: the model's name.
    **kwargs: any other keyword of `keras_pyramid.models.pyramidnet.PyramidNet`
        (`drop_rate`, `include_preprocessing`, `seed`, `granularity`,
        `weight_decay`, `skip_dropped`, `head_dropout`: by default the
        registered configuration's, e.g. 0.5 for ImageNet 200 alpha 450).

Returns:
    A `keras.Model` instance.
"""

_REGULARIZER_TITLES = {
    None: ("", "", ""),
    "drop": ("Drop", " with naive stochastic depth (PyramidDrop)", "; Huang et al., ECCV 2016"),
    "sepdrop": ("SepDrop", " with separated stochastic depth (PyramidSepDrop)",
                "; Yamada, Iwamura, Kise, arXiv 1612.01230"),
    "shakedrop": ("ShakeDrop", " with ShakeDrop",
                  "; Yamada, Iwamura, Akiba, Kise, IEEE Access 2019"),
}
_VARIANT_TITLES = {"cifar": "", "imagenet": "ImageNet"}
_WIDENING_TITLES = {"additive": "", "multiplicative": "Multiplicative"}


def _head_dropout(depth, alpha, variant, widening):
    """The registered configuration's head dropout, 0 for an unregistered alpha."""
    name = default_name(depth, alpha, None, variant, widening)
    return PRESETS[name]["head_dropout"] if name in PRESETS else 0.0


def _named_builder(architecture, regularization):
    depth, bottleneck = architecture.depth, architecture.bottleneck
    variant, widening = architecture.variant, architecture.widening
    suffix, extra, reference = _REGULARIZER_TITLES[regularization]
    title = (f"PyramidNet{depth}{_VARIANT_TITLES[variant]}{_WIDENING_TITLES[widening]}"
             f"{suffix}")
    default_classes = VARIANTS[variant].classes

    def builder(
        alpha=architecture.alpha,
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=None,
        classifier_activation="softmax",
        name=None,
        **kwargs,
    ):
        kwargs.setdefault("head_dropout", _head_dropout(depth, alpha, variant, widening))
        return PyramidNet(
            depth,
            alpha,
            bottleneck,
            variant=variant,
            widening=widening,
            regularization=regularization,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            **kwargs,
        )

    builder.__name__ = builder.__qualname__ = title
    builder.__doc__ = BASE_DOCSTRING.format(
        title=title,
        extra=extra,
        reference=reference,
        depth=depth,
        kind="bottleneck" if bottleneck else "basic",
        variant=variant,
        widening=widening,
        alpha=f"{architecture.alpha:g}",
        alpha_meaning=("the total widening" if widening == "additive"
                       else "the last width over the stem's"),
        size=VARIANTS[variant].design_size,
        classes=default_classes,
        tags=", ".join(repr(w.dataset) for w in architecture.weights) or "none for this "
        "configuration's default alpha",
    )
    return builder


def _named_builders():
    """One builder per architecture marked `builder_default`, for the plain
    network ("plain") and each regularizer ("regularized")."""
    builders = {}
    for architecture in ARCHITECTURES:
        kinds = []
        if "plain" in architecture.builder_default:
            kinds.append(None)
        if "regularized" in architecture.builder_default:
            kinds.extend(REGULARIZED)
        for regularization in kinds:
            builder = _named_builder(architecture, regularization)
            builders[builder.__name__] = builder
    return builders


NAMED_BUILDERS = _named_builders()
globals().update(NAMED_BUILDERS)  # PyramidNet110, PyramidNet272SepDrop, ...
__all__ = ["ARCHITECTURES", "NAMED_BUILDERS", "PRESETS", "build", "check_model_name",
           "list_models", *NAMED_BUILDERS]
