"""The generic PyramidNet builder (CIFAR variant): widths, stages, stem, head."""

import math
import os

import keras

from keras_pyramid.blocks import batch_norm, conv, pyramidal_unit
from keras_pyramid.layers import _check_drop_rate, check_regularization
from keras_pyramid.layers import _check_granularity, linear_drop_rates

# Per-channel CIFAR statistics on the 0-255 scale used by the official code
# (for CIFAR-100 too), so that the model takes raw pixels.
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)

STEM_WIDTH = 16
NUM_STAGES = 3
# Each stage after the first halves the resolution once, so inputs must be
# divisible by this for the pooled shortcut to match the strided branch.
DOWNSAMPLING = 2 ** (NUM_STAGES - 1)


def units_per_stage(depth, bottleneck):
    """`n` of SPEC section 1: `(depth - 2) / 6` basic, `(depth - 2) / 9` bottleneck."""
    layers_per_unit = 3 if bottleneck else 2
    divisor = NUM_STAGES * layers_per_unit
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


def unit_widths(depth, alpha, bottleneck=False):
    """Width `D_k` of every unit k = 1 .. N (inner width for bottleneck units).

    `c_0 = 16`, `c_k = c_{k-1} + alpha / N` kept as a float, and
    `D_k = floor(c_k + 0.5)` (round half up), as all official code does; so
    the last unit is `16 + alpha` wide (alpha is the total widening).
    """
    _check_alpha(alpha)
    num_units = NUM_STAGES * units_per_stage(depth, bottleneck)
    step = alpha / num_units
    widths, width = [], float(STEM_WIDTH)
    for _ in range(num_units):
        width += step
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


def _check_input_shape(input_shape, data_format):
    if input_shape is None:
        return (32, 32, 3) if data_format == "channels_last" else (3, 32, 32)
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
    for size in spatial:
        if size is not None and (size < DOWNSAMPLING or size % DOWNSAMPLING):
            raise ValueError(
                f"`input_shape` must have height and width that are multiples of "
                f"{DOWNSAMPLING} (the network halves them {NUM_STAGES - 1} times). "
                f"Received: input_shape={input_shape}"
            )
    return input_shape


def _check_weights(weights):
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)) or not str(weights).endswith(
        ".weights.h5"
    ):
        raise ValueError(
            "`weights` must be None or the path to a `.weights.h5` file. "
            f"Received: weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise ValueError(
            f"`weights` file does not exist. Received: weights={weights!r}"
        )


def _check_pooling(pooling):
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )


def default_name(depth, alpha, regularization=None):
    name = f"pyramidnet{depth}_a{alpha:g}"
    return f"{name}_{regularization}" if regularization else name


def torch_linear_initializers(fan_in):
    """PyTorch's default `nn.Linear` init, kept by the official code for the head:
    kernel and bias both `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`."""
    bound = 1.0 / math.sqrt(fan_in)
    kernel = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    return kernel, keras.initializers.RandomUniform(-bound, bound)


def PyramidNet(
    depth,
    alpha,
    bottleneck=False,
    *,
    regularization=None,
    drop_rate=0.5,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    include_preprocessing=True,
    seed=None,
    name=None,
    granularity="batch",
    weight_decay=0.0,
    skip_dropped=False,
):
    """Builds a CIFAR PyramidNet (Han et al. 2017), optionally with stochastic depth.

    Stem `Conv3x3(16) -> BN`, three stages of `n` pyramidal units (the first
    unit of stages 2 and 3 has stride 2), head `BN -> ReLU -> global average
    pool -> Dense(classes)`. Unit k is `floor(16 + k * alpha / N + 0.5)` wide
    (see `unit_widths`).

    Args:
        depth: int; `(depth - 2)` divisible by 6 (basic) or 9 (bottleneck).
        alpha: number > 0, the total widening over all `N = 3n` units.
        bottleneck: bool, bottleneck units (4x expansion) instead of basic.
        regularization: None, "drop" (PyramidDrop), "sepdrop" (PyramidSepDrop)
            or "shakedrop". PyramidSepDrop on bottleneck units (the same
            channel split of their `4 * D_k` outputs) is this project's
            extension: the authors released basic units only.
        drop_rate: float in [0, 1), the LAST unit's drop probability; unit l
            of L gets `(l / L) * drop_rate` (linear decay rule).
        include_top: bool, whether to include the classifier.
        weights: None (random init) or the path to a `.weights.h5` file.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: optional shape tuple, default (32, 32, 3) (or
            (3, 32, 32) for channels_first); height and width multiples of 4.
        pooling: None, "avg" or "max": the pooling of the features when
            `include_top=False`.
        classes: int, the number of classes when `include_top=True`.
        classifier_activation: the activation of the top layer, or None for
            logits.
        include_preprocessing: bool; when True the model takes raw 0-255 pixels
            and normalizes them with the CIFAR per-channel mean and std.
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
    widths = unit_widths(depth, alpha, bottleneck)
    check_regularization(regularization)
    _check_drop_rate(drop_rate)
    _check_granularity(granularity)
    _check_weights(weights)
    _check_pooling(pooling)
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
    input_shape = _check_input_shape(input_shape, data_format)

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name="image")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=input_shape, name="image")

    # Coupled weight decay = the gradient of lambda / 2 * w^2 (SPEC section 4).
    wr = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    x = inputs
    if include_preprocessing:
        x = keras.layers.Normalization(
            axis=channel_axis,
            mean=CIFAR_MEAN,
            variance=[s**2 for s in CIFAR_STD],
            name="normalization",
        )(x)
    x = conv(STEM_WIDTH, 3, 1, data_format, "stem_conv", wr)(x)
    x = batch_norm(channel_axis, "stem_bn", wr)(x)

    per_stage = len(widths) // NUM_STAGES
    drop_rates = linear_drop_rates(len(widths), drop_rate)
    for index, width in enumerate(widths):
        stage, unit = divmod(index, per_stage)
        x = pyramidal_unit(
            x,
            width,
            strides=2 if stage > 0 and unit == 0 else 1,
            bottleneck=bottleneck,
            regularization=regularization,
            drop_rate=drop_rates[index],
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
        model_inputs, x, name=name or default_name(depth, alpha, regularization)
    )
    if weights is not None:
        model.load_weights(weights)
    return model
