"""The generic PyramidNet builder: a stage plan, a stem, widening, units, a head.

Two variants (docs/architecture.md sections 1 and 1b) differ only in what
`presets.VARIANTS` holds and in the stem: "cifar" (3x3/16 stem, three equal
stages, 32x32 images) and "imagenet" (7x7/2 stem to 64 and a 3x3/2 max-pool,
ResNet's four stages of bottleneck units, 224x224 images). Widening is
"additive" (the CVPR paper) or "multiplicative" (the official Lua code's
second family, docs/architecture.md 1c).

This module builds networks with their initial values; trained weights
(`weights=`) are the public `keras_pyramid.PyramidNet`'s (applications.py),
which composes this builder with `keras_pyramid.weights`.
"""

import math

import keras
import numpy as np

from keras_pyramid.models.blocks import batch_norm, conv, pyramidal_unit
from keras_pyramid.models.drop_rates import (
    DEFAULT_DROP_RATE,
    check_drop_rates,
    linear_drop_rates,
)
from keras_pyramid.models.init import torch_linear_initializers
from keras_pyramid.models.plan import (
    CLASSIFIER,
    stage_plan,
    unit_name,
    unit_positions,
    unit_widths,
    weighted_layer_names,
)
from keras_pyramid.models.presets import VARIANTS, Variant, default_name, minimum_input_size
from keras_pyramid.models.regularizers import GRANULARITIES
from keras_pyramid.utils.checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_rate,
    fail,
    is_int,
)

# The stage plan's functions are re-exported: the builder's public companions.
__all__ = ["PyramidNet", "VARIANTS", "Variant", "minimum_input_size", "normalization_statistics",
           "stage_plan", "unit_widths", "weighted_layer_names"]


def check_input_shape(input_shape, data_format, variant):
    """The input shape, default the variant's design size with 3 channels;
    any channel count (>= 1) and any height and width from
    `minimum_input_size(variant)` up (None: decided at call time)."""
    spec = VARIANTS[variant]
    if input_shape is None:
        size = spec.design_size
        return (size, size, 3) if data_format == "channels_last" else (3, size, size)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        fail("input_shape", "be (height, width, channels) for channels_last or "
                            "(channels, height, width) for channels_first", input_shape)
    spatial = input_shape[:2] if data_format == "channels_last" else input_shape[1:]
    channels = input_channels(input_shape, data_format)
    if not is_int(channels) or channels < 1:
        fail("input_shape", f"have a known channel count >= 1 on the {data_format} axis",
             input_shape)
    minimum = minimum_input_size(variant)
    if any(size is not None and (not is_int(size) or size < minimum) for size in spatial):
        fail("input_shape", f"have height and width >= {minimum} for variant={variant!r}",
             input_shape)
    return input_shape


def input_channels(input_shape, data_format):
    """The channel count of a (height, width, channels) or (channels, height, width) shape."""
    return input_shape[-1] if data_format == "channels_last" else input_shape[0]


def default_statistics(values, channels):
    """The variant's per-channel `values` (3, RGB) for a `channels`-channel input.

    Other channel counts get the mean of the three, repeated: a channel of
    unknown meaning is normalized like an average RGB channel, so a grayscale
    image (about the mean of R, G and B) and any other 0-255 input land on
    the scale the variant's statistics give RGB images (mean near 0, std near 1).
    """
    if channels == len(values):
        return tuple(values)
    return (sum(values) / len(values),) * channels


def check_statistics(argument, values, channels, positive=False):
    """`channels` finite numbers (one per input channel), > 0 with `positive`."""
    try:
        numbers = tuple(float(v) for v in np.ravel(values))
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != channels or not all(math.isfinite(v) and (v > 0 or not positive)
                                           for v in numbers):
        fail(argument, f"be {channels} finite numbers{' > 0' if positive else ''} (one per "
                       "input channel)", values)
    return numbers


def check_unit_arguments(regularization, drop_rate, new_drop_rate, granularity, seed,
                         skip_dropped):
    """The arguments every unit's regularizer shares."""
    check_drop_rates(regularization, drop_rate, new_drop_rate)
    check_choice("granularity", granularity, GRANULARITIES)
    if seed is not None:
        check_int("seed", seed)
    check_bool("skip_dropped", skip_dropped)


