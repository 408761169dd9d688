"""Serialization across processes and backends, mixed precision, learning."""

import json
import os
import signal
import sys

import keras
import numpy as np
import pytest
from helpers.backends import BACKENDS
from helpers.models import random_images, tiny_model
from helpers.paths import REPO
from helpers.processes import run_command, run_python
from saving_case import run_serialization_test

from keras_pyramid.models.regularizers import PyramidSepDrop
from keras_pyramid.training import fit, progress

LOAD_AND_PREDICT = """
import json, sys
import numpy as np
import keras_pyramid  # registers the layers: the only import a user needs
import keras
model = keras.saving.load_model({path!r}, compile=False)
x = np.load({inputs!r})
np.save({outputs!r}, keras.ops.convert_to_numpy(model(x, training=False)))
print(json.dumps({{"backend": keras.backend.backend(), "name": model.name}}))
"""


def save_tiny_sepdrop(tmp_path):
    model = tiny_model("sepdrop", classifier_activation=None, new_drop_rate=0.2)
    x = random_images(3)
    # One training step so BN statistics and weights are not the init values.
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    model.train_on_batch(x, np.array([0, 1, 2]))
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    inputs = str(tmp_path / "x.npy")
    np.save(inputs, x)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    return path, inputs, expected


def test_config_round_trip_of_a_whole_model():
    run_serialization_test(tiny_model("shakedrop"))  # the whole config, JSON-equal


def test_keras_file_loads_in_a_fresh_process(tmp_path):
    path, inputs, expected = save_tiny_sepdrop(tmp_path)
    outputs = str(tmp_path / "y.npy")
    code = LOAD_AND_PREDICT.format(path=path, inputs=inputs, outputs=outputs)
    report = json.loads(run_python(code).strip().splitlines()[-1])
    assert report["backend"] == keras.backend.backend()
    np.testing.assert_allclose(np.load(outputs), expected, rtol=1e-5, atol=1e-5)


def test_keras_file_loads_under_another_backend(tmp_path):
    here = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(here) + 1) % len(BACKENDS)]
    path, inputs, expected = save_tiny_sepdrop(tmp_path)
    outputs = str(tmp_path / "y.npy")
    code = LOAD_AND_PREDICT.format(path=path, inputs=inputs, outputs=outputs)
    report = json.loads(run_python(code, backend=other).strip().splitlines()[-1])
    assert report["backend"] == other
    np.testing.assert_allclose(np.load(outputs), expected, rtol=1e-4, atol=1e-4)


def test_loaded_model_keeps_its_regularizers(tmp_path):
    path, _, _ = save_tiny_sepdrop(tmp_path)
    loaded = keras.saving.load_model(path, compile=False)
    layer = loaded.get_layer("stage2_unit1_sepdrop")
    assert isinstance(layer, PyramidSepDrop)
    assert layer.identity_channels == 18 and layer.drop_rate == pytest.approx(1 / 3)
    assert layer.new_drop_rate == pytest.approx(0.2 * 2 / 3)  # the linear rule, unit 2 of 3


def test_mixed_bfloat16_forward_and_backward():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tiny_model("sepdrop", drop_rate=0.3)
    assert model.get_layer("stage1_unit1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("stage1_unit1_sepdrop").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"  # the classifier stays in float32
    before = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel).copy()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = random_images(8), np.arange(8) % 10
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss)
    after = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    assert after.dtype == np.float32 and not np.array_equal(before, after)
    assert np.isfinite(model.predict(x, verbose=0)).all()


