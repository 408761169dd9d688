"""The regularizers and the shortcut: gates, scaling, gradients, configs."""

import keras
import numpy as np
import pytest
from helpers import gradient_of_sum
from keras import ops

from keras_pyramid.models.layers import (
    PyramidSepDrop,
    PyramidShortcut,
    ShakeDrop,
    StochasticDepth,
    linear_drop_rates,
)

REGULARIZER_IDS = ["drop", "sepdrop", "shakedrop"]


def three_regularizers(drop_rate):
    return [
        StochasticDepth(drop_rate, seed=5),
        PyramidSepDrop(drop_rate, identity_channels=2, seed=5),
        ShakeDrop(drop_rate, seed=5),
    ]


def sepdrop_outcomes(layer, draws):
    """(b1, b2) of `draws` training calls on an all-ones 2+2 channel input."""
    ones = np.ones((1, 1, 1, 4), "float32")
    outcomes = []
    for _ in range(draws):
        mask = ops.convert_to_numpy(layer(ones, training=True))[0, 0, 0]
        # Within a gate group every channel must share the draw.
        assert mask[0] == mask[1] and mask[2] == mask[3], mask
        outcomes.append((mask[0], mask[2]))
    return np.array(outcomes)


def test_sepdrop_four_outcomes_have_the_product_probabilities():
    drop_rate, draws = 0.3, 2000
    keep = 1 - drop_rate
    layer = PyramidSepDrop(drop_rate, identity_channels=2, seed=11)
    outcomes = sepdrop_outcomes(layer, draws)
    expected = {
        (1, 1): keep * keep,
        (1, 0): keep * drop_rate,
        (0, 1): drop_rate * keep,
        (0, 0): drop_rate * drop_rate,
    }
    for (b1, b2), probability in expected.items():
        observed = np.mean((outcomes[:, 0] == b1) & (outcomes[:, 1] == b2))
        # 4.5 standard errors of a binomial proportion: a fixed seed makes
        # the draw repeatable, the margin makes it robust to seed changes.
        tolerance = 4.5 * np.sqrt(probability * (1 - probability) / draws)
        assert abs(observed - probability) < tolerance, ((b1, b2), observed)


def test_sepdrop_with_two_rates_draws_the_four_outcomes_at_their_probabilities():
    """b1 ~ Bernoulli(0.8) on the input-aligned channels, b2 ~ Bernoulli(0.4)
    on the new ones (per example, 8,000 examples in one call); each outcome's
    frequency within 4.5 standard errors of its product probability."""
    layer = PyramidSepDrop(0.2, identity_channels=2, new_drop_rate=0.6, granularity="sample",
                           seed=12)
    draws = 8000
    masks = ops.convert_to_numpy(layer(np.ones((draws, 1, 1, 4), "float32"), training=True))
    masks = masks.reshape(draws, 4)
    assert (masks[:, 0] == masks[:, 1]).all() and (masks[:, 2] == masks[:, 3]).all()
    keep1, keep2 = 0.8, 0.4
    expected = {(1, 1): keep1 * keep2, (1, 0): keep1 * (1 - keep2),
                (0, 1): (1 - keep1) * keep2, (0, 0): (1 - keep1) * (1 - keep2)}
    for (b1, b2), probability in expected.items():
        observed = np.mean((masks[:, 0] == b1) & (masks[:, 2] == b2))
        tolerance = 4.5 * np.sqrt(probability * (1 - probability) / draws)
        assert abs(observed - probability) < tolerance, ((b1, b2), observed, probability)


def test_sepdrop_with_two_rates_scales_each_channel_group_at_inference():
    layer = PyramidSepDrop(0.2, identity_channels=2, new_drop_rate=0.6)
    x = np.arange(1, 13, dtype="float32").reshape(1, 1, 3, 4)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)),
                               x * np.array([0.8, 0.8, 0.4, 0.4], "float32"), rtol=1e-6)
    tied = PyramidSepDrop(0.2, identity_channels=2, new_drop_rate=None)
    assert tied.gate_drop_rates == (0.2, 0.2)
    np.testing.assert_allclose(ops.convert_to_numpy(tied(x)), 0.8 * x, rtol=1e-6)