def check_head_arguments(include_top, pooling, classes, head_dropout, weight_decay):
    check_choice("pooling", pooling, (None, "avg", "max"))
    if include_top:
        check_int("classes", classes, minimum=1)
    check_rate("head_dropout", head_dropout)
    check_number("weight_decay", weight_decay, minimum=0)


def normalization_statistics(model):
    """The (mean, std) of a model's input normalization, or (None, None)."""
    try:
        config = model.get_layer("normalization").get_config()
    except ValueError:
        return None, None
    return config["mean"], [math.sqrt(v) for v in np.ravel(config["variance"])]


def model_statistics(mean, std, variant, channels):
    """(mean, std) of the input normalization: as given, else the variant's."""
    spec = VARIANTS[variant]
    mean = default_statistics(spec.mean, channels) if mean is None else mean
    std = default_statistics(spec.std, channels) if std is None else std
    return (check_statistics("mean", mean, channels),
            check_statistics("std", std, channels, positive=True))


def normalization(mean, std, data_format):
    """`(x - mean) / std` per channel, so that the model takes raw pixels."""
    return keras.layers.Normalization(axis=-1 if data_format == "channels_last" else 1,
                                      mean=mean, variance=[s**2 for s in std],
                                      name="normalization")


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


def units(x, widths, stages, *, drop_rate, new_drop_rate, seed, **unit_arguments):
    """The pyramidal units of every stage; the first unit of every stage after
    the first has stride 2, and unit l of L gets the linear-decay rate
    `(l / L) * drop_rate` (`linear_drop_rates`) and the seed `seed + l`."""
    drop_rates = linear_drop_rates(len(widths), drop_rate)
    new_drop_rates = (linear_drop_rates(len(widths), new_drop_rate)
                      if new_drop_rate is not None else [None] * len(widths))
    for index, (width, (stage, unit)) in enumerate(zip(widths, unit_positions(stages))):
        x = pyramidal_unit(
            x, width, strides=2 if stage > 0 and unit == 0 else 1,
            drop_rate=drop_rates[index], new_drop_rate=new_drop_rates[index],
            seed=None if seed is None else seed + index + 1, name=unit_name(stage, unit),
            **unit_arguments)
    return x


