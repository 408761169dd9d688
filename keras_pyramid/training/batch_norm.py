"""Precise BatchNorm: a trained model's BatchNormalization statistics
re-estimated from training data (Wu and Johnson 2021, "Rethinking 'Batch' in
BatchNorm", section 3).

During training a BatchNormalization layer keeps exponential moving averages
of its batch statistics, `moving <- m * moving + (1 - m) * batch_statistic`.
With a high momentum `m` (keras.applications' MobileNetV3 uses 0.999, an
average over about 1 / (1 - m) = 1000 steps) a short training ends with
averages that still hold the statistics of early, different weights, and the
model is evaluated with them. `reestimate` replaces them with an equally
weighted average of batch statistics of the final weights:

    history = model.fit(train, ...)
    batch_norm.reestimate(model, train, max_batches=60)  # then evaluate

Pass batches of the training batch size (the statistics estimated are those
of a batch of that size) from the training data, augmented as in training.
Call it after `fit`, not from a callback during it: under JAX the trainer
holds the model's state during `fit`.

The method. The model runs forward in training mode, `model(x, training=True)`,
eagerly, one batch at a time. Keras' BatchNormalization then computes, per
channel, the statistics of its input over the batch's n values (n =
batch size x height x width for an image):

    mu_k = (1/n) sum_i x_i,    var_k = (1/n) sum_i (x_i - mu_k)^2

(the biased variance, divided by n, on every backend: TensorFlow's
`tf.nn.moments`, JAX's `jnp.var`, torch's `E[x^2] - E[x]^2`; no Bessel
correction, unlike PyTorch's own BatchNorm, whose `running_var` averages
unbiased variances), normalizes with them, and assigns
`moving <- m * moving + (1 - m) * statistic`. Before a layer's k-th
update (k = 1, 2, ...) its momentum is set to m = (k - 1) / k, so

    moving_k = ((k - 1) / k) * moving_(k-1) + (1 / k) * statistic_k

m = 0 at k = 1 discards the trained average, and by induction after N
updates

    moving_mean     = (1/N) sum_k mu_k
    moving_variance = (1/N) sum_k var_k

the paper's estimator: per-batch statistics averaged with equal weights
(a smaller last batch weighs as much as a full one), as fvcore's
`update_bn_stats` does by default. The mean of the batch variances is
the expected variance within one batch, what training normalized by; it
omits the variance between the batch means: for N batches of equal size
the variance of all their values together is, with mu = (1/N) sum_k mu_k,

    (1/N) sum_k var_k  +  (1/N) sum_k (mu_k - mu)^2.

Layers other than BatchNormalization run in training mode too (dropout,
stochastic depth, augmentation layers inside the model), which is how
the moving averages themselves were collected during training. A layer
the forward pass does not reach on some batch (a residual branch that
stochastic depth skips) is not updated on it: k counts the batches that
updated that layer, found by its statistics changing (so a batch whose
every statistic repeats the average bit for bit goes uncounted), and its
average is over those batches. The optimizer and every other weight (gamma, beta,
kernels) are untouched; each layer's momentum is restored afterwards,
and on an error the statistics are restored as well.
"""

import itertools

import keras
import numpy as np

from keras_pyramid.utils import checks

__all__ = ["reestimate", "updating_layers"]


def updating_layers(model):
    """Every BatchNormalization layer of `model` (nested models and layers
    holding layers included, each once) that updates its statistics when
    called in training mode: those with `trainable` True.

    A frozen BatchNormalization (`trainable` False, also set by freezing a
    model that holds it) runs in inference mode in Keras 3 and keeps its
    statistics.
    """
    return [layer for layer in model._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def reestimate(model, batches, max_batches=None):
    """Re-estimates the statistics of every BatchNormalization layer of
    `model` that trains (see `updating_layers`) from `batches`.

    Method: the module's docstring.

    Not handled: `renorm=True` layers (refused: they average standard
    deviations and correct their outputs) and a layer called more than once
    per forward pass (it would count each call as a batch).

    Args:
        model: a built Keras model.
        batches: an iterable of `(images, labels, ...)` tuples or of images
            (numpy arrays, or tensors such as a `tf.data.Dataset` yields).
        max_batches: None (all the batches) or the number of batches to
            use, at least 1; no further batch is drawn from `batches`.

    Returns:
        `{"layers": the number of layers re-estimated, "batches": batches
        used, "images": images used}`; all 0, no batch drawn, for a model
        without a BatchNormalization layer that trains.
    """
    if max_batches is not None:
        checks.check_int("max_batches", max_batches, minimum=1)
    layers = updating_layers(model)
    renorm = [layer.name for layer in layers if layer.renorm]
    if renorm:
        raise ValueError("`model` must have no BatchNormalization layer with renorm=True to "
                         f"re-estimate. Received: layers {renorm}")
    if not layers:
        return {"layers": 0, "batches": 0, "images": 0}
    momenta = [layer.momentum for layer in layers]
    trained = [_statistics(layer) for layer in layers]
    try:
        counts, used, images = _run(model, layers, itertools.islice(batches, max_batches),
                                    trained)
    except BaseException:
        for layer, (mean, variance) in zip(layers, trained):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not used:  # nothing changed
        raise ValueError(f"`batches` must yield at least one batch. Received: batches={batches!r}")
    return {"layers": sum(count > 0 for count in counts), "batches": used, "images": images}


def _run(model, layers, batches, statistics_before):
    """The forward passes; returns each layer's update count, the batches
    and the images used."""
    counts = [0] * len(layers)
    current = list(statistics_before)
    used = images = 0
    for batch in batches:
        for layer, count in zip(layers, counts):
            layer.momentum = count / (count + 1)
        x = _images(batch)
        model(x, training=True)
        used += 1
        images += int(x.shape[0])
        for index, layer in enumerate(layers):
            statistics = _statistics(layer)
            if any(not np.array_equal(new, old)
                   for new, old in zip(statistics, current[index])):
                counts[index] += 1
                current[index] = statistics
    return counts, used, images


def _images(batch):
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    return images if keras.ops.is_tensor(images) else np.asarray(images)


def _statistics(layer):
    return (keras.ops.convert_to_numpy(layer.moving_mean),
            keras.ops.convert_to_numpy(layer.moving_variance))
