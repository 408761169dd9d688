"""The two pyramidal residual units; this is the one place that builds a unit.

Layer names are hierarchical, `{prefix}_{op}` with `prefix = "stage2_unit5"`,
so `summary()` reads as the paper's table and weights can be ported by name.
"""

import keras

from keras_pyramid.layers import PyramidShortcut, make_regularizer

# BatchNorm as in Torch: momentum 0.1 there is 0.9 here (the weight kept by
# the moving average), and Torch's epsilon.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


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
    """A bias-free convolution padded like PyTorch.

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

    def apply(x):
        for layer in layers:
            x = layer(x)
        return x

    return apply


def pyramidal_unit(
    x,
    width,
    strides,
    bottleneck,
    *,
    regularization=None,
    drop_rate=0.0,
    granularity="batch",
    seed=None,
    data_format,
    weight_regularizer=None,
    name,
):
    """One pyramidal residual unit: `y = S(x) + R(F(x))`.

    Basic (`bottleneck=False`, output `width` channels):
        F = BN -> Conv3x3(width, strides) -> BN -> ReLU -> Conv3x3(width) -> BN
    Bottleneck (output `4 * width` channels):
        F = BN -> Conv1x1(width) -> BN -> ReLU -> Conv3x3(width, strides)
            -> BN -> ReLU -> Conv1x1(4 * width) -> BN
    No ReLU before the first conv nor after the addition. `S` is
    `PyramidShortcut` (pool on stride 2, zero channels appended) and `R` the
    branch regularizer (`regularization`: None, "drop", "sepdrop" or
    "shakedrop") with this unit's `drop_rate`.
    """
    channel_axis = -1 if data_format == "channels_last" else 1
    in_channels = x.shape[channel_axis]
    wr = weight_regularizer

    branch = batch_norm(channel_axis, f"{name}_bn1", wr)(x)
    if bottleneck:
        out_channels = 4 * width
        branch = conv(width, 1, 1, data_format, f"{name}_conv1", wr)(branch)
        branch = batch_norm(channel_axis, f"{name}_bn2", wr)(branch)
        branch = keras.layers.ReLU(name=f"{name}_relu1")(branch)
        branch = conv(width, 3, strides, data_format, f"{name}_conv2", wr)(branch)
        branch = batch_norm(channel_axis, f"{name}_bn3", wr)(branch)
        branch = keras.layers.ReLU(name=f"{name}_relu2")(branch)
        branch = conv(out_channels, 1, 1, data_format, f"{name}_conv3", wr)(branch)
        branch = batch_norm(channel_axis, f"{name}_bn4", wr)(branch)
    else:
        out_channels = width
        branch = conv(width, 3, strides, data_format, f"{name}_conv1", wr)(branch)
        branch = batch_norm(channel_axis, f"{name}_bn2", wr)(branch)
        branch = keras.layers.ReLU(name=f"{name}_relu")(branch)
        branch = conv(width, 3, 1, data_format, f"{name}_conv2", wr)(branch)
        branch = batch_norm(channel_axis, f"{name}_bn3", wr)(branch)

    regularizer = make_regularizer(
        regularization,
        drop_rate,
        identity_channels=in_channels,
        granularity=granularity,
        seed=seed,
        name=f"{name}_{regularization}",
    )
    if regularizer is not None:
        branch = regularizer(branch)
    shortcut = PyramidShortcut(
        out_channels, strides, data_format=data_format, name=f"{name}_shortcut"
    )(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, branch])
