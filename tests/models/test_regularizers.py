"""The branch regularizers: their pure functions (the maths, on its own) and
their layers (gates, scaling, gradients, configs, saving)."""

import keras
import numpy as np
import pytest
from helpers.backends import gradient_of_sum
from helpers.models import random_images, tiny_model
from keras import ops
from saving_case import run_model_saving_test, run_serialization_test

from keras_pyramid.models.regularizers import (
    PyramidSepDrop,
    ShakeDrop,
    StochasticDepth,
    separated_stochastic_depth,
    shake_drop,
    stochastic_depth,
)

REGULARIZER_IDS = ["drop", "sepdrop", "shakedrop"]


# The pure functions.

def standard_errors(probability, draws, count=4.5):
    """`count` standard errors of a binomial proportion: a fixed seed makes the
    draw repeatable, the margin keeps the test true under another seed."""
    return count * np.sqrt(probability * (1 - probability) / draws)


def test_training_false_returns_the_inference_form_exactly():
    x = np.random.default_rng(3).normal(size=(2, 3, 3, 5)).astype("float32")
    keep, keep_new = np.float32(1 - 0.3), np.float32(1 - 0.6)
    np.testing.assert_array_equal(ops.convert_to_numpy(stochastic_depth(x, 0.3)), x * keep)
    np.testing.assert_array_equal(ops.convert_to_numpy(shake_drop(x, 0.3, training=False)),
                                  x * keep)
    separated = ops.convert_to_numpy(separated_stochastic_depth(x, 0.3, 2, new_rate=0.6))
    np.testing.assert_array_equal(separated[..., :2], x[..., :2] * keep)
    np.testing.assert_array_equal(separated[..., 2:], x[..., 2:] * keep_new)
    channels_first = x.transpose(0, 3, 1, 2)
    separated = ops.convert_to_numpy(separated_stochastic_depth(
        channels_first, 0.3, 2, new_rate=0.6, data_format="channels_first"))
    np.testing.assert_array_equal(separated[:, :2], channels_first[:, :2] * keep)
    np.testing.assert_array_equal(separated[:, 2:], channels_first[:, 2:] * keep_new)


GATED = {
    "drop": lambda x, training: stochastic_depth(x, 0.3, training, seed=21,
                                                 granularity="sample"),
    "sepdrop": lambda x, training: separated_stochastic_depth(x, 0.3, 2, training, seed=21,
                                                              granularity="sample"),
    "sepdrop-two-rates": lambda x, training: separated_stochastic_depth(
        x, 0.2, 2, training, seed=21, new_rate=0.7, granularity="sample"),
}


@pytest.mark.parametrize("name", GATED)
def test_the_mean_gated_branch_is_the_inference_form(name):
    """Over 8,000 examples with a gate each, the mean of each channel's
    training output is its inference output, within 4.5 standard errors."""
    draws = 8000
    x = np.ones((draws, 1, 1, 4), "float32")
    trained = ops.convert_to_numpy(GATED[name](x, True)).reshape(draws, 4)
    inference = ops.convert_to_numpy(GATED[name](x, False)).reshape(draws, 4)[0]
    for channel, keep in enumerate(inference):
        mean = trained[:, channel].mean()
        assert abs(mean - keep) < standard_errors(keep, draws), (channel, mean, keep)


def test_the_mean_shaken_branch_is_the_inference_form_for_any_alpha_range():
    """E[b + alpha - b * alpha] = p + (1 - p) * E[alpha]: an asymmetric
    alpha range moves the inference scale away from p."""
    draws, rate, alpha_range = 20000, 0.4, (0.0, 1.0)
    x = np.ones((draws, 1, 1, 1), "float32")
    trained = ops.convert_to_numpy(shake_drop(x, rate, True, seed=5, alpha_range=alpha_range,
                                              granularity="sample"))
    inference = ops.convert_to_numpy(shake_drop(x, rate, False, alpha_range=alpha_range))
    np.testing.assert_allclose(inference, 0.6 + 0.4 * 0.5, rtol=1e-6)
    # The coefficient's variance: Var = E[c^2] - E[c]^2 with c = 1 (p) or U[0, 1] (1 - p).
    std = np.sqrt(0.6 + 0.4 / 3 - 0.8 ** 2)
    assert abs(trained.mean() - inference.ravel()[0]) < 4.5 * std / np.sqrt(draws)


