"""Initial values: PyTorch's `nn.Linear` rule for the head, and NumPy draws
from Keras' random initializers for models whose weights are about to be
overwritten."""

import math

import keras
import numpy as np

# Keras keeps a variable's pending initializer, and its list of variables
# waiting for one, only privately: the draws replace those initializers, and
# Keras' own deferred initialization then runs them, once.
from keras.src.backend.common.variables import initialize_all_variables

# E[x^2] of a standard normal truncated at +-2 standard deviations is 0.8796^2:
# dividing by it keeps the truncated draw's variance (Keras' own constant).
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


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
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if variable._value is not None:  # built the plain way: nothing pending
            continue
        value = numpy_draw(variable._initializer, tuple(variable.shape), rng)
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


def fans(shape):
    """(fan_in, fan_out) as Keras counts them: a kernel's last two axes times
    its receptive field (the product of the other axes)."""
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def numpy_draw(initializer, shape, rng):
    """A NumPy draw from a random Keras initializer, or None for any other."""
    if isinstance(initializer, keras.initializers.RandomUniform):
        return rng.uniform(initializer.minval, initializer.maxval, shape)
    if not isinstance(initializer, keras.initializers.VarianceScaling):
        return None
    fan_in, fan_out = fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[
        initializer.mode]
    variance = initializer.scale / max(1.0, n)
    if initializer.distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    if initializer.distribution == "untruncated_normal":
        return rng.normal(0.0, math.sqrt(variance), shape)
    stddev = math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV
    draw = rng.normal(0.0, stddev, shape)
    outside = np.abs(draw) > 2 * stddev
    while outside.any():  # redrawn until inside: the truncated normal
        draw[outside] = rng.normal(0.0, stddev, int(outside.sum()))
        outside = np.abs(draw) > 2 * stddev
    return draw
