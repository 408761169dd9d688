"""The three branch regularizers: a pure function each, and the Keras layer that calls it.

    stochastic_depth(F, rate, training, seed)                       StochasticDepth
    separated_stochastic_depth(F, rate, D_in, training, seed, ...)  PyramidSepDrop
    shake_drop(F, rate, training, seed, ...)                        ShakeDrop

as timm has `drop_path(x, drop_prob, training)` beside `DropPath`. Notation
(docs/architecture.md section 2): a residual unit computes `y = S(x) + F(x)`,
`S(x)` the shortcut (pooled and zero-padded on the channel axis) and `F(x)`
the residual branch with `C` channels, of which the first `D_in` are aligned
with the real channels of `S(x)` and the last `C - D_in` with its zeros.

With `training=True` a function draws its gates (and ShakeDrop its
coefficients) from `seed`: a `keras.random.SeedGenerator` (what a layer
passes, created outside any compiled step, as JAX needs), or an int or None
for one (see `seed_stream`). With `training=False` it
returns the deterministic inference form, the expectation of the training
output over the draws, so a served model holds no random op. Everything is
`keras.ops` and `keras.random`: the same code on TensorFlow, JAX and PyTorch.

A layer keeps its constructor arguments, its seed generator and its
`rate_scale` state (what a drop-rate schedule writes): it trains with
`drop_rate * rate_scale` and serves with `drop_rate`, the target.
"""

import random

import keras
from keras import ops

from keras_pyramid.models.data_format import channel_axis, standardize_data_format
from keras_pyramid.utils.checks import check_choice, check_int, check_rate, fail

GRANULARITIES = ("batch", "sample")
# The one tuple of regularizer names; everything else derives from it.
REGULARIZED = ("drop", "sepdrop", "shakedrop")
REGULARIZATIONS = (None, *REGULARIZED)


def gate_shape(inputs, granularity):
    """Shape of one gate draw: a scalar per mini-batch or one per example."""
    if granularity == "batch":
        return (1,) * len(inputs.shape)
    return (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)


def bernoulli_gate(shape, keep_probability, seed, dtype):
    """A {0, 1} tensor of `shape` whose entries are 1 with `keep_probability`:
    `1[u < keep_probability]`, `u ~ U[0, 1)`."""
    uniform = keras.random.uniform(shape, dtype=dtype, seed=seed)
    return ops.cast(ops.less(uniform, ops.cast(keep_probability, dtype)), dtype)


def seed_stream(seed):
    """`seed` as a `keras.random.SeedGenerator`, one made from it for an int or
    None. Each draw then takes the next seed of the stream: an int passed to
    every draw would give the gate and the coefficients one and the same
    uniform, so they would not be independent."""
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    return keras.random.SeedGenerator(seed)


def stochastic_depth(branch, rate, training=False, seed=None, granularity="batch"):
    """PyramidDrop on a branch output `F`, with keep probability `p = 1 - rate`.

    - training: `b * F`, `b ~ Bernoulli(p)`, one `b` per mini-batch
      (`granularity="batch"`, the papers) or per example (`"sample"`, timm's
      DropPath); no rescaling.
    - inference: `p * F = E[b * F]`.
    """
    branch = ops.convert_to_tensor(branch)  # NumPy too, as keras.ops take it
    if not training:
        return branch * ops.cast(1.0 - rate, branch.dtype)
    gate = bernoulli_gate(gate_shape(branch, granularity), 1.0 - rate, seed_stream(seed),
                          branch.dtype)
    return branch * gate


def channel_gates(branch, identity_gate, new_gate, identity_channels, data_format=None):
    """`F * m`, `m = [g1 repeated D_in times, g2 for the other channels]` on the
    channel axis, `D_in = identity_channels`; `g1`, `g2` broadcast against `F`."""
    branch = ops.convert_to_tensor(branch)
    axis = channel_axis(standardize_data_format(data_format))
    channels = branch.shape[axis]
    mask_shape = [1] * len(branch.shape)
    mask_shape[axis] = channels
    is_identity = ops.reshape(ops.arange(channels) < identity_channels, mask_shape)
    return branch * ops.where(is_identity, identity_gate, new_gate)


def separated_stochastic_depth(branch, rate, identity_channels, training=False, seed=None,
                               new_rate=None, granularity="batch", data_format=None):
    """PyramidSepDrop on a branch output `F`: the input-aligned channels and the
    new ones behind separate gates, keep probabilities `p1 = 1 - rate` and
    `p2 = 1 - new_rate` (`new_rate=None`: `rate`, the paper).

    - training: `channel_gates(F, b1, b2)`, `b1 ~ Bernoulli(p1)` and
      `b2 ~ Bernoulli(p2)` independent, drawn in that order, one pair per
      mini-batch or per example; so `y = [S(x)[:D_in] + b1 * F1, b2 * F2]`.
    - inference: `[p1 * F1, p2 * F2] = E[...]`; with one rate, `p * F`.
    """
    branch = ops.convert_to_tensor(branch)
    rates = (rate, rate if new_rate is None else new_rate)
    if not training:
        keep = [ops.cast(1.0 - r, branch.dtype) for r in rates]
    else:
        shape, seed = gate_shape(branch, granularity), seed_stream(seed)
        keep = [bernoulli_gate(shape, 1.0 - r, seed, branch.dtype) for r in rates]
    return channel_gates(branch, *keep, identity_channels, data_format)


