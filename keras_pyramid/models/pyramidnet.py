"""The generic PyramidNet builder: a stage plan, a stem, widening, units, a head.

Two variants (docs/architecture.md sections 1 and 1b) differ only in what `VARIANTS` holds and
in the stem: "cifar" (3x3/16 stem, three equal stages, 32x32 images) and
"imagenet" (7x7/2 stem to 64 and a 3x3/2 max-pool, ResNet's four stages of
bottleneck units, 224x224 images). Widening is "additive" (the CVPR paper)
or "multiplicative" (the official Lua code's second family, docs/architecture.md 1c).
"""

import dataclasses
import math
import os

import keras
import numpy as np

from keras_pyramid.models.blocks import batch_norm, conv, pyramidal_unit
from keras_pyramid.models.layers import _check_drop_rate, check_regularization
from keras_pyramid.models.layers import _check_granularity, linear_drop_rates
from keras_pyramid.models.presets import default_name

# Per-channel statistics on the 0-255 scale, so that the models take raw
# pixels: CIFAR's as the official code uses them (for CIFAR-100 too), and
# ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) times 255.
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# ResNet's bottleneck unit counts per stage (docs/architecture.md 1b), by depth.
IMAGENET_STAGE_UNITS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
WIDENINGS = ("additive", "multiplicative")


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a variant fixes besides its stem (and its default class count).

    `downsampling` is the factor between the input and the last stage's
    resolution; inputs must be multiples of it, so that every pooled
    shortcut matches its strided branch.
    """

    stem_width: int
    num_stages: int
    classes: int
    design_size: int
    downsampling: int
    mean: tuple
    std: tuple


VARIANTS = {
    # No stem downsampling, then stages 2 and 3 halve: 32 -> 32, 16, 8.
    "cifar": Variant(16, 3, 10, 32, 4, CIFAR_MEAN, CIFAR_STD),
    # The stem quarters (conv /2, max-pool /2), stages 2-4 halve: 224 -> 56, 28, 14, 7.
    "imagenet": Variant(64, 4, 1000, 224, 32, IMAGENET_MEAN, IMAGENET_STD),
}


def _check_choice(argument, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {tuple(choices)}. Received: {argument}={value!r}"
        )


def units_per_stage(depth, bottleneck):
    """`n` of docs/architecture.md section 1 (CIFAR): `(depth - 2) / 6` basic, `(depth - 2) / 9` bottleneck."""
    layers_per_unit = 3 if bottleneck else 2
    divisor = VARIANTS["cifar"].num_stages * layers_per_unit
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < divisor + 2
        or (depth - 2) % divisor
    ):
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(
            f"`depth` must be an int with (depth - 2) % {divisor} == 0 and at least "
            f"{divisor + 2} for {kind} units (e.g. "
            f"{'164, 200, 236, 272' if bottleneck else '110'}). Received: depth={depth!r}"
        )
    return (depth - 2) // divisor


def stage_plan(depth, bottleneck=False, variant="cifar"):
    """The number of units in each stage.

    CIFAR: three stages of `n = units_per_stage(depth, bottleneck)`.
    ImageNet: bottleneck units only, in ResNet's four stages
    (`IMAGENET_STAGE_UNITS`, e.g. 101 -> (3, 4, 23, 3)).
    """
    _check_choice("variant", variant, VARIANTS)
    _check_bottleneck(bottleneck)
    if variant == "cifar":
        return (units_per_stage(depth, bottleneck),) * VARIANTS["cifar"].num_stages
    if not bottleneck:
        raise ValueError(
            "`bottleneck` must be True for variant='imagenet' (the ImageNet PyramidNets "
            f"have bottleneck units only). Received: bottleneck={bottleneck!r}"
        )
    if (isinstance(depth, bool) or not isinstance(depth, int)
            or depth not in IMAGENET_STAGE_UNITS):
        raise ValueError(
            f"`depth` must be one of {tuple(IMAGENET_STAGE_UNITS)} for variant='imagenet' "
            f"(ResNet's unit counts). Received: depth={depth!r}"
        )
    return IMAGENET_STAGE_UNITS[depth]


def unit_widths(depth, alpha, bottleneck=False, *, variant="cifar", widening="additive"):
    """Width `D_k` of every unit k = 1 .. N (inner width for bottleneck units).

    From `c_0` (16 for CIFAR, 64 for ImageNet), kept as a float:
    additive `c_k = c_{k-1} + alpha / N`, so the last unit is `c_0 + alpha`
    wide (alpha is the total widening); multiplicative
    `c_k = c_{k-1} * alpha ** (1 / N)`, so the last is `c_0 * alpha` wide.
    `D_k = floor(c_k + 0.5)` (round half up), as all official code does.
    """
    _check_alpha(alpha)
    _check_choice("widening", widening, WIDENINGS)
    num_units = sum(stage_plan(depth, bottleneck, variant))
    width = float(VARIANTS[variant].stem_width)
    if widening == "additive":
        step = alpha / num_units
        grow = lambda c: c + step  # noqa: E731
    else:
        factor = alpha ** (1.0 / num_units)
        grow = lambda c: c * factor  # noqa: E731
    widths = []
    for _ in range(num_units):
        width = grow(width)
        widths.append(int(math.floor(width + 0.5)))
    return widths


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"`alpha` must be a number > 0. Received: alpha={alpha!r}")


def _check_bottleneck(bottleneck):
    if not isinstance(bottleneck, bool):
        raise ValueError(
            f"`bottleneck` must be True or False. Received: bottleneck={bottleneck!r}"
        )


def _check_classes(classes):
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"`classes` must be an int >= 1. Received: classes={classes!r}"
        )


def _check_input_shape(input_shape, data_format, variant):
    """The input shape, default the variant's design size; any height and
    width the network can take (multiples of `Variant.downsampling`)."""
    spec = VARIANTS[variant]
    if input_shape is None:
        size = spec.design_size
        return (size, size, 3) if data_format == "channels_last" else (3, size, size)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels) for channels_last or "
            f"(channels, height, width) for channels_first. "
            f"Received: input_shape={input_shape}"
        )
    if data_format == "channels_last":
        spatial, channels = input_shape[:2], input_shape[2]
    else:
        spatial, channels = input_shape[1:], input_shape[0]
    if channels != 3:
        raise ValueError(
            f"`input_shape` must have 3 (RGB) channels on the {data_format} axis. "
            f"Received: input_shape={input_shape}"
        )
    factor = spec.downsampling
    for size in spatial:
        if size is not None and (size < factor or size % factor):
            raise ValueError(
                f"`input_shape` must have height and width that are multiples of "
                f"{factor} for variant={variant!r} (the network divides them by {factor}). "
                f"Received: input_shape={input_shape}"
            )
    return input_shape


def _weights_kind(weights):
    """None, "tag" (a dataset of the trained weights), "weights.h5" or "keras"."""
    from keras_pyramid.models.presets import DATASET_TAGS

    if weights is None:
        return None
    if isinstance(weights, str) and weights in DATASET_TAGS:
        return "tag"
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        for suffix in (".weights.h5", ".keras"):
            if path.endswith(suffix):
                if not os.path.isfile(path):
                    raise ValueError(f"`weights` file does not exist. Received: weights={path!r}")
                return suffix.lstrip(".")
    raise ValueError(
        f"`weights` must be None, a dataset tag {tuple(DATASET_TAGS)}, or the path to a "
        f"`.weights.h5` or `.keras` file. Received: weights={weights!r}"
    )


def trained_weights_entry(depth, alpha, bottleneck, variant, widening, tag):
    """The configuration and its `TrainedWeights` for `tag`, or a ValueError
    saying which configurations and tags have weights."""
    from keras_pyramid.models.presets import ARCHITECTURES

    name = default_name(depth, alpha, None, variant, widening)
    for architecture in ARCHITECTURES:
        if (architecture.name() == name and architecture.bottleneck == bottleneck
                and architecture.weights):
            return architecture, architecture.weights_for(tag)
    with_weights = sorted(a.name() for a in ARCHITECTURES if a.weights)
    raise ValueError(
        f"No trained weights for {name}{' (bottleneck)' if bottleneck else ''}; these "
        f"configurations have some: {', '.join(with_weights)}. Received: weights={tag!r}"
    )


def _check_statistics(argument, values, positive=False):
    """Three finite numbers (per RGB channel), > 0 with `positive`."""
    try:
        numbers = tuple(float(v) for v in np.ravel(values))
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or not all(math.isfinite(v) and (v > 0 or not positive)
                                    for v in numbers):
        requirement = "3 finite numbers > 0" if positive else "3 finite numbers"
        raise ValueError(f"`{argument}` must be {requirement}. Received: {argument}={values!r}")
    return numbers


def normalization_statistics(model):
    """The (mean, std) of a model's input normalization, or (None, None)."""
    try:
        config = model.get_layer("normalization").get_config()
    except ValueError:
        return None, None
    return config["mean"], [math.sqrt(v) for v in np.ravel(config["variance"])]


