"""Real skipping of dropped branches (`SkippableBranch`): same function, less work."""

import re

import keras
import numpy as np
import pytest
from helpers.backends import gradient_of_sum
from helpers.models import random_images, tiny_model
from saving_case import run_model_saving_test, run_serialization_test

from keras_pyramid.models.regularizers import PyramidSepDrop, ShakeDrop, StochasticDepth
from keras_pyramid.models.skipping import SkippableBranch


class CallCounter(keras.layers.Layer):
    """Identity that counts its executions (eager backends only: JAX traces
    both sides of a cond even though it runs one)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, x):
        self.calls += 1
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def branch_layers(counter=None):
    layers = [keras.layers.BatchNormalization(momentum=0.5),
              keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
              keras.layers.BatchNormalization(momentum=0.5)]
    return layers + ([counter] if counter else [])


def regularizer_whose_first_draw_is(wanted_open, make):
    """A regularizer (fresh, seeded) whose first training draw opens (or
    closes) every gate, found by trying seeds."""
    for seed in range(200):
        gates = make(seed).draw_gates((1, 1, 1, 1), "float32")
        values = [float(keras.ops.convert_to_numpy(g).ravel()[0]) for g in gates]
        if all(v == float(wanted_open) for v in values):
            return make(seed)
    raise AssertionError("no seed in 200 gave the wanted draw")


def numpy_values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


REGULARIZERS = {
    "drop": lambda seed: StochasticDepth(0.5, seed=seed),
    "sepdrop": lambda seed: PyramidSepDrop(0.5, identity_channels=2, seed=seed),
    "sepdrop-two-rates": lambda seed: PyramidSepDrop(0.3, 2, new_drop_rate=0.7, seed=seed),
}


@pytest.mark.parametrize("kind", sorted(REGULARIZERS))
def test_a_skipped_branch_is_not_run_and_changes_nothing(kind):
    counter = CallCounter()
    unit = SkippableBranch(branch_layers(counter),
                           regularizer_whose_first_draw_is(False, REGULARIZERS[kind]))
    x = random_images(4, size=8)
    unit.build(x.shape)
    before = numpy_values(unit.branch_variables())
    output = keras.ops.convert_to_numpy(unit(x, training=True))
    np.testing.assert_array_equal(output, np.zeros((4, 8, 8, 4)))  # the unit is its shortcut
    for old, new in zip(before, numpy_values(unit.branch_variables())):
        np.testing.assert_array_equal(new, old)  # weights and BN statistics untouched
    if keras.backend.backend() != "jax":
        assert counter.calls == 0, "the branch ran although its gates were closed"


@pytest.mark.parametrize("kind", sorted(REGULARIZERS))
def test_a_kept_branch_equals_the_flat_layers(kind):
    """Outputs, input gradients and BN statistics of a kept unit are those of
    the same layers applied one after another, then the regularizer."""
    x = random_images(4, size=8)
    skipping = SkippableBranch(branch_layers(),
                               regularizer_whose_first_draw_is(True, REGULARIZERS[kind]))
    skipping.build(x.shape)
    flat_layers = branch_layers()
    flat_regularizer = regularizer_whose_first_draw_is(True, REGULARIZERS[kind])

    def flat(inputs):
        for layer in flat_layers:
            inputs = layer(inputs, training=True)
        return flat_regularizer(inputs, training=True)

    flat(x[:1])  # builds the flat layers (and spends one draw) ...
    flat_regularizer = regularizer_whose_first_draw_is(True, REGULARIZERS[kind])  # ... fresh
    weights = [w for layer in flat_layers for w in layer.variables]
    for target, value in zip(weights, skipping.branch_variables()):
        target.assign(value)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(skipping(x, training=True)),
                               keras.ops.convert_to_numpy(flat(x)), rtol=1e-5, atol=1e-5)
    for a, b in zip(numpy_values(weights), numpy_values(skipping.branch_variables())):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)  # the same BN updates

    # Gradients: a fresh pair with its gates open again. (In a StatelessScope
    # the BN updates are only recorded: JAX cannot assign traced values.)
    skipping = SkippableBranch(skipping.branch,
                               regularizer_whose_first_draw_is(True, REGULARIZERS[kind]))
    flat_regularizer = regularizer_whose_first_draw_is(True, REGULARIZERS[kind])

    def statelessly(function):
        def call(v):
            with keras.StatelessScope():
                return function(v) ** 2
        return call

    np.testing.assert_allclose(
        gradient_of_sum(statelessly(lambda v: skipping(v, training=True)), x),
        gradient_of_sum(statelessly(flat), x), rtol=1e-4, atol=1e-5)


def trainable_by_name(model):
    """Trainable weights keyed by their path without the SkippableBranch level."""
    return {re.sub(r"^stage\d_unit\d+_branch/", "", v.path): v for v in model.trainable_weights}


@pytest.mark.parametrize("regularization", ["drop", "sepdrop"])
def test_a_skipping_network_trains_exactly_like_the_flat_one(regularization):
    """Three momentum-SGD steps with coupled weight decay and drop rate 0.9:
    the same weights, while a skipped branch leaves its BN statistics
    untouched in that step."""
    x, y = random_images(8), np.arange(8) % 10
    models = {}
    for skip in (False, True):
        model = tiny_model(regularization, depth=14, classes=10, drop_rate=0.9,
                           weight_decay=1e-3, skip_dropped=skip)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                      "sparse_categorical_crossentropy")
        models[skip] = model
    flat, skipping = (trainable_by_name(models[s]) for s in (False, True))
    assert flat.keys() == skipping.keys()
    for name, variable in skipping.items():  # a copy: JAX's train step donates buffers
        variable.assign(keras.ops.convert_to_numpy(flat[name]))
    def statistics(branch):  # (weights still move: weight decay and momentum)
        return numpy_values([v for v in branch.branch_variables() if not v.trainable])

    branches = [layer for layer in models[True].layers if isinstance(layer, SkippableBranch)]
    skips = 0
    for _ in range(3):
        before = [statistics(branch) for branch in branches]
        for model in models.values():
            model.train_on_batch(x, y)
        # A computed branch always moves its BN statistics; a skipped one never.
        skips += sum(all(np.array_equal(old, new) for old, new in zip(values, statistics(branch)))
                     for values, branch in zip(before, branches))
    for name, variable in flat.items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(skipping[name]),
                                   keras.ops.convert_to_numpy(variable), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    assert skips > 0, "no branch was skipped in 3 steps at drop rate 0.9"


def test_skipping_runs_in_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tiny_model("sepdrop", classes=10, drop_rate=0.9, skip_dropped=True)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(random_images(4), np.arange(4))) for _ in range(3)]
    assert all(np.isfinite(losses)), losses


def test_a_skipping_model_saves_and_reloads(tmp_path):
    model = tiny_model("sepdrop", classes=10, skip_dropped=True)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.train_on_batch(random_images(4), np.arange(4))
    run_serialization_test(model)
    loaded = run_model_saving_test(model, random_images(3), tmp_path, atol=1e-6, rtol=1e-5)
    assert sum(isinstance(layer, SkippableBranch) for layer in loaded.layers) == 3


def test_only_per_batch_drop_and_sepdrop_branches_are_wrapped():
    def wrapped(model):
        return sum(isinstance(layer, SkippableBranch) for layer in model.layers)

    assert wrapped(tiny_model("drop", skip_dropped=True)) == 3
    assert wrapped(tiny_model("shakedrop", skip_dropped=True)) == 0
    assert wrapped(tiny_model("sepdrop", skip_dropped=True, granularity="sample")) == 0
    assert wrapped(tiny_model("sepdrop", skip_dropped=True, drop_rate=0.0)) == 0
    with pytest.raises(ValueError, match="skip_dropped='yes'"):
        tiny_model("drop", skip_dropped="yes")
    with pytest.raises(ValueError, match="regularizer"):
        SkippableBranch(branch_layers(), ShakeDrop(0.5))