def test_sepdrop_gates_are_independent_of_each_other():
    outcomes = sepdrop_outcomes(PyramidSepDrop(0.5, identity_channels=2, seed=3), 1000)
    correlation = np.corrcoef(outcomes[:, 0], outcomes[:, 1])[0, 1]
    assert abs(correlation) < 0.15


@pytest.mark.parametrize(
    "layer",
    [
        StochasticDepth(0.5, seed=1),
        PyramidSepDrop(0.5, identity_channels=3, seed=1),
    ],
    ids=["drop", "sepdrop"],
)
def test_batch_granularity_draws_one_gate_for_the_whole_batch(layer):
    x = np.ones((64, 2, 2, 6), "float32")
    seen = set()
    for _ in range(20):
        y = ops.convert_to_numpy(layer(x, training=True))
        # Every example of the batch got the same mask.
        assert np.all(y == y[:1]), "per-batch gates differ between examples"
        seen.add(tuple(y[0, 0, 0]))
    assert len(seen) > 1, "the gate never changed between calls"


@pytest.mark.parametrize(
    "layer",
    [
        StochasticDepth(0.5, granularity="sample", seed=2),
        PyramidSepDrop(0.5, identity_channels=3, granularity="sample", seed=2),
    ],
    ids=["drop", "sepdrop"],
)
def test_sample_granularity_draws_one_gate_per_example(layer):
    x = np.ones((256, 2, 2, 6), "float32")
    y = ops.convert_to_numpy(layer(x, training=True))
    # Constant within an example and gate group, varying across examples.
    assert np.all(y[:, :, :, :3] == y[:, :1, :1, :1])
    assert np.all(y[:, :, :, 3:] == y[:, :1, :1, 3:4])
    kept = y[:, 0, 0, 0]
    assert 0.35 < kept.mean() < 0.65, kept.mean()


@pytest.mark.parametrize("layer", three_regularizers(0.4), ids=REGULARIZER_IDS)
def test_mean_training_output_approaches_the_inference_output(layer):
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 4)).astype("float32")
    inference = ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(inference, 0.6 * x, rtol=1e-6)
    draws = 1500
    mean = sum(ops.convert_to_numpy(layer(x, training=True)) for _ in range(draws))
    mean /= draws
    # The coefficient's standard deviation is at most 0.62 (ShakeDrop:
    # var = p + (1 - p) / 3 - p^2 = 0.373), so the mean's standard error is
    # below 0.62 / sqrt(draws) * |x|; allow 5 of them.
    tolerance = 5 * 0.62 / np.sqrt(draws) * np.abs(x).max()
    np.testing.assert_allclose(mean, inference, atol=tolerance)


@pytest.mark.parametrize("layer", three_regularizers(0.5), ids=REGULARIZER_IDS)
def test_inference_is_deterministic(layer):
    x = np.random.default_rng(1).normal(size=(8, 3, 3, 4)).astype("float32")
    first = ops.convert_to_numpy(layer(x))
    second = ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, 0.5 * x, rtol=1e-6)


def test_shakedrop_forward_and_backward_coefficients():
    layer = ShakeDrop(0.5, seed=9)
    x = np.ones((1, 2, 2, 3), "float32")
    shaken = 0
    for _ in range(40):
        # One seed per call: the gradient call must see the same draws.
        layer.seed_generator.state.assign(np.array([9, _], "uint32"))
        forward = ops.convert_to_numpy(layer(x, training=True)).ravel()
        layer.seed_generator.state.assign(np.array([9, _], "uint32"))
        backward = gradient_of_sum(lambda v: layer(v, training=True), x).ravel()
        assert np.all(forward == forward[0]) and np.all(backward == backward[0])
        if forward[0] == 1.0:  # b = 1: the branch passes untouched both ways
            assert backward[0] == 1.0
        else:  # b = 0: forward alpha in [-1, 1], backward beta in [0, 1]
            shaken += 1
            assert -1.0 <= forward[0] <= 1.0 and 0.0 <= backward[0] <= 1.0
            assert forward[0] != backward[0]
    assert 5 < shaken < 35, shaken


