"""Tiny models and random images: every code path at a fraction of a real model's cost."""

import numpy as np

import keras_pyramid


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
