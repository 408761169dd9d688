"""The parameter-free shortcut of a pyramidal unit, and the pooling it needs.

`PyramidShortcut` computes `S(x) = pad_C(pool(x))` (docs/architecture.md
section 2); `shortcut_pool` is its 2x2 stride-2 average pool in ceil mode,
written so that every backend gives the same numbers on every input size.
"""

import keras
from keras import ops

from keras_pyramid.models.data_format import channel_axis, spatial_axes, standardize_data_format
from keras_pyramid.utils.checks import check_choice


def average_pool_2x2_by_slices(x, data_format):
    """The 2x2, stride-2 average pool as the mean of four strided slices.

    `pool(x)[i, j] = (x[2i, 2j] + x[2i + 1, 2j] + x[2i, 2j + 1] + x[2i + 1, 2j + 1]) / 4`,
    the same function as `ops.average_pool(x, 2, 2, "valid")` (to float rounding)
    for even height and width (`shortcut_pool` pads odd ones first).

    Why: jaxlib 0.10.2 on x86 CPUs segfaults (in YNNPACK's
    `multiply_add_fp32` kernel) when XLA's YNN "reduce" library fusion pulls
    a `reduce-window` into a chain `conv(x * s) -> pad_channels + conv(. * s)`,
    which is exactly a pyramidal unit followed by the pooled shortcut of the
    next stage; it needs 16 or more channels (PyramidNet(20, 138) and
    PyramidNet(110, 84) crash in inference). Slices and adds form no
    reduction, so that fusion never forms (measured: the four-slice pool
    runs every paper width; `optimization_barrier` and a reshape-mean do not
    help). The reproduction, without Keras, is
    `tests/upstream/jax_ynn_reduce_crash.py`; related upstream reports of the same
    jaxlib 0.10.2 YNN/slinky regression: jax-ml/jax#39257, jax-ml/jax#40412.
    `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-reduce` also avoids
    it, but must be set before JAX starts, which a library cannot promise.
    """
    if data_format == "channels_last":
        corners = [x[:, i::2, j::2, :] for i in (0, 1) for j in (0, 1)]
    else:
        corners = [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
    return (corners[0] + corners[1] + corners[2] + corners[3]) * ops.cast(0.25, x.dtype)


def pad_edges_to_even(x, data_format):
    """`x` with its last row (column) repeated once when its height (width) is odd.

    Then a 2x2 stride-2 mean over it IS the ceil-mode pool that does not count
    padding: a window hanging off the edge holds its real values twice each,
    `(a + b + a + b) / 4 = (a + b) / 2`, and the corner `(a + a + a + a) / 4 = a`.
    Even sizes are returned untouched (the same graph as before odd sizes existed).
    """
    padding = [[0, 0] for _ in x.shape]
    for axis in spatial_axes(data_format):
        padding[axis][1] = x.shape[axis] % 2
    if not any(after for _, after in padding):
        return x
    return ops.pad(x, padding, mode="edge")


def shortcut_pool(x, data_format):
    """The shortcut's 2x2 stride-2 average pool, in ceil mode: output
    `ceil(n / 2)`, the size of the strided 3x3 convolution (pad 1) it is added
    to, on odd `n` too; a window hanging off the edge averages its real values
    only (`pool(x)[i, j] = mean of x[2i:2i + 2, 2j:2j + 2]` clipped to `x`),
    as PyTorch's `AvgPool2d(2, 2, ceil_mode=True)` in the official code.

    Even sizes run the ops they always ran ("valid"), so even-size networks
    and their logits are unchanged. Odd or unknown sizes: Keras' "same"
    padding pads bottom/right, as ceil mode does, and excludes the padding from
    the mean on TensorFlow and PyTorch (which pads by edge replication, the
    same average by `pad_edges_to_even`'s identity); JAX pads its edges and
    takes the four-slice mean (`average_pool_2x2_by_slices`, for the crash it avoids).
    """
    if keras.backend.backend() == "jax":  # shapes are static under JAX tracing
        return average_pool_2x2_by_slices(pad_edges_to_even(x, data_format), data_format)
    even = all(x.shape[axis] is not None and x.shape[axis] % 2 == 0
               for axis in spatial_axes(data_format))
    return ops.average_pool(x, pool_size=2, strides=2, padding="valid" if even else "same",
                            data_format=data_format)


@keras.saving.register_keras_serializable(package="keras_pyramid")
class PyramidShortcut(keras.layers.Layer):
    """The parameter-free shortcut of a pyramidal unit.

    `S(x) = pad_C(pool(x))`: a 2x2 average pool with stride 2 when the unit
    downsamples (`strides=2`; ceil mode on odd sizes, see `shortcut_pool`),
    then `out_channels - C_in` zero channels appended at the END of the
    channel axis (Han et al. 2017), so that the shortcut can be added to a
    branch that is wider than its input. Never a projection.

    Args:
        out_channels: int, the channels of the unit's output.
        strides: 1 or 2.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Call arguments:
        inputs: the unit's input `x`.
    """

    def __init__(self, out_channels, strides=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_choice("strides", strides, (1, 2))
        self.out_channels = int(out_channels)
        self.strides = strides
        self.data_format = standardize_data_format(data_format)

    def build(self, input_shape):
        in_channels = input_shape[channel_axis(self.data_format)]
        if in_channels > self.out_channels:
            raise ValueError(
                f"The shortcut cannot narrow {in_channels} channels to "
                f"`out_channels`={self.out_channels}. Received: input_shape={input_shape}"
            )
        self.new_channels = self.out_channels - in_channels

    def call(self, inputs):
        x = inputs
        if self.strides == 2:
            x = shortcut_pool(x, self.data_format)
        if self.new_channels:
            padding = [[0, 0]] * len(x.shape)
            padding[channel_axis(self.data_format)] = [0, self.new_channels]
            x = ops.pad(x, padding)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.strides == 2:
            for axis in spatial_axes(self.data_format):
                shape[axis] = None if shape[axis] is None else (shape[axis] + 1) // 2
        shape[channel_axis(self.data_format)] = self.out_channels
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "strides": self.strides,
            "data_format": self.data_format,
        }