def head(x, *, include_top, pooling, classes, classifier_activation, head_dropout, seed,
         data_format, weight_regularizer):
    """`BN -> ReLU`, then `global average pool -> [Dropout] -> Dense(classes)`
    with the top, else the chosen `pooling` (or none)."""
    channel_axis = -1 if data_format == "channels_last" else 1
    x = batch_norm(channel_axis, "head_bn", weight_regularizer)(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    if include_top or pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        return keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    if not include_top:
        return x
    if head_dropout:
        x = keras.layers.Dropout(head_dropout, seed=seed, name="head_dropout")(x)
    kernel_initializer, bias_initializer = torch_linear_initializers(x.shape[-1])
    return keras.layers.Dense(
        classes, activation=classifier_activation, kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer, kernel_regularizer=weight_regularizer,
        bias_regularizer=weight_regularizer,
        dtype="float32",  # mixed precision: keep the logits and softmax in float32
        name=CLASSIFIER,
    )(x)


def model_inputs(input_tensor, input_shape, data_format, variant):
    """(the graph's input, the model's inputs): `image`, or `input_tensor`."""
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = check_input_shape(input_shape, data_format, variant)
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name="image")
        return inputs, inputs
    if not keras.backend.is_keras_tensor(input_tensor):
        input_tensor = keras.Input(tensor=input_tensor, shape=input_shape, name="image")
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def PyramidNet(depth, alpha, bottleneck=False, *, variant="cifar", widening="additive",
               regularization=None, drop_rate=DEFAULT_DROP_RATE, new_drop_rate=None,
               include_top=True, input_tensor=None, input_shape=None, pooling=None, classes=None,
               classifier_activation="softmax", include_preprocessing=True, mean=None,
               std=None, seed=None, name=None, granularity="batch", weight_decay=0.0,
               skip_dropped=False, head_dropout=0.0):
    """Builds a PyramidNet (Han et al. 2017), optionally with stochastic depth.

    `[(x - mean) / std] -> stem -> units -> BN -> ReLU -> global average pool
    -> [Dropout] -> Dense(classes)`. The stem is `stem`'s; `stage_plan` gives
    the units per stage (the first of every stage after the first has stride
    2); unit k of N is `floor(c_k + 0.5)` wide, `c_k` growing from the stem
    width by `alpha / N` (additive) or by `alpha ** (1 / N)` (multiplicative),
    see `unit_widths`. Initial values only: `keras_pyramid.PyramidNet` adds
    trained weights (`weights=`).

    Args:
        depth: int. CIFAR: `(depth - 2)` divisible by 6 (basic) or 9
            (bottleneck). ImageNet: 50, 101, 152 or 200.
        alpha: number > 0: the total widening over all N units (additive),
            or the ratio of the last width to the stem's (multiplicative).
        bottleneck: bool, bottleneck units (4x expansion); True for ImageNet.
        variant: "cifar" or "imagenet" (the module doc; `presets.VARIANTS`).
        widening: "additive" (the paper) or "multiplicative".
        regularization: None, "drop" (PyramidDrop), "sepdrop" (PyramidSepDrop)
            or "shakedrop". PyramidSepDrop on bottleneck units is this
            project's extension: the authors released basic units only.
        drop_rate: float in [0, 1), the LAST unit's drop probability; unit l
            of L gets `(l / L) * drop_rate` (linear decay rule); None: 0.5.
        new_drop_rate: float in [0, 1) or None; with "sepdrop", the last
            unit's rate of the gate on the new channels, spread by the same
            rule; None ties it to `drop_rate` (the paper; separate rates are
            this project's extension).
        include_top: bool, whether to include the classifier.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: optional shape tuple (default: the variant's design size,
            RGB): any channel count, sides >= `minimum_input_size(variant)` (4
            CIFAR, 32 ImageNet); each stride 2 maps n to `ceil(n / 2)`, odd too.
        pooling: None, "avg" or "max": the features' pooling without the top.
        classes: int >= 1 or None, the variant's (10 or 1000).
        classifier_activation: the top layer's activation, None for logits.
        include_preprocessing: bool; True: the model takes raw 0-255 pixels
            and normalizes them, `(x - mean) / std` per channel.
        mean, std: one number per input channel (0-255 scale) or None: the
            variant's, averaged over RGB for another channel count.
        seed: int or None; unit l's regularizer gets `seed + l` (same gates).
        name: the model's name, default like "pyramidnet110_a48_sepdrop".
        granularity: "batch" (the papers) or "sample": gates per batch or example.
        weight_decay: float >= 0, the coupled (Torch-style) coefficient
            `lambda`: an L2 penalty `lambda / 2 * sum(w^2)` on EVERY parameter.
        skip_dropped: bool; with "drop" or "sepdrop" and per-batch gates, each
            branch is one `SkippableBranch`, not computed when its gates are
            closed: the same function and weights, another layer structure.
        head_dropout: float in [0, 1), a Dropout before the classifier; 0: none.

    Returns:
        A `keras.Model`.
    """
    data_format = keras.config.image_data_format()
    drop_rate = DEFAULT_DROP_RATE if drop_rate is None else drop_rate
    widths = unit_widths(depth, alpha, bottleneck, variant=variant, widening=widening)
    check_unit_arguments(regularization, drop_rate, new_drop_rate, granularity, seed,
                         skip_dropped)
    classes = VARIANTS[variant].classes if classes is None else classes
    check_head_arguments(include_top, pooling, classes, head_dropout, weight_decay)
    inputs, sources = model_inputs(input_tensor, input_shape, data_format, variant)
    mean, std = model_statistics(mean, std, variant, input_channels(inputs.shape[1:], data_format))
    # Coupled weight decay = the gradient of lambda / 2 * w^2 (docs/architecture.md section 4).
    wr = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    x = normalization(mean, std, data_format)(inputs) if include_preprocessing else inputs
    x = stem(x, variant, data_format, wr)
    x = units(x, widths, stage_plan(depth, bottleneck, variant), drop_rate=drop_rate,
              new_drop_rate=new_drop_rate, seed=seed, bottleneck=bottleneck,
              regularization=regularization, granularity=granularity,
              data_format=data_format, weight_regularizer=wr, skip_dropped=skip_dropped)
    x = head(x, include_top=include_top, pooling=pooling, classes=classes,
             classifier_activation=classifier_activation, head_dropout=head_dropout,
             seed=seed, data_format=data_format, weight_regularizer=wr)
    name = name or default_name(depth, alpha, regularization, variant, widening)
    return keras.Model(sources, x, name=name)