def shake_drop(branch, rate, training=False, seed=None, alpha_range=(-1.0, 1.0),
               beta_range=(0.0, 1.0), granularity="batch", coefficient_granularity=None):
    """ShakeDrop (Yamada et al. 2019) on a branch output `F`, `p = 1 - rate`.

    - training forward: `(b + alpha - b * alpha) * F`, `b ~ Bernoulli(p)`,
      `alpha ~ U[alpha_range]`;
    - training backward: `dL/dF = (b + beta - b * beta) * dL/dy`, `beta ~ U[beta_range]`;
    - inference: `E[b + alpha - b * alpha] * F = (p + (1 - p) * E[alpha]) * F`,
      which is `p * F` for the symmetric default `alpha_range`.

    The two coefficients need no custom gradient: `F * g_bwd +
    stop_gradient(F * g_fwd - F * g_bwd)` has value `F * g_fwd` and gradient
    `g_bwd`. `b` is drawn per mini-batch or per example (`granularity`);
    `alpha` and `beta` per batch, example or element (`coefficient_granularity`,
    None: `granularity`), since the released ShakeDrop codes differ there.
    """
    branch = ops.convert_to_tensor(branch)
    if not training:
        mean_alpha = (alpha_range[0] + alpha_range[1]) / 2
        return branch * ops.cast((1.0 - rate) + rate * mean_alpha, branch.dtype)
    dtype, seed = branch.dtype, seed_stream(seed)
    gate = bernoulli_gate(gate_shape(branch, granularity), 1.0 - rate, seed, dtype)
    coefficient_granularity = coefficient_granularity or granularity
    shape = (ops.shape(branch) if coefficient_granularity == "element"
             else gate_shape(branch, coefficient_granularity))
    alpha = keras.random.uniform(shape, *alpha_range, dtype=dtype, seed=seed)
    beta = keras.random.uniform(shape, *beta_range, dtype=dtype, seed=seed)
    # b + alpha - b * alpha, written so that b = 1 gives exactly 1.
    forward = gate + (1.0 - gate) * alpha
    backward = gate + (1.0 - gate) * beta
    return branch * backward + ops.stop_gradient(branch * forward - branch * backward)


def _resolve_seed(seed):
    # `get_config` must carry an int seed so that a reloaded layer has a
    # definite random stream; draw one when the user gave none.
    if seed is None:
        return random.randint(1, 2**31 - 1)
    return check_int("seed", seed)