def _check_pooling(pooling):
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )


def stem(x, variant, data_format, weight_regularizer=None):
    """CIFAR: `Conv3x3(16) -> BN` (no ReLU). ImageNet: `Conv7x7/2(64) -> BN
    -> ReLU -> MaxPool3x3/2`, each padded like PyTorch (3 and 1 pixels on
    every side; `conv` pads strided convs explicitly)."""
    channel_axis = -1 if data_format == "channels_last" else 1
    width = VARIANTS[variant].stem_width
    if variant == "cifar":
        x = conv(width, 3, 1, data_format, "stem_conv", weight_regularizer)(x)
        return batch_norm(channel_axis, "stem_bn", weight_regularizer)(x)
    x = conv(width, 7, 2, data_format, "stem_conv", weight_regularizer)(x)
    x = batch_norm(channel_axis, "stem_bn", weight_regularizer)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    # PyTorch pads the max-pool with -inf. Zeros give the same maximum here
    # only because the ReLU above makes every value >= 0 and each window
    # holds at least one real value.
    x = keras.layers.ZeroPadding2D(1, data_format=data_format, name="stem_pool_pad")(x)
    return keras.layers.MaxPooling2D(
        3, 2, padding="valid", data_format=data_format, name="stem_pool"
    )(x)


def torch_linear_initializers(fan_in):
    """PyTorch's default `nn.Linear` init, kept by the official code for the head:
    kernel and bias both `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`."""
    bound = 1.0 / math.sqrt(fan_in)
    kernel = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    return kernel, keras.initializers.RandomUniform(-bound, bound)


