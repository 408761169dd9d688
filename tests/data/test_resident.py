"""Device-resident data and augmentation inside the step (`keras_pyramid.data.resident`)."""

import json
import os
import sys

import keras
import numpy as np
import pytest
from helpers.models import random_images, tiny_model
from helpers.paths import REPO
from helpers.processes import blocked_tensorflow_path, run_command

from keras_pyramid.data import resident
from keras_pyramid.training import fit, recipe

BACKEND = keras.backend.backend()
DRAWS = 3000  # augmentations per method in the statistics test


def coded_image(size=32):
    """Pixel (i, j) holds (i, j, 1): an augmented copy tells its crop and flip."""
    rows, columns = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([rows + 10, columns + 10, np.ones_like(rows)], -1).astype("float32")


def recovered_draws(augmented, size=32, padding=4):
    """(row offset, column offset, flip) of each augmented coded image."""
    centre = augmented[:, size // 2, size // 2]  # a pixel that is never padding
    row = (centre[:, 0] - 10 - size // 2 + padding).astype(int)
    flip = augmented[:, size // 2, size // 2 + 1, 1] < centre[:, 1]
    column_source = centre[:, 1] - 10
    column = np.where(flip, column_source - (size - 1 - size // 2),
                      column_source - size // 2).astype(int) + padding
    return row, column, flip


def test_crop_and_flip_is_exactly_the_padded_window():
    images = random_images(3, size=8)
    rows, columns, flips = np.array([0, 3, 8]), np.array([8, 0, 5]), np.array([0, 1, 1])
    actual = keras.ops.convert_to_numpy(resident.crop_and_flip(
        keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(rows),
        keras.ops.convert_to_tensor(columns), keras.ops.convert_to_tensor(flips)))
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for b in range(3):
        window = padded[b, rows[b]:rows[b] + 8, columns[b]:columns[b] + 8]
        np.testing.assert_array_equal(actual[b], window[:, ::-1] if flips[b] else window)


def test_the_augmentation_draws_as_the_tf_data_one(cifar10_tfds_dir):
    """Offsets uniform on 0..8 in each direction and flips at 1/2, in the
    device layer and in tf.data's `data.cifar_augment`: equal frequencies within
    sampling error, and the same mean augmented image."""
    import tensorflow as tf

    from keras_pyramid import data

    image = coded_image()
    layer = resident.CifarAugmentation(seed=3)
    ours = keras.ops.convert_to_numpy(layer(np.repeat(image[None], DRAWS, 0), training=True))
    theirs = next(iter(tf.data.Dataset.range(DRAWS).map(
        lambda i: data.cifar_augment(tf.constant(image), tf.stack([tf.constant(7, tf.int64), i])))
        .batch(DRAWS))).numpy()
    for augmented in (ours, theirs):
        row, column, flip = recovered_draws(augmented)
        for offsets in (row, column):
            frequencies = np.bincount(offsets, minlength=9) / DRAWS
            assert len(frequencies) == 9
            # 1/9 each; the binomial standard error is 0.006 at 3,000 draws.
            np.testing.assert_allclose(frequencies, 1 / 9, atol=0.03)
        assert abs(flip.mean() - 0.5) < 0.04
        assert abs(np.corrcoef(row, column)[0, 1]) < 0.06  # independent
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=1.5)
    np.testing.assert_array_equal(layer(image[None], training=False), image[None])


def test_the_resident_stream_is_a_function_of_the_global_step():
    x = np.arange(10 * 4 * 4 * 3).reshape(10, 4, 4, 3) % 256
    data = resident.ResidentData(x.astype("uint8"), np.arange(10), batch_size=3, seed=1)
    assert data.steps_per_epoch == 3
    straight = [keras.ops.convert_to_numpy(y) for _, y in
                (next(s) for s in [data.training_stream()] * 8)]
    for start in (0, 2, 3, 5):
        resumed = data.training_stream(start)
        for step in range(start, 8):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(next(resumed)[1]),
                                          straight[step])
    epoch0 = np.concatenate(straight[:3])
    assert len(set(epoch0.tolist())) == 9  # a permutation, one example left out
    passes = data.evaluation_stream()
    for _ in range(2):  # one pass per evaluation, every time
        evaluated = np.concatenate([keras.ops.convert_to_numpy(next(passes)[1])
                                    for _ in range(data.evaluation_steps)])
        np.testing.assert_array_equal(evaluated, np.arange(10))


def fit_resident(run_dir, epochs, x, y):
    keras.utils.set_random_seed(0)
    model = tiny_model("sepdrop", seed=3)
    trainer = resident.with_augmentation(model, seed=5)
    plan = recipe.paper_recipe("cifar10", epochs=3, batch_size=8)
    trainer.compile(optimizer=recipe.make_optimizer(plan, 4),
                    loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    stream = resident.ResidentData(x, y, batch_size=8, seed=11)
    evaluation = resident.ResidentData(x[:16], y[:16], batch_size=8)
    history = fit.fit(trainer, stream.training_stream, evaluation.evaluation_stream(),
                           epochs=epochs, steps_per_epoch=4, run_dir=str(run_dir),
                           evaluation_steps=evaluation.evaluation_steps, verbose=0,
                           checkpoint_steps=2)
    return model, history


def test_training_on_resident_data_resumes_exactly(tmp_path):
    """Two epochs straight, or one epoch, a new process-like start (fresh
    model, restored from the run directory) and the second: the same
    weights, augmentation draws and gates included."""
    x = random_images(40, size=16).astype("uint8")
    y = np.arange(40) % 10
    straight, _ = fit_resident(tmp_path / "straight", 2, x, y)
    fit_resident(tmp_path / "resumed", 1, x, y)
    resumed, history = fit_resident(tmp_path / "resumed", 2, x, y)
    assert len(history) == 2
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BACKEND == "tensorflow",
                    reason="training without TensorFlow is for the jax and torch backends")
def test_train_py_trains_from_an_npz_without_tensorflow(tmp_path):
    """`train.py --dataset npz:PATH` with TensorFlow and tfds unimportable:
    a few steps on real CIFAR-10 images, and the training loss falls."""
    from helpers.data import load_cifar10_npz

    x_train, y_train, x_test, y_test = load_cifar10_npz()
    npz = tmp_path / "cifar10-small.npz"
    np.savez(npz, x_train=x_train[:256], y_train=y_train[:256], x_test=x_test[:64],
             y_test=y_test[:64])
    blocked = blocked_tensorflow_path(tmp_path / "blocked")
    result = run_command(
        [sys.executable, os.path.join(REPO, "applications", "train.py"),
         "--model", "pyramidnet8_a24_sepdrop", "--dataset", f"npz:{npz}", "--epochs", "3",
         "--batch-size", "32", "--lr", "0.05", "--output-dir", str(tmp_path / "run"),
         "--verbose", "0"],
        environment={"PYTHONPATH": blocked + os.pathsep + REPO}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.load(open(tmp_path / "run" / "history.json"))
    assert len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"], [row["loss"] for row in history]
    results = json.load(open(tmp_path / "run" / "results.json"))
    assert results["evaluated_examples"] == 64 and results["data"] == "device-resident"