def test_a_dropped_sepdrop_unit_keeps_the_new_channels_gate_independent():
    """When `b1` closes (the input-aligned channels dropped), the new channels
    stay open with their own probability `p2`: one gate for both would
    close them too."""
    draws = 8000
    masks = ops.convert_to_numpy(separated_stochastic_depth(
        np.ones((draws, 1, 1, 4), "float32"), 0.5, 2, True, seed=13, new_rate=0.25,
        granularity="sample")).reshape(draws, 4)
    dropped = masks[:, 0] == 0
    assert dropped.sum() > draws / 4, dropped.sum()
    assert (masks[dropped, :2] == 0).all()
    open_new = masks[dropped, 2].mean()
    assert abs(open_new - 0.75) < standard_errors(0.75, dropped.sum()), open_new


def test_shake_drop_with_an_open_gate_passes_the_branch_both_ways():
    """rate 0: b = 1 always, so `b + alpha - b * alpha = 1` forward and backward."""
    x = np.random.default_rng(4).normal(size=(3, 2, 2, 2)).astype("float32")
    forward = ops.convert_to_numpy(shake_drop(x, 0.0, True, seed=2,
                                              coefficient_granularity="element"))
    np.testing.assert_array_equal(forward, x)
    backward = gradient_of_sum(lambda v: shake_drop(v, 0.0, True, seed=2), x)
    np.testing.assert_array_equal(backward, np.ones_like(x))


@pytest.mark.parametrize("granularity", ["batch", "sample"])
def test_each_layer_calls_its_function(granularity):
    """A layer in training draws what its function draws from the same seed:
    the layer adds state, not maths."""
    x = np.random.default_rng(6).normal(size=(16, 2, 2, 5)).astype("float32")
    cases = [
        (StochasticDepth(0.4, granularity=granularity, seed=17),
         lambda seed: stochastic_depth(x, 0.4, True, seed, granularity)),
        (PyramidSepDrop(0.4, 3, new_drop_rate=0.7, granularity=granularity, seed=17),
         lambda seed: separated_stochastic_depth(x, 0.4, 3, True, seed, new_rate=0.7,
                                                 granularity=granularity)),
        (ShakeDrop(0.4, granularity=granularity, seed=17),
         lambda seed: shake_drop(x, 0.4, True, seed, granularity=granularity)),
    ]
    for layer, function in cases:
        expected = ops.convert_to_numpy(function(keras.random.SeedGenerator(17)))
        np.testing.assert_allclose(ops.convert_to_numpy(layer(x, training=True)), expected,
                                   rtol=1e-6, err_msg=type(layer).__name__)


# The layers.



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


@pytest.mark.parametrize(
    "layer",
    [
        StochasticDepth(0.2, granularity="sample", seed=4),
        PyramidSepDrop(0.3, identity_channels=7, seed=4),
        PyramidSepDrop(0.3, identity_channels=7, new_drop_rate=0.6, seed=4),
        ShakeDrop(0.1, alpha_range=(-0.5, 0.5), coefficient_granularity="element", seed=4),
    ],
    ids=["drop", "sepdrop", "sepdrop-two-rates", "shakedrop"],
)
def test_config_round_trip(layer):
    assert isinstance(layer.get_config()["seed"], int)
    run_serialization_test(layer)


@pytest.mark.parametrize("regularization", ["drop", "sepdrop", "shakedrop"])
def test_a_regularized_model_round_trips(regularization, tmp_path):
    """Its config and its .keras file, by the names registered at import."""
    rates = {"new_drop_rate": 0.2} if regularization == "sepdrop" else {}
    model = tiny_model(regularization, **rates)
    run_serialization_test(model)
    restored = run_model_saving_test(model, random_images(2), tmp_path)
    [layer] = [layer for layer in restored.layers if layer.name == f"stage3_unit1_{regularization}"]
    assert layer.get_config() == model.get_layer(layer.name).get_config()


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
