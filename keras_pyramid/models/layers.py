"""The pyramidal shortcut and the three branch regularizers, as Keras 3 layers.

Every layer here is written with `keras.ops` and `keras.random` only, so it runs
unchanged on TensorFlow, JAX and PyTorch. The regularizers draw random numbers
only when `training=True`; at inference they apply their deterministic rule
`(1 - drop_rate) * F`, so a served model has no random op in its graph.

Notation (docs/architecture.md section 2): a residual unit computes `y = S(x) + F(x)` where
`S(x)` is the shortcut (pooled and zero-padded on the channel axis) and `F(x)`
the residual branch with `C` channels, of which the first `D_in` are aligned
with the real channels of `S(x)` and the last `a = C - D_in` with its zeros.
"""

import random

import keras
from keras import ops

from keras_pyramid.utils.checks import check_choice, check_int, check_rate, fail

GRANULARITIES = ("batch", "sample")
# The one tuple of regularizer names; everything else derives from it.
REGULARIZED = ("drop", "sepdrop", "shakedrop")
REGULARIZATIONS = (None, *REGULARIZED)


def linear_drop_rates(num_units, last_drop_rate):
    """Drop probability of every residual unit, first to last.

    Stochastic depth linear decay rule (Huang et al. 2016; docs/architecture.md section 2):
    `d_l = (l / L) * d_L` for unit `l = 1 .. L`, counted over the whole
    network, so the first unit is almost never dropped and the last one is
    dropped with probability `d_L`.
    """
    check_rate("last_drop_rate", last_drop_rate)
    check_int("num_units", num_units, minimum=1)
    return [last_drop_rate * unit / num_units for unit in range(1, num_units + 1)]


def _resolve_seed(seed):
    # `get_config` must carry an int seed so that a reloaded layer has a
    # definite random stream; draw one when the user gave none.
    if seed is None:
        return random.randint(1, 2**31 - 1)
    return check_int("seed", seed)


def _standardize_data_format(data_format):
    data_format = data_format or keras.config.image_data_format()
    return check_choice("data_format", data_format, ("channels_last", "channels_first"))


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def _gate_shape(inputs, granularity):
    """Shape of one gate draw: a scalar per mini-batch or one per example."""
    if granularity == "batch":
        return (1,) * len(inputs.shape)
    return (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)


def bernoulli_gate(shape, keep_probability, seed, dtype):
    """A {0, 1} tensor of `shape` whose entries are 1 with `keep_probability`."""
    uniform = keras.random.uniform(shape, dtype=dtype, seed=seed)
    return ops.cast(ops.less(uniform, ops.cast(keep_probability, dtype)), dtype)