def initialize_with_numpy(model, seed=0):
    """Gives every variable of `model` its initial value, random ones drawn with NumPy.

    For a model built under `keras.StatelessScope(initialize_variables=False)`
    (shapes only). Under JAX each random Keras initializer compiles an XLA
    program per weight shape, so a deep network takes minutes to build the
    plain way; this takes seconds. The distributions are the initializers':
    `VarianceScaling(scale, mode, distribution)` draws with variance
    `scale / n`, n the fan-in, fan-out or their mean (normal, truncated at two
    standard deviations, or uniform on `+-sqrt(3 scale / n)`), `RandomUniform`
    on its range; constant initializers (BN, seed states, rate scales) run as
    they are. Variables that already hold values are left as they are.
    Keras' deferred initialization then also initializes any other model
    still waiting for it (with its own initializers). Returns the model.
    """
    # Keras keeps a variable's pending initializer, and its list of variables
    # waiting for one, only privately: the draws replace those initializers,
    # and Keras' own deferred initialization then runs them, once.
    from keras.src.backend.common.variables import initialize_all_variables

    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if variable._value is not None:  # built the plain way: nothing pending
            continue
        value = _numpy_draw(variable._initializer, tuple(variable.shape), rng)
        if value is not None:
            variable._initializer = lambda shape, dtype, value=value: value.astype(dtype)
    initialize_all_variables()
    return model