class _BranchRegularizer(keras.layers.Layer):
    """Shared arguments, checks, state and config of the three branch regularizers."""

    def __init__(self, drop_rate, granularity="batch", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_rate = check_rate("drop_rate", drop_rate)
        self.granularity = check_choice("granularity", granularity, GRANULARITIES)
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

    def _rate(self, drop_rate, training):
        """The rate a call uses: scaled in training, the target at inference."""
        return self.training_rate(drop_rate) if training else drop_rate

    def _gated(self, training):
        # No gate to draw when every target rate is 0: the inference form is exact.
        return bool(training) and any(self.gate_drop_rates)

    def draw_gates(self, shape, dtype):
        """One {0, 1} gate per entry of `gate_drop_rates`, open with
        probability `1 - rate * rate_scale`, in the order the layer's function
        draws them; drawn apart from their use so that `SkippableBranch`
        can skip F when they are all closed."""
        return tuple(
            bernoulli_gate(shape, 1.0 - self.training_rate(rate), self.seed_generator, dtype)
            for rate in self.gate_drop_rates
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "drop_rate": self.drop_rate,
            "granularity": self.granularity,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keras_pyramid")
class StochasticDepth(_BranchRegularizer):
    """PyramidDrop: one Bernoulli gate on the whole residual branch
    (`stochastic_depth`).

    With keep probability `p = 1 - drop_rate`: training `b * F`,
    `b ~ Bernoulli(p)` per mini-batch (`granularity="batch"`, the papers) or
    per example (`"sample"`), no rescaling; inference `p * F`. Inside a
    pyramidal unit, `y = S(x) + b * F(x)`: when `b = 0` the channels that the
    shortcut pads with zeros stay zero, the flaw `PyramidSepDrop` fixes.

    Args:
        drop_rate: float in [0, 1), the probability that the branch is dropped.
        granularity: `"batch"` or `"sample"`, how many gates are drawn.
        seed: int or None, the seed of the layer's random stream.

    Call arguments:
        inputs: the residual branch output `F`.
        training: bool, whether to draw gates (True) or scale (False).
    """

    def call(self, inputs, training=False):
        gated = self._gated(training)
        return stochastic_depth(inputs, self._rate(self.drop_rate, gated), gated,
                                self.seed_generator, self.granularity)

    def apply_gates(self, inputs, gates):
        return inputs * gates[0]


@keras.saving.register_keras_serializable(package="keras_pyramid")
class PyramidSepDrop(_BranchRegularizer):
    """PyramidSepDrop: separate gates for the input-aligned and the new channels
    (`separated_stochastic_depth`).

    The first `identity_channels` (`D_in`) channels of the branch output `F`
    are aligned with the real channels of the shortcut, the other `C - D_in`
    with its zero padding. With `p1 = 1 - drop_rate`, `p2 = 1 - new_drop_rate`:
    training `F * [b1 repeated D_in times, b2 repeated C - D_in times]`,
    `b1 ~ Bernoulli(p1)` and `b2 ~ Bernoulli(p2)` independent, one pair per
    mini-batch (the paper) or per example; so `y = [S(x)[:D_in] + b1 * F1,
    b2 * F2]` (Yamada et al. 2016, where `p1 = p2`). Inference `[p1 * F1,
    p2 * F2]`; with one rate `p * F`, identical to PyramidDrop. Masking the
    output of the unit's last conv + BN equals splitting that conv in two, so
    the layer adds no parameters. Separate rates are this project's extension.

    Args:
        drop_rate: float in [0, 1), the probability that `b1` is closed.
        identity_channels: int, `D_in`, the number of leading channels gated by `b1`.
        new_drop_rate: float in [0, 1) or None, the probability that `b2` is
            closed; None is `drop_rate` (the paper).
        granularity: `"batch"` or `"sample"`.
        seed: int or None, the seed of the layer's random stream.
        data_format: `"channels_last"` or `"channels_first"`; where the channel
            axis is. Defaults to `keras.config.image_data_format()`.

    Call arguments:
        inputs: the residual branch output `F`.
        training: bool, whether to draw gates (True) or scale (False).
    """

    def __init__(self, drop_rate, identity_channels, new_drop_rate=None, granularity="batch",
                 seed=None, data_format=None, **kwargs):
        super().__init__(drop_rate, granularity=granularity, seed=seed, **kwargs)
        if new_drop_rate is not None:
            new_drop_rate = check_rate("new_drop_rate", new_drop_rate)
        self.new_drop_rate = new_drop_rate
        self.identity_channels = check_int("identity_channels", identity_channels, minimum=1)
        self.data_format = standardize_data_format(data_format)

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
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
        gated = self._gated(training)
        rate, new_rate = (self._rate(r, gated) for r in self.gate_drop_rates)
        return separated_stochastic_depth(
            inputs, rate, self.identity_channels, gated, self.seed_generator,
            new_rate=new_rate, granularity=self.granularity, data_format=self.data_format)

    def apply_gates(self, inputs, gates):
        return channel_gates(inputs, *gates, self.identity_channels, self.data_format)

    def get_config(self):
        return {
            **super().get_config(),
            "identity_channels": self.identity_channels,
            "new_drop_rate": self.new_drop_rate,
            "data_format": self.data_format,
        }


@keras.saving.register_keras_serializable(package="keras_pyramid")
class ShakeDrop(_BranchRegularizer):
    """ShakeDrop: a gate that, when closed, shakes the branch instead of
    zeroing it (`shake_drop`).

    With `p = 1 - drop_rate`, `b ~ Bernoulli(p)`, `alpha ~ U[alpha_range]`,
    `beta ~ U[beta_range]`: training forward `(b + alpha - b * alpha) * F`,
    backward `dL/dF = (b + beta - b * beta) * dL/dy`; inference
    `(p + (1 - p) * E[alpha]) * F`, `p * F` for the default `alpha_range`.

    Args:
        drop_rate: float in [0, 1), the probability that `b = 0`.
        alpha_range: (low, high) of the forward coefficient.
        beta_range: (low, high) of the backward coefficient.
        granularity: `"batch"` or `"sample"`, how many `b` are drawn.
        seed: int or None, the seed of the layer's random stream.
        coefficient_granularity: `"batch"`, `"sample"` or `"element"`, or None
            for `granularity`.

    Call arguments:
        inputs: the residual branch output `F` (it should end with BatchNorm).
        training: bool, whether to shake (True) or scale (False).
    """

    def __init__(self, drop_rate, alpha_range=(-1.0, 1.0), beta_range=(0.0, 1.0),
                 granularity="batch", seed=None, coefficient_granularity=None, **kwargs):
        super().__init__(drop_rate, granularity=granularity, seed=seed, **kwargs)
        self.alpha_range = _check_range(alpha_range, "alpha_range")
        self.beta_range = _check_range(beta_range, "beta_range")
        self.coefficient_granularity = check_choice(
            "coefficient_granularity", coefficient_granularity or granularity,
            GRANULARITIES + ("element",))

    def call(self, inputs, training=False):
        # A closed gate still shakes, so rate 0 draws too (its gate is always open).
        training = bool(training)
        return shake_drop(inputs, self._rate(self.drop_rate, training), training,
                          self.seed_generator, self.alpha_range, self.beta_range,
                          self.granularity, self.coefficient_granularity)

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


def check_regularization(regularization):
    return check_choice("regularization", regularization, REGULARIZATIONS)


def make_regularizer(regularization, drop_rate, identity_channels, granularity, seed, name,
                     new_drop_rate=None):
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