class _BranchRegularizer(keras.layers.Layer):
    """Shared arguments, checks and config of the three branch regularizers."""

    def __init__(self, drop_rate, granularity="batch", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_rate = check_rate("drop_rate", drop_rate)
        check_choice("granularity", granularity, GRANULARITIES)
        self.granularity = granularity
        self.seed = _resolve_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True
        # Training drops with `drop_rate * rate_scale`. A drop-rate schedule
        # (keras_pyramid.training.drop_schedule) sets the scale between steps: state,
        # not a Python constant, so the compiled step is never retraced, and
        # checkpoints carry it. Inference always uses `drop_rate`, the target.
        # Created here (it depends on no input shape), as the seed generator.
        self.rate_scale = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="rate_scale"
        )

    @property
    def gate_drop_rates(self):
        """The target drop rate of each of the layer's gates, in draw order."""
        return (self.drop_rate,)

    def training_rate(self, drop_rate):
        """`drop_rate` (the layer's, or one of its gates') times the schedule's scale."""
        return ops.cast(drop_rate, self.rate_scale.dtype) * self.rate_scale

    def draw_gates(self, shape, dtype):
        """One {0, 1} gate per entry of `gate_drop_rates`, open with
        probability `1 - rate * rate_scale`; drawn apart from their use so
        that `SkippableBranch` can skip F when they are all closed."""
        return tuple(
            bernoulli_gate(shape, 1.0 - self.training_rate(rate), self.seed_generator, dtype)
            for rate in self.gate_drop_rates
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def _inference(self, inputs):
        return inputs * ops.cast(1.0 - self.drop_rate, inputs.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "drop_rate": self.drop_rate,
            "granularity": self.granularity,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keras_pyramid")
class StochasticDepth(_BranchRegularizer):
    """PyramidDrop: one Bernoulli gate on the whole residual branch.

    Applied to the branch output `F`, with keep probability `p = 1 - drop_rate`:

    - training: `b * F`, `b ~ Bernoulli(p)`; one `b` per mini-batch
      (`granularity="batch"`, the papers) or one per example (`"sample"`,
      like timm's DropPath). No rescaling during training.
    - inference: `p * F` (the expectation of the training output).

    Inside a pyramidal unit, `y = S(x) + b * F(x)`: when `b = 0` the channels
    that the shortcut pads with zeros stay zero, which is the flaw
    `PyramidSepDrop` fixes.

    Args:
        drop_rate: float in [0, 1), the probability that the branch is dropped.
        granularity: `"batch"` or `"sample"`, how many gates are drawn.
        seed: int or None, the seed of the layer's random stream.

    Call arguments:
        inputs: the residual branch output `F`.
        training: bool, whether to draw gates (True) or scale (False).
    """

    def call(self, inputs, training=False):
        if not training or not any(self.gate_drop_rates):
            return self._inference(inputs)
        return self.apply_gates(inputs, self.draw_gates(_gate_shape(inputs, self.granularity),
                                                        inputs.dtype))

    def apply_gates(self, inputs, gates):
        return inputs * gates[0]


@keras.saving.register_keras_serializable(package="keras_pyramid")
class PyramidSepDrop(_BranchRegularizer):
    """PyramidSepDrop: separate gates for the input-aligned and the new channels.

    The branch output `F` has `C` channels. Its first `identity_channels`
    (`D_in`) channels are aligned with the real channels of the shortcut; its
    last `C - D_in` channels are aligned with the shortcut's zero padding.
    With keep probabilities `p1 = 1 - drop_rate` and `p2 = 1 - new_drop_rate`:

    - training: `F * m`, where the channel mask is
      `m = [b1 repeated D_in times, b2 repeated C - D_in times]` and
      `b1 ~ Bernoulli(p1)`, `b2 ~ Bernoulli(p2)` are independent; one pair per
      mini-batch (`granularity="batch"`, the paper) or one pair per example
      (`"sample"`). So `y = [S(x)[:D_in] + b1 * F1, b2 * F2]` (Yamada et al.
      2016, where `p1 = p2`).
    - inference: `[p1 * F1, p2 * F2]`, the expectation; with one rate `p * F`,
      identical to PyramidDrop.

    When `identity_channels == C` only `b1` is used and the layer is
    `StochasticDepth`. Masking the output of the unit's single last conv + BN
    equals splitting that conv in two, so the layer adds no parameters.
    Separate rates are this project's extension, not the paper's.

    Args:
        drop_rate: float in [0, 1), the probability that the gate of the
            input-aligned channels (`b1`) is closed.
        identity_channels: int, `D_in`, the number of leading channels gated by `b1`.
        new_drop_rate: float in [0, 1) or None, the probability that the gate
            of the new channels (`b2`) is closed; None is `drop_rate` (the paper).
        granularity: `"batch"` or `"sample"`.
        data_format: `"channels_last"` or `"channels_first"`; where the channel
            axis is. Defaults to `keras.config.image_data_format()`.
        seed: int or None, the seed of the layer's random stream.

    Call arguments:
        inputs: the residual branch output `F`.
        training: bool, whether to draw gates (True) or scale (False).
    """

    def __init__(
        self,
        drop_rate,
        identity_channels,
        new_drop_rate=None,
        granularity="batch",
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(drop_rate, granularity=granularity, seed=seed, **kwargs)
        if new_drop_rate is not None:
            new_drop_rate = check_rate("new_drop_rate", new_drop_rate)
        self.new_drop_rate = new_drop_rate
        self.identity_channels = check_int("identity_channels", identity_channels, minimum=1)
        self.data_format = _standardize_data_format(data_format)

    def build(self, input_shape):
        channels = input_shape[_channel_axis(self.data_format)]
        if channels is not None and channels < self.identity_channels:
            raise ValueError(
                f"`identity_channels` ({self.identity_channels}) exceeds the "
                f"channels of the input. Received: input_shape={input_shape}"
            )

    @property
    def gate_drop_rates(self):
        """`(d1, d2)`: the input-aligned channels' rate and the new channels'."""
        return (self.drop_rate,
                self.drop_rate if self.new_drop_rate is None else self.new_drop_rate)

    def call(self, inputs, training=False):
        if not training or not any(self.gate_drop_rates):
            return self._inference(inputs)
        return self.apply_gates(inputs, self.draw_gates(_gate_shape(inputs, self.granularity),
                                                        inputs.dtype))

    def _inference(self, inputs):
        identity_rate, new_rate = self.gate_drop_rates
        if new_rate == identity_rate:
            return super()._inference(inputs)
        keep = tuple(ops.cast(1.0 - rate, inputs.dtype) for rate in self.gate_drop_rates)
        return self.apply_gates(inputs, keep)

    def apply_gates(self, inputs, gates):
        """`inputs * [g1 repeated D_in times, g2 for the rest]` on the channel axis."""
        identity_gate, new_gate = gates
        channel_axis = _channel_axis(self.data_format)
        channels = inputs.shape[channel_axis]
        is_identity = ops.arange(channels) < self.identity_channels
        mask_shape = [1] * len(inputs.shape)
        mask_shape[channel_axis] = channels
        is_identity = ops.reshape(is_identity, mask_shape)
        return inputs * ops.where(is_identity, identity_gate, new_gate)

    def get_config(self):
        return {
            **super().get_config(),
            "identity_channels": self.identity_channels,
            "new_drop_rate": self.new_drop_rate,
            "data_format": self.data_format,
        }


@keras.saving.register_keras_serializable(package="keras_pyramid")
class ShakeDrop(_BranchRegularizer):
    """ShakeDrop: a gate that, when closed, shakes the branch instead of zeroing it.

    With keep probability `p = 1 - drop_rate`, `b ~ Bernoulli(p)`,
    `alpha ~ U[alpha_range]` and `beta ~ U[beta_range]` (Yamada et al. 2019):

    - training forward: `(b + alpha - b * alpha) * F`;
    - training backward: `dL/dF = (b + beta - b * beta) * dL/dy`;
    - inference: `p * F`.

    The two coefficients are applied without a custom gradient:
    `F * g_bwd + stop_gradient(F * g_fwd - F * g_bwd)` has value `F * g_fwd`
    and gradient `g_bwd`. `b` is drawn per mini-batch (`granularity="batch"`)
    or per example (`"sample"`); `alpha` and `beta` per batch, example or
    element (`coefficient_granularity`, default: the same as `granularity`),
    because the released ShakeDrop codes differ here.

    Args:
        drop_rate: float in [0, 1), the probability that `b = 0`.
        alpha_range: (low, high) of the forward coefficient.
        beta_range: (low, high) of the backward coefficient.
        granularity: `"batch"` or `"sample"`, how many `b` are drawn.
        coefficient_granularity: `"batch"`, `"sample"` or `"element"`, or None
            for `granularity`.
        seed: int or None, the seed of the layer's random stream.

    Call arguments:
        inputs: the residual branch output `F` (it should end with BatchNorm).
        training: bool, whether to shake (True) or scale (False).
    """

    def __init__(
        self,
        drop_rate,
        alpha_range=(-1.0, 1.0),
        beta_range=(0.0, 1.0),
        granularity="batch",
        seed=None,
        coefficient_granularity=None,
        **kwargs,
    ):
        super().__init__(drop_rate, granularity=granularity, seed=seed, **kwargs)
        self.alpha_range = _check_range(alpha_range, "alpha_range")
        self.beta_range = _check_range(beta_range, "beta_range")
        self.coefficient_granularity = check_choice(
            "coefficient_granularity", coefficient_granularity or granularity,
            GRANULARITIES + ("element",))

    def call(self, inputs, training=False):
        if not training:
            return self._inference(inputs)
        dtype = inputs.dtype
        (gate,) = self.draw_gates(_gate_shape(inputs, self.granularity), dtype)
        if self.coefficient_granularity == "element":
            coefficient_shape = ops.shape(inputs)
        else:
            coefficient_shape = _gate_shape(inputs, self.coefficient_granularity)
        alpha = keras.random.uniform(
            coefficient_shape, *self.alpha_range, dtype=dtype, seed=self.seed_generator
        )
        beta = keras.random.uniform(
            coefficient_shape, *self.beta_range, dtype=dtype, seed=self.seed_generator
        )
        # b + alpha - b * alpha, written so that b = 1 gives exactly 1.
        forward = gate + (1.0 - gate) * alpha
        backward = gate + (1.0 - gate) * beta
        return inputs * backward + ops.stop_gradient(
            inputs * forward - inputs * backward
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_range": list(self.alpha_range),
            "beta_range": list(self.beta_range),
            "coefficient_granularity": self.coefficient_granularity,
        }


def _check_range(value, argument):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not low <= high:
        fail(argument, "be a pair (low, high) with low <= high", value)
    return (low, high)


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


def _spatial_axes(data_format):
    return (1, 2) if data_format == "channels_last" else (2, 3)


def pad_edges_to_even(x, data_format):
    """`x` with its last row (column) repeated once when its height (width) is odd.

    Then a 2x2 stride-2 mean over it IS the ceil-mode pool that does not count
    padding: a window hanging off the edge holds its real values twice each,
    `(a + b + a + b) / 4 = (a + b) / 2`, and the corner `(a + a + a + a) / 4 = a`.
    Even sizes are returned untouched (the same graph as before odd sizes existed).
    """
    padding = [[0, 0] for _ in x.shape]
    for axis in _spatial_axes(data_format):
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
               for axis in _spatial_axes(data_format))
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
        self.data_format = _standardize_data_format(data_format)

    def build(self, input_shape):
        in_channels = input_shape[_channel_axis(self.data_format)]
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
            padding[_channel_axis(self.data_format)] = [0, self.new_channels]
            x = ops.pad(x, padding)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.strides == 2:
            for axis in _spatial_axes(self.data_format):
                shape[axis] = None if shape[axis] is None else (shape[axis] + 1) // 2
        shape[_channel_axis(self.data_format)] = self.out_channels
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "strides": self.strides,
            "data_format": self.data_format,
        }


def check_regularization(regularization):
    return check_choice("regularization", regularization, REGULARIZATIONS)


def make_regularizer(
    regularization, drop_rate, identity_channels, granularity, seed, name, new_drop_rate=None
):
    """The branch regularizer layer of one unit, or None when there is none.
    `new_drop_rate` is PyramidSepDrop's rate of the new channels (None: `drop_rate`)."""
    check_regularization(regularization)
    common = dict(granularity=granularity, seed=seed, name=name)
    if regularization == "drop":
        return StochasticDepth(drop_rate, **common)
    if regularization == "sepdrop":
        return PyramidSepDrop(drop_rate, identity_channels, new_drop_rate, **common)
    if regularization == "shakedrop":
        return ShakeDrop(drop_rate, **common)
    return None