def built_shapes_first(build, *args, **kwargs):
    """`build(*args, **kwargs)` with its variables' shapes only, then filled
    by `initialize_with_numpy`: for a model whose weights are about to be
    overwritten (seconds instead of minutes under JAX for a deep network)."""
    with keras.StatelessScope(initialize_variables=False):
        model = build(*args, **kwargs)
    return initialize_with_numpy(model)


def _numpy_draw(initializer, shape, rng):
    """A NumPy draw from a random Keras initializer, or None for any other."""
    if isinstance(initializer, keras.initializers.RandomUniform):
        return rng.uniform(initializer.minval, initializer.maxval, shape)
    if not isinstance(initializer, keras.initializers.VarianceScaling):
        return None
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in = shape[-2] * receptive if len(shape) > 1 else shape[0]
    fan_out = shape[-1] * receptive if len(shape) > 1 else shape[0]
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[
        initializer.mode]
    variance = initializer.scale / max(1.0, n)
    if initializer.distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    if initializer.distribution == "untruncated_normal":
        return rng.normal(0.0, math.sqrt(variance), shape)
    # Truncated at two standard deviations, rescaled to keep the variance.
    stddev = math.sqrt(variance) / 0.87962566103423978
    draw = rng.normal(0.0, stddev, shape)
    outside = np.abs(draw) > 2 * stddev
    while outside.any():
        draw[outside] = rng.normal(0.0, stddev, int(outside.sum()))
        outside = np.abs(draw) > 2 * stddev
    return draw


