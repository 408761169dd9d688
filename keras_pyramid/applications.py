"""Named PyramidNet builders in keras.applications style, and the model registry.

The paper configurations and their exact trainable parameter counts live in
one table, `PRESETS`; every named builder and registry name is derived from it.

    >>> model = build("pyramidnet272_a200_sepdrop", classes=100)
    >>> model = PyramidNet272SepDrop(classes=100)   # the same network
"""

from keras_pyramid.models import PyramidNet, default_name

# (depth, alpha, bottleneck) -> trainable parameters for (CIFAR-10, CIFAR-100),
# from SPEC section 1 (round-half-up widths, the official code). None: the
# configuration is not in the papers' tables (kept for quick experiments).
PAPER_CONFIGS = {
    (20, 48, False): None,
    (110, 48, False): (1_772_706, 1_778_556),
    (110, 84, False): (3_904_446, 3_913_536),
    (110, 270, False): (28_485_477, 28_511_307),
    (164, 48, True): (1_715_442, 1_738_572),
    (164, 84, True): (3_757_494, 3_793_584),
    (164, 270, True): (27_216_021, 27_319_071),
    (200, 240, True): (26_752_702, 26_844_952),
    (236, 220, True): (26_969_046, 27_054_096),
    (272, 200, True): (26_210_842, 26_288_692),
}

# Published error rates (%), CIFAR-10 / CIFAR-100, 300 epochs (SPEC section 1).
PAPER_ERRORS = {
    (110, 48, None): (4.62, 23.31),
    (110, 84, None): (4.27, 20.21),
    (110, 270, None): (3.73, 18.25),
    (164, 270, None): (3.48, 17.01),
    (200, 240, None): (3.44, 16.51),
    (236, 220, None): (3.40, 16.37),
    (272, 200, None): (3.31, 16.35),
    (110, 270, "sepdrop"): (None, 16.18),
    (110, 270, "shakedrop"): (None, 15.78),
}

REGULARIZED = ("drop", "sepdrop", "shakedrop")


def _presets():
    presets = {}
    for (depth, alpha, bottleneck), params in PAPER_CONFIGS.items():
        for regularization in (None,) + REGULARIZED:
            presets[default_name(depth, alpha, regularization)] = {
                "depth": depth,
                "alpha": alpha,
                "bottleneck": bottleneck,
                "regularization": regularization,
                "params": params,
                "paper_error": PAPER_ERRORS.get((depth, alpha, regularization)),
            }
    return presets


PRESETS = _presets()
ARCHITECTURE_KEYS = ("depth", "alpha", "bottleneck", "regularization")


def list_models():
    """The registered model names, sorted."""
    return sorted(PRESETS)


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


BASE_DOCSTRING = """Instantiates the {title} architecture{extra}.

Reference: Han, Kim, Kim, "Deep Pyramidal Residual Networks" (CVPR 2017){reference}.
{depth} layers, {kind} units, alpha {alpha} by default (the total widening).

Args:
    alpha: number > 0, the total widening (default {alpha}).
    include_top: whether to include the classifier.
    weights: None (random init) or the path to a `.weights.h5` file.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple, default (32, 32, 3).
    pooling: None, "avg" or "max" when `include_top=False`.
    classes: number of classes (default 10).
    classifier_activation: activation of the top layer; None for logits.
    name: the model's name.
    **kwargs: any other keyword of `keras_pyramid.models.PyramidNet`
        (`drop_rate`, `include_preprocessing`, `seed`, `granularity`,
        `weight_decay`).

Returns:
    A `keras.Model` instance.
"""

_TITLES = {
    None: ("PyramidNet{depth}", "", ""),
    "drop": (
        "PyramidNet{depth}Drop",
        " with naive stochastic depth (PyramidDrop)",
        "; Huang et al., ECCV 2016",
    ),
    "sepdrop": (
        "PyramidNet{depth}SepDrop",
        " with separated stochastic depth (PyramidSepDrop)",
        "; Yamada, Iwamura, Kise, arXiv 1612.01230",
    ),
    "shakedrop": (
        "PyramidNet{depth}ShakeDrop",
        " with ShakeDrop",
        "; Yamada, Iwamura, Akiba, Kise, IEEE Access 2019",
    ),
}


def _named_builder(depth, default_alpha, bottleneck, regularization=None):
    title, extra, reference = _TITLES[regularization]
    title = title.format(depth=depth)

    def builder(
        alpha=default_alpha,
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=10,
        classifier_activation="softmax",
        name=None,
        **kwargs,
    ):
        return PyramidNet(
            depth,
            alpha,
            bottleneck,
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
        alpha=default_alpha,
    )
    return builder


# The paper's headline alpha for each depth. The regularized 110-layer
# presets default to alpha 270, the network behind the SepDrop and ShakeDrop
# papers' CIFAR-100 figures (SPEC section 1).
PyramidNet110 = _named_builder(110, 48, False)
PyramidNet164 = _named_builder(164, 270, True)
PyramidNet200 = _named_builder(200, 240, True)
PyramidNet236 = _named_builder(236, 220, True)
PyramidNet272 = _named_builder(272, 200, True)

PyramidNet110Drop = _named_builder(110, 270, False, "drop")
PyramidNet110SepDrop = _named_builder(110, 270, False, "sepdrop")
PyramidNet110ShakeDrop = _named_builder(110, 270, False, "shakedrop")
PyramidNet272Drop = _named_builder(272, 200, True, "drop")
PyramidNet272SepDrop = _named_builder(272, 200, True, "sepdrop")
PyramidNet272ShakeDrop = _named_builder(272, 200, True, "shakedrop")
