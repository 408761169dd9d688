"""The two pyramidal residual units; this is the one place that builds a unit.

Layer names are hierarchical, `{prefix}_{op}` with `prefix = "stage2_unit5"`,
so `summary()` reads as the paper's table and weights can be ported by name.
"""

import keras

from keras_pyramid.models.regularizers import make_regularizer
from keras_pyramid.models.shortcut import PyramidShortcut
from keras_pyramid.models.skipping import SkippableBranch, can_skip

# BatchNorm as in Torch: momentum 0.1 there is 0.9 here (the weight kept by
# the moving average), and Torch's epsilon.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# The weighted layers of a unit, `{prefix}_{suffix}`, in the order
# `pyramidal_unit` builds them.
UNIT_LAYERS = {
    False: ("bn1", "conv1", "bn2", "conv2", "bn3"),
    True: ("bn1", "conv1", "bn2", "conv2", "bn3", "conv3", "bn4"),
}


def he_fan_out():
    """He initialisation over fan-out, untruncated, as the official code:
    `normal(0, sqrt(2 / (k * k * out_channels)))`."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def batch_norm(channel_axis, name, regularizer=None):
    return keras.layers.BatchNormalization(
        axis=channel_axis,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_regularizer=regularizer,
        beta_regularizer=regularizer,
        name=name,
    )


def conv(filters, kernel_size, strides, data_format, name, regularizer=None):
    """`conv_layers` as one callable."""
    layers = conv_layers(filters, kernel_size, strides, data_format, name, regularizer)

    def apply(x):
        for layer in layers:
            x = layer(x)
        return x

    return apply


def conv_layers(filters, kernel_size, strides, data_format, name, regularizer=None):
    """A bias-free convolution padded like PyTorch, as a list of layers.

    Keras' "same" padding with stride 2 pads only bottom/right, which shifts
    the output by one pixel against PyTorch's symmetric 1-pixel padding; so
    strided 3x3 convs get an explicit ZeroPadding2D(1) and "valid" padding,
    and ported weights give the same outputs.
    """
    layers = []
    padding = "same"
    if strides != 1 and kernel_size > 1:
        pad = (kernel_size - 1) // 2
        layers.append(
            keras.layers.ZeroPadding2D(pad, data_format=data_format, name=name + "_pad")
        )
        padding = "valid"
    layers.append(
        keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            data_format=data_format,
            kernel_initializer=he_fan_out(),
            kernel_regularizer=regularizer,
            name=name,
        )
    )
    return layers


def branch_layers(width, strides, bottleneck, data_format, name, weight_regularizer=None):
    """The layers of a unit's residual branch `F`, in order (see `pyramidal_unit`)."""
    channel_axis = -1 if data_format == "channels_last" else 1

    def bn(suffix):
        return batch_norm(channel_axis, f"{name}_{suffix}", weight_regularizer)

    def convolution(filters, kernel_size, conv_strides, suffix):
        return conv_layers(filters, kernel_size, conv_strides, data_format, f"{name}_{suffix}",
                           weight_regularizer)

    if not bottleneck:
        return [
            bn("bn1"), *convolution(width, 3, strides, "conv1"), bn("bn2"),
            keras.layers.ReLU(name=f"{name}_relu"),
            *convolution(width, 3, 1, "conv2"), bn("bn3"),
        ]
    return [
        bn("bn1"), *convolution(width, 1, 1, "conv1"), bn("bn2"),
        keras.layers.ReLU(name=f"{name}_relu1"),
        *convolution(width, 3, strides, "conv2"), bn("bn3"),
        keras.layers.ReLU(name=f"{name}_relu2"),
        *convolution(4 * width, 1, 1, "conv3"), bn("bn4"),
    ]


def pyramidal_unit(x, width, strides, bottleneck, *, regularization=None, drop_rate=0.0,
                   new_drop_rate=None, granularity="batch", seed=None, data_format,
                   weight_regularizer=None, skip_dropped=False, name):
    """One pyramidal residual unit: `y = S(x) + R(F(x))`.

    Basic (`bottleneck=False`, output `width` channels):
        F = BN -> Conv3x3(width, strides) -> BN -> ReLU -> Conv3x3(width) -> BN
    Bottleneck (output `4 * width` channels):
        F = BN -> Conv1x1(width) -> BN -> ReLU -> Conv3x3(width, strides)
            -> BN -> ReLU -> Conv1x1(4 * width) -> BN
    No ReLU before the first conv nor after the addition. `S` is
    `PyramidShortcut` (pool on stride 2, zero channels appended) and `R` the
    branch regularizer (`regularization`: None, "drop", "sepdrop" or
    "shakedrop") with this unit's `drop_rate` (and, for "sepdrop", the new
    channels' `new_drop_rate`; None is `drop_rate`). With `skip_dropped`, a
    PyramidDrop or PyramidSepDrop branch with per-batch gates is one
    `SkippableBranch` layer, which does not compute F when its gates are
    closed (same function; see `keras_pyramid.models.skipping`).
    """
    in_channels = x.shape[-1 if data_format == "channels_last" else 1]
    branch = branch_layers(width, strides, bottleneck, data_format, name, weight_regularizer)
    regularizer = make_regularizer(
        regularization, drop_rate, identity_channels=in_channels, new_drop_rate=new_drop_rate,
        granularity=granularity, seed=seed, name=f"{name}_{regularization}")
    if skip_dropped and can_skip(regularizer):
        residual = SkippableBranch(branch, regularizer, name=f"{name}_branch")(x)
    else:
        residual = x
        for layer in branch + ([regularizer] if regularizer is not None else []):
            residual = layer(residual)
    out_channels = 4 * width if bottleneck else width
    shortcut = PyramidShortcut(
        out_channels, strides, data_format=data_format, name=f"{name}_shortcut"
    )(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, residual])
