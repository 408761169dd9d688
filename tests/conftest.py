"""Shared test helpers. The suite runs once per backend (`KERAS_BACKEND`)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_pyramid

BACKENDS = ("tensorflow", "jax", "torch")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from float32, channels_last and a fixed global seed."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


def tiny_model(regularization=None, **kwargs):
    """A 3-unit PyramidNet (depth 8, basic) on 16x16 images: cheap on every backend."""
    arguments = dict(input_shape=(16, 16, 3), seed=7, drop_rate=0.5)
    arguments.update(kwargs)
    depth = arguments.pop("depth", 8)
    alpha = arguments.pop("alpha", 6)
    return keras_pyramid.PyramidNet(
        depth, alpha, regularization=regularization, **arguments
    )


def random_images(count, size=16, seed=0, channels_first=False):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3)).astype("float32")
    return images.transpose(0, 3, 1, 2) if channels_first else images


def trainable_parameter_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def gradient_of_sum(function, x):
    """d sum(function(x)) / dx on the current backend, as a numpy array."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(function(x))
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: function(v).sum())(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    function(x).sum().backward()
    return x.grad.numpy()


def run_python(code, backend=None, timeout=600):
    """Runs `code` in a fresh Python process (optionally under another backend)."""
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope="session")
def cifar10_tfds_dir(tmp_path_factory):
    """A tfds data dir with the real CIFAR-10, built offline from ../shared/data.

    CI builds it once and names it in KERAS_PYRAMID_TFDS_DIR; otherwise it is
    built here (about a minute). Never downloads.
    """
    prepared = os.environ.get("KERAS_PYRAMID_TFDS_DIR")
    if prepared and os.path.isdir(os.path.join(prepared, "cifar10")):
        return prepared
    directory = str(tmp_path_factory.mktemp("tfds"))
    subprocess.run(
        [sys.executable, os.path.join(SHARED_DATA, "make_tfds.py"), directory, "--no-verify"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return directory


def load_cifar10_npz():
    """The real CIFAR-10 arrays from ../shared/data: (x_train, y_train, x_test, y_test)."""
    parts = [np.load(os.path.join(SHARED_DATA, f"cifar10_train_part{i}.npz")) for i in (1, 2)]
    test = np.load(os.path.join(SHARED_DATA, "cifar10_test.npz"))
    return (
        np.concatenate([p["x_train"] for p in parts]),
        np.concatenate([p["y_train"] for p in parts]),
        test["x_test"],
        test["y_test"],
    )
