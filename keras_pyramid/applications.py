"""Named PyramidNet builders in keras.applications style, and the model registry.

Both are generated from `presets.ARCHITECTURES`, the one table of
configurations: each is registered plain and with every regularizer, under
`default_name` (e.g. "pyramidnet272_a200_sepdrop",
"pyramidnet200_a300_imagenet_shakedrop", "pyramidnet110_a8_multiplicative").

    >>> model = build("pyramidnet272_a200_sepdrop", classes=100)
    >>> model = PyramidNet272SepDrop(classes=100)   # the same network
"""

from keras_pyramid.models.pyramidnet import VARIANTS, PyramidNet, trained_weights_entry
from keras_pyramid.models.presets import ARCHITECTURES, REGULARIZED, default_name


def _presets():
    presets = {}
    for architecture in ARCHITECTURES:
        for regularization in (None,) + REGULARIZED:
            presets[architecture.name(regularization)] = {
                **architecture.arguments(),
                "regularization": regularization,
                "params": architecture.parameters,
                "paper_error": architecture.paper_errors.get(regularization),
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


def build(name, **overrides):
    """Builds a registered model by name; `None` overrides fall through to defaults.

    Example: `build("pyramidnet110_a48_sepdrop", classes=100, drop_rate=None)`
    is `PyramidNet(110, 48, regularization="sepdrop", classes=100)`.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown model name. Received: name={name!r}. "
            f"Valid names: {', '.join(list_models())}"
        )
    arguments = {key: PRESETS[name][key] for key in ARCHITECTURE_KEYS}
    arguments["name"] = name
    arguments.update({k: v for k, v in overrides.items() if v is not None})
    depth = arguments.pop("depth")
    alpha = arguments.pop("alpha")
    bottleneck = arguments.pop("bottleneck")
    return PyramidNet(depth, alpha, bottleneck, **arguments)


def trained_weights(name, tag):
    """The `presets.TrainedWeights` of registered model `name` (any
    regularization) for dataset `tag`; a ValueError lists those that exist."""
    if name not in PRESETS:
        build(name)  # its ValueError lists the valid names
    preset = PRESETS[name]
    _, entry = trained_weights_entry(preset["depth"], preset["alpha"], preset["bottleneck"],
                                     preset["variant"], preset["widening"], tag)
    return entry


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
__all__ = ["ARCHITECTURES", "NAMED_BUILDERS", "PRESETS", "build", "list_models",
           *NAMED_BUILDERS]