def separable_images(count, classes, seed=0):
    """Noisy images whose class sets their mean colour: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    colours = rng.uniform(40, 215, size=(classes, 3))
    noise = rng.normal(0, 30, size=(count, 16, 16, 3))
    images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255)
    return images.astype("float32"), labels


@pytest.mark.parametrize("regularization", [None, "sepdrop"])
def test_a_few_training_steps_lower_the_loss(regularization):
    model = tiny_model(regularization, drop_rate=0.2, classes=4)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        "sparse_categorical_crossentropy",
    )
    x, y = separable_images(64, 4)
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    import tensorflow as tf

    images = random_images(24)
    images[16:20] = np.nan  # the 5th batch of 4: epoch 2, step 2 at 3 steps per epoch
    labels = np.arange(24) % 10
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).repeat()
    model = tiny_model(None, classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    with pytest.raises(fit.NonFiniteLoss,
                       match=r"at epoch 2, step 2 \(global step 5\).*checkpoint \(epoch 1\)"):
        fit.fit(model, data, None, epochs=3, steps_per_epoch=3, run_dir=str(tmp_path),
                verbose=0)
    latest = json.loads((tmp_path / "checkpoint" / "latest.json").read_text())
    assert latest["epoch"] == 1 and len(latest["history"]) == 1
    assert all(np.isfinite(v) for v in latest["history"][0].values())
    # The kept checkpoint holds finite weights, and a run resumes from it.
    resumed = tiny_model(None, classes=10)
    resumed.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    completed, step, _ = fit.restore(resumed, str(tmp_path))
    assert (completed, step) == (1, 0)
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in resumed.weights)


KILLED_WHILE_CHECKPOINTING = """
import os, signal, sys
import numpy as np
import keras
sys.path.insert(0, {tests!r})
from helpers.models import random_images, tiny_model
from keras_pyramid.training import fit

calls = []
original = keras.Model.save_weights


def save_weights(self, path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 2:  # epoch 2's checkpoint: half a file, then SIGKILL
        original(self, path, *args, **kwargs)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, path, *args, **kwargs)


keras.Model.save_weights = save_weights
model = tiny_model(None, classes=10)
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
import tensorflow as tf
data = tf.data.Dataset.from_tensor_slices((random_images(12), np.arange(12) % 10)).batch(4)
fit.fit(model, data.repeat(), None, epochs=3, steps_per_epoch=3, run_dir={run_dir!r},
        verbose=0)
"""


def test_a_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    code = KILLED_WHILE_CHECKPOINTING.format(tests=os.path.join(REPO, "tests"),
                                             run_dir=str(tmp_path))
    finished = run_command([sys.executable, "-c", code], timeout=600)
    assert finished.returncode == -signal.SIGKILL, finished.stderr[-3000:]
    checkpoint = tmp_path / "checkpoint"
    latest = json.loads((checkpoint / "latest.json").read_text())
    assert latest["epoch"] == 1, "the torn epoch-2 write became the latest checkpoint"
    torn = [name for name in os.listdir(checkpoint) if name.startswith("tmp-")]
    assert torn, "the kill did not happen during the write"
    model = tiny_model(None, classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    completed, step, history = fit.restore(model, str(tmp_path))
    assert (completed, step) == (1, 0) and len(history) == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="callback arithmetic on a fake clock, no tensor: runs once")
def test_step_times_keep_the_compiling_step_apart_and_give_the_median():
    """Two epochs of 4 steps in one fit call: the first step (10 s) compiles;
    epoch 1's timed steps are 1, 2, 3 s (median 2); epoch 2's first step
    comes after the evaluation and is not timed, then 1, 1, 5 (median 1)."""
    now = [0.0]
    timer = progress.StepTimes(clock=lambda: now[0])
    timer.on_train_begin()
    rows = []
    for epoch, durations in enumerate(([10, 1, 2, 3], [7, 1, 1, 5])):
        if epoch:
            now[0] += 30  # the previous epoch's evaluation
        timer.on_epoch_begin(epoch)
        for step, seconds in enumerate(durations):
            now[0] += seconds
            timer.on_train_batch_end(step)
        rows.append(timer.epoch_figures())
    assert rows == [{"median_step_seconds": 2.0, "first_step_seconds": 10.0},
                    {"median_step_seconds": 1.0}]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="arithmetic on history rows, no tensor: runs once")
def test_training_speed_is_the_median_step_with_compilation_apart():
    from keras_pyramid.training.experiment import training_speed

    history = [{"train_seconds": 20.0, "median_step_seconds": 0.5, "first_step_seconds": 8.0},
               {"train_seconds": 6.0, "median_step_seconds": 0.5}]
    speed = training_speed(history, batch_size=64, steps_per_epoch=10)
    assert speed["train_images_per_second"] == 128.0  # 64 / 0.5
    assert speed["compile_seconds"] == 7.5  # 8 s, less a median step
    assert speed["train_images_per_second_with_compilation"] == pytest.approx(1280 / 26)
    # 0.1.0 history rows (no step times): the whole-epoch figure, as 0.1.0 gave it.
    old = training_speed([{"train_seconds": 20.0}], batch_size=64, steps_per_epoch=10)
    assert old["train_images_per_second"] == 32.0 and "compile_seconds" not in old
