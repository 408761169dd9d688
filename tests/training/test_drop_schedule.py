"""Drop-rate schedules: values, the scale in training only, no retrace, resume."""

import keras
import numpy as np
import pytest
from helpers.models import tiny_model

from keras_pyramid.models.regularizers import PyramidSepDrop, StochasticDepth
from keras_pyramid.training import drop_schedule, specs


def test_schedule_values_at_given_steps():
    assert [drop_schedule.constant()(step) for step in (0, 5, 10**6)] == [1.0, 1.0, 1.0]
    ramp = drop_schedule.ramp(0.25, total_steps=100)  # 25 ramp steps
    assert [ramp(step) for step in (0, 10, 24, 25, 99)] == pytest.approx(
        [0.0, 0.4, 0.96, 1.0, 1.0])
    parsed = drop_schedule.scale_function(specs.parse_schedule("ramp:0.5"), total_steps=10)
    assert [parsed(step) for step in (0, 1, 5)] == pytest.approx([0.0, 0.2, 1.0])
    constant = drop_schedule.scale_function(specs.parse_schedule("constant"), total_steps=10)
    assert constant(0) == 1.0
    assert str(specs.parse_schedule("ramp:0.50")) == "ramp:0.5"


@pytest.mark.parametrize("text", ["ramp", "ramp:0", "ramp:1.5", "ramp:x", "linear", "constant:1"])
def test_bad_schedules_name_the_value(text):
    with pytest.raises(ValueError, match=f"schedule={text!r}"):
        specs.parse_schedule(text)


def test_the_scale_applies_in_training_and_never_at_inference():
    layer = StochasticDepth(0.9, granularity="sample", seed=3)
    ones = np.ones((2000, 1, 1, 1), "float32")
    layer.build(ones.shape)
    layer.rate_scale.assign(0.0)  # the start of a ramp: nothing is dropped
    assert keras.ops.convert_to_numpy(layer(ones, training=True)).min() == 1.0
    layer.rate_scale.assign(0.5)  # drop rate 0.45
    kept = keras.ops.convert_to_numpy(layer(ones, training=True)).mean()
    assert abs(kept - 0.55) < 4.5 * np.sqrt(0.55 * 0.45 / 2000), kept
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(ones)), 0.1)  # the target

    sepdrop = PyramidSepDrop(0.2, identity_channels=1, new_drop_rate=0.8, seed=1)
    sepdrop.build((None, 1, 1, 2))
    sepdrop.rate_scale.assign(0.0)
    x = np.ones((1, 1, 1, 2), "float32")
    for _ in range(20):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(sepdrop(x, training=True)), x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sepdrop(x)), [[[[0.8, 0.2]]]],
                               rtol=1e-6)


class ScaleProbe(keras.callbacks.Callback):
    """The scale the step just ran with (the last regularizer's state).

    Under JAX it reads the state the compiled step returned (the trainer's,
    not the purged variables) and syncs nothing: a schedule that changed the
    variable without handing it to the next step would show here.
    """

    def __init__(self):
        super().__init__()
        self.scales = []

    def on_train_batch_end(self, batch, logs=None):
        layer = drop_schedule.branch_regularizers(self.model)[-1]
        if keras.backend.backend() == "jax":
            index = [id(v) for v in self.model.non_trainable_variables].index(
                id(layer.rate_scale))
            value = self.model._jax_state["non_trainable_variables"][index]
        else:
            value = layer.rate_scale
        self.scales.append(float(keras.ops.convert_to_numpy(value)))


def test_the_callback_sets_the_scale_every_step_without_retracing_and_resumes():
    model = tiny_model("sepdrop", skip_dropped=True)
    traces = []
    train_step = model.train_step

    def counted_train_step(*args, **kwargs):
        traces.append(1)  # Python runs here once per trace (JAX, TensorFlow)
        return train_step(*args, **kwargs)

    model.train_step = counted_train_step
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    y = np.zeros(16, "int32")
    # Ramp over 8 steps: multiples of 1/8 are exact at the 1/1000 resolution.
    schedule = drop_schedule.DropRateSchedule(drop_schedule.ramp(0.5, total_steps=16))
    probe = ScaleProbe()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[schedule, probe])
    assert probe.scales == [0.0, 0.125, 0.25, 0.375]
    if keras.backend.backend() != "torch":  # torch runs the step eagerly
        assert len(traces) == 1, "changing the rate retraced the training step"

    # A second fit (as a resumed run) starts from the optimizer's step 4.
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
              callbacks=[schedule, probe])
    assert probe.scales[4:] == [0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 1.0, 1.0]
    if keras.backend.backend() != "torch":
        assert len(traces) == 1


def test_steps_per_execution_is_refused():
    model = tiny_model("drop")
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=2)
    x, y = np.zeros((4, 16, 16, 3), "float32"), np.zeros(4, "int32")
    schedule = drop_schedule.DropRateSchedule(drop_schedule.constant())
    with pytest.raises(ValueError, match="steps_per_execution=2"):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[schedule])