def PyramidNet(
    depth,
    alpha,
    bottleneck=False,
    *,
    variant="cifar",
    widening="additive",
    regularization=None,
    drop_rate=0.5,
    new_drop_rate=None,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    include_preprocessing=True,
    mean=None,
    std=None,
    seed=None,
    name=None,
    granularity="batch",
    weight_decay=0.0,
    skip_dropped=False,
    head_dropout=0.0,
):
    """Builds a PyramidNet (Han et al. 2017), optionally with stochastic depth.

    A stem (see `stem`), the stages of `stage_plan(depth, bottleneck,
    variant)` pyramidal units (the first unit of every stage after the first
    has stride 2), and the head `BN -> ReLU -> global average pool ->
    [Dropout] -> Dense(classes)`. Unit k of N is `floor(c_k + 0.5)` wide,
    `c_k` growing from the stem width by `alpha / N` (additive) or by the
    factor `alpha ** (1 / N)` (multiplicative); see `unit_widths`.

    Args:
        depth: int. CIFAR: `(depth - 2)` divisible by 6 (basic) or 9
            (bottleneck). ImageNet: 50, 101, 152 or 200.
        alpha: number > 0: the total widening over all N units (additive),
            or the ratio of the last width to the stem's (multiplicative).
        bottleneck: bool, bottleneck units (4x expansion) instead of basic;
            must be True for ImageNet.
        variant: "cifar" (3x3/16 stem, 3 stages, 32x32 default input, CIFAR
            statistics) or "imagenet" (7x7/2 stem to 64 and 3x3/2 max-pool,
            4 stages, 224x224 default input, ImageNet statistics).
        widening: "additive" (the paper) or "multiplicative".
        regularization: None, "drop" (PyramidDrop), "sepdrop" (PyramidSepDrop)
            or "shakedrop". PyramidSepDrop on bottleneck units (the same
            channel split of their `4 * D_k` outputs) is this project's
            extension: the authors released basic units only.
        drop_rate: float in [0, 1), the LAST unit's drop probability; unit l
            of L gets `(l / L) * drop_rate` (linear decay rule).
        new_drop_rate: float in [0, 1) or None; with "sepdrop", the LAST
            unit's drop probability of the gate on the new channels, spread
            over the units by the same linear rule; None ties it to
            `drop_rate` (the paper). Separate rates are this project's
            extension.
        include_top: bool, whether to include the classifier.
        weights: None (random init); a dataset tag ("cifar10", "cifar100",
            "svhn", "imagenet") for the configuration's trained weights (see
            `presets`; fetched and converted once, then cached under
            KERAS_HOME), which also set `classes` and the preprocessing they
            were trained with; the path to a `.weights.h5` file (Keras'
            `load_weights`, same layer structure); or the path to a `.keras`
            file, whose conv, BatchNorm and dense weights are copied by layer
            name (e.g. from another regularization; the classifier only with
            `include_top=True`).
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: optional shape tuple, default the variant's design size,
            (32, 32, 3) or (224, 224, 3) (channels first for channels_first);
            height and width multiples of 4 (CIFAR) or 32 (ImageNet).
        pooling: None, "avg" or "max": the pooling of the features when
            `include_top=False`.
        classes: int, the number of classes when `include_top=True`; None
            is the trained weights' or else the variant's: 10 (CIFAR) or 1000
            (ImageNet). With a weights tag and `include_top=True`, another
            value is a ValueError (as in keras.applications).
        classifier_activation: the activation of the top layer, or None for
            logits.
        include_preprocessing: bool; when True the model takes raw 0-255 pixels
            and normalizes them, `(x - mean) / std` per channel.
        mean, std: 3 numbers each (0-255 scale) or None: the statistics of
            that normalization. None is the trained weights' (with a tag),
            else the variant's (CIFAR's, or ImageNet's).
        seed: int or None; with an int, unit l's regularizer gets `seed + l`,
            so two models built with the same seed draw the same gates.
        name: the model's name, default like "pyramidnet110_a48_sepdrop".
        granularity: "batch" (the papers) or "sample": gates per mini-batch or
            per example.
        weight_decay: float >= 0; the coupled (Torch-style) weight decay
            coefficient `lambda`, added as an L2 penalty `lambda / 2 * sum(w^2)`
            on EVERY parameter (convs, BN, Dense). 0 adds none.
        skip_dropped: bool; with "drop" or "sepdrop" and per-batch gates,
            each unit's branch becomes one `SkippableBranch` layer that does
            not compute the branch, forward or backward, when its gates are
            closed in a training step. The same function and the same
            weights, in another layer structure (so checkpoints do not load
            across the two). Faster where conds are cheap (see the README's
            speed table); default False, the flat keras.applications layout.
        head_dropout: float in [0, 1), a Dropout before the classifier (0.5
            in the ImageNet 200-layer alpha 450 model); 0 adds no layer.

    Returns:
        A `keras.Model`.
    """
    data_format = keras.config.image_data_format()
    channel_axis = -1 if data_format == "channels_last" else 1
    _check_bottleneck(bottleneck)
    if not isinstance(skip_dropped, bool):
        raise ValueError(
            f"`skip_dropped` must be a bool. Received: skip_dropped={skip_dropped!r}"
        )
    widths = unit_widths(depth, alpha, bottleneck, variant=variant, widening=widening)
    stages = stage_plan(depth, bottleneck, variant)
    check_regularization(regularization)
    _check_drop_rate(drop_rate)
    if new_drop_rate is not None:
        _check_drop_rate(new_drop_rate, "new_drop_rate")
        if regularization != "sepdrop":
            raise ValueError(
                "`new_drop_rate` needs regularization='sepdrop' (the only regularizer with "
                f"two gates). Received: new_drop_rate={new_drop_rate!r}, "
                f"regularization={regularization!r}"
            )
    _check_granularity(granularity)
    weights_kind = _weights_kind(weights)
    _check_pooling(pooling)
    _check_drop_rate(head_dropout, "head_dropout")
    trained = None
    if weights_kind == "tag":
        architecture, trained = trained_weights_entry(
            depth, alpha, bottleneck, variant, widening, weights)
        if include_top and classes is not None and classes != trained.classes:
            raise ValueError(
                f"With `weights={weights!r}` and `include_top=True`, `classes` must be "
                f"{trained.classes} (or None); use include_top=False for a new head. "
                f"Received: classes={classes!r}"
            )
        classes = trained.classes
        mean = trained.mean if mean is None else mean
        std = trained.std if std is None else std
    source_model = None
    if weights_kind == "keras":
        # Weights mean what they mean only with the preprocessing they were
        # trained with: it comes along unless given.
        source_model = keras.saving.load_model(weights, compile=False)
        source_mean, source_std = normalization_statistics(source_model)
        mean = source_mean if mean is None else mean
        std = source_std if std is None else std
        if classes is None and "predictions" in [l.name for l in source_model.layers]:
            classes = source_model.get_layer("predictions").units
    if classes is None:
        classes = VARIANTS[variant].classes
    mean = _check_statistics("mean", VARIANTS[variant].mean if mean is None else mean)
    std = _check_statistics("std", VARIANTS[variant].std if std is None else std,
                            positive=True)
    if include_top:
        _check_classes(classes)
    if isinstance(weight_decay, bool) or not (
        isinstance(weight_decay, (int, float)) and weight_decay >= 0
    ):
        raise ValueError(
            f"`weight_decay` must be a number >= 0. Received: weight_decay={weight_decay!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _check_input_shape(input_shape, data_format, variant)

    def assemble():
        if input_tensor is None:
            inputs = keras.Input(shape=input_shape, name="image")
        elif keras.backend.is_keras_tensor(input_tensor):
            inputs = input_tensor
        else:
            inputs = keras.Input(tensor=input_tensor, shape=input_shape, name="image")

        # Coupled weight decay = the gradient of lambda / 2 * w^2 (docs/architecture.md section 4).
        wr = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
        x = inputs
        if include_preprocessing:
            x = keras.layers.Normalization(
                axis=channel_axis,
                mean=mean,
                variance=[s**2 for s in std],
                name="normalization",
            )(x)
        x = stem(x, variant, data_format, wr)

        drop_rates = linear_drop_rates(len(widths), drop_rate)
        new_drop_rates = (linear_drop_rates(len(widths), new_drop_rate)
                          if new_drop_rate is not None else [None] * len(widths))
        positions = [(stage, unit) for stage, count in enumerate(stages) for unit in range(count)]
        for index, (width, (stage, unit)) in enumerate(zip(widths, positions)):
            x = pyramidal_unit(
                x,
                width,
                strides=2 if stage > 0 and unit == 0 else 1,
                bottleneck=bottleneck,
                regularization=regularization,
                drop_rate=drop_rates[index],
                new_drop_rate=new_drop_rates[index],
                granularity=granularity,
                seed=None if seed is None else seed + index + 1,
                data_format=data_format,
                weight_regularizer=wr,
                skip_dropped=skip_dropped,
                name=f"stage{stage + 1}_unit{unit + 1}",
            )

        x = batch_norm(channel_axis, "head_bn", wr)(x)
        x = keras.layers.ReLU(name="head_relu")(x)
        if include_top:
            x = keras.layers.GlobalAveragePooling2D(
                data_format=data_format, name="avg_pool"
            )(x)
            if head_dropout:
                x = keras.layers.Dropout(head_dropout, seed=seed, name="head_dropout")(x)
            kernel_init, bias_init = torch_linear_initializers(x.shape[-1])
            x = keras.layers.Dense(
                classes,
                activation=classifier_activation,
                kernel_initializer=kernel_init,
                bias_initializer=bias_init,
                kernel_regularizer=wr,
                bias_regularizer=wr,
                # Mixed precision: keep the logits and softmax in float32.
                dtype="float32",
                name="predictions",
            )(x)
        elif pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(
                data_format=data_format, name="avg_pool"
            )(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)

        model_inputs = (
            keras.utils.get_source_inputs(input_tensor)
            if input_tensor is not None
            else inputs
        )
        model = keras.Model(
            model_inputs, x, name=name or default_name(depth, alpha, regularization, variant, widening)
        )
        return model

    # With weights the initial values are overwritten: no Keras initializer
    # needs to run (under JAX each compiles an XLA program per weight shape).
    model = assemble() if weights_kind is None else built_shapes_first(assemble)
    if weights_kind == "tag":
        from keras_pyramid.weights.cache import load_trained

        load_trained(model, architecture, trained)
    elif weights_kind == "weights.h5":
        model.load_weights(weights)
    elif weights_kind == "keras":
        from keras_pyramid.weights.cache import copy_weights

        copy_weights(source_model, model)
    return model