def test_linear_drop_rate_rule():
    rates = linear_drop_rates(4, 0.5)
    np.testing.assert_allclose(rates, [0.125, 0.25, 0.375, 0.5])
    assert linear_drop_rates(54, 0.5)[-1] == 0.5


@pytest.mark.parametrize("strides", [1, 2])
def test_shortcut_pools_and_appends_zero_channels(strides):
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype("float32")
    y = ops.convert_to_numpy(PyramidShortcut(5, strides)(x))
    expected = x
    if strides == 2:
        expected = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(y[..., :3], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y[..., 3:], 0.0)


def test_shortcut_channels_first():
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype("float32")
    y = ops.convert_to_numpy(PyramidShortcut(5, 2, data_format="channels_first")(x))
    assert y.shape == (2, 5, 2, 2)
    np.testing.assert_array_equal(y[:, 3:], 0.0)


@pytest.mark.parametrize(
    "layer",
    [
        StochasticDepth(0.2, granularity="sample", seed=4),
        PyramidSepDrop(0.3, identity_channels=7, seed=4),
        PyramidSepDrop(0.3, identity_channels=7, new_drop_rate=0.6, seed=4),
        ShakeDrop(0.1, alpha_range=(-0.5, 0.5), coefficient_granularity="element", seed=4),
        PyramidShortcut(12, 2),
    ],
    ids=["drop", "sepdrop", "sepdrop-two-rates", "shakedrop", "shortcut"],
)
def test_config_round_trip(layer):
    config = layer.get_config()
    if hasattr(layer, "seed"):
        assert isinstance(config["seed"], int)
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


def test_unseeded_layer_still_has_an_int_seed():
    assert isinstance(StochasticDepth(0.5).get_config()["seed"], int)


@pytest.mark.parametrize(
    "make, argument, value",
    [
        (lambda: StochasticDepth(1.0), "drop_rate", "1.0"),
        (lambda: StochasticDepth(-0.1), "drop_rate", "-0.1"),
        (lambda: StochasticDepth(0.5, granularity="pixel"), "granularity", "'pixel'"),
        (lambda: PyramidSepDrop(0.5, identity_channels=0), "identity_channels", "0"),
        (lambda: PyramidSepDrop(0.5, 2, new_drop_rate=1.0), "new_drop_rate", "1.0"),
        (lambda: PyramidSepDrop(0.5, 2, new_drop_rate=-0.5), "new_drop_rate", "-0.5"),
        (lambda: ShakeDrop(0.5, alpha_range=(1, -1)), "alpha_range", r"\(1, -1\)"),
        (lambda: PyramidShortcut(8, strides=3), "strides", "3"),
    ],
)
def test_bad_layer_arguments_name_the_argument_and_value(make, argument, value):
    with pytest.raises(ValueError, match=rf"{argument}={value}"):
        make()


def test_gates_change_between_compiled_training_steps():
    """Under a jitted train step (JAX: jit_compile=True) every step draws anew."""
    inputs = keras.Input((4,))
    branch = keras.layers.Dense(4, kernel_initializer="ones", use_bias=False)(inputs)
    outputs = PyramidSepDrop(0.5, identity_channels=2, seed=8)(branch)
    model = keras.Model(inputs, outputs)
    # lr 0: the weights stay, so the loss only depends on the gates.
    model.compile(keras.optimizers.SGD(0.0), loss="mae", jit_compile="auto")
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 4), "float32")
    losses = {round(float(model.train_on_batch(x, y)), 4) for _ in range(30)}
    # Outputs are 4 * [b1, b1, b2, b2], so the mae is 2 * (b1 + b2).
    assert losses <= {0.0, 2.0, 4.0}, losses
    assert len(losses) >= 2, losses
