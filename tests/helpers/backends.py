"""The Keras backends: their names, the marker of backend-independent tests, and
gradients on the current backend."""

import keras
import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax", "torch")


# A test that touches no Keras tensor gives the same answer on every backend:
# the suite runs once per backend, so it runs under tensorflow only.
ONCE = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="pure Python: runs once, under tensorflow")


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
