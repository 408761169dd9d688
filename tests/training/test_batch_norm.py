"""Precise BatchNorm: re-estimated statistics against numpy's batch
statistics, nested and frozen layers, skipped batches, max_batches, errors."""

import keras
import numpy as np
import pytest

from keras_pyramid.training import batch_norm

MOMENTUM = 0.999  # keras.applications' MobileNetV3


def batches(count, size=8, seed=0, labels=True):
    """`count` batches of 8x8 RGB images whose means and spreads differ from
    batch to batch (so that the estimators told apart below differ)."""
    rng = np.random.default_rng(seed)
    images = [rng.normal(k, 1 + k / 2, (size, 8, 8, 3)).astype("float32") for k in range(count)]
    return [(x, np.zeros(size, "int32")) for x in images] if labels else images


def conv_bn_net():
    """conv1 -> bn1 -> relu -> conv2 -> bn2 -> classifier: bn1's input does
    not depend on any BatchNormalization, bn2's does on bn1's mode."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=MOMENTUM, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=MOMENTUM, name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def statistics(layer):
    return (keras.ops.convert_to_numpy(layer.moving_mean).copy(),
            keras.ops.convert_to_numpy(layer.moving_variance).copy())


def batch_statistics(inputs):
    """Per batch, per channel: Keras' mean and variance (biased: divided by
    the batch's value count), in float64."""
    values = [np.asarray(keras.ops.convert_to_numpy(x), "float64") for x in inputs]
    return (np.array([x.mean(axis=(0, 1, 2)) for x in values]),
            np.array([x.var(axis=(0, 1, 2)) for x in values]))


def assert_averaged(layer, inputs):
    """The layer's statistics are the means over batches of its inputs' batch statistics."""
    means, variances = batch_statistics(inputs)
    mean, variance = statistics(layer)
    np.testing.assert_allclose(mean, means.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance, variances.mean(axis=0), rtol=1e-4)


def test_statistics_are_the_means_of_the_batch_statistics_and_nothing_else_changes():
    model = conv_bn_net()
    data = batches(4)
    bn1, bn2 = model.get_layer("bn1"), model.get_layer("bn2")
    estimated = {id(v) for layer in (bn1, bn2) for v in (layer.moving_mean, layer.moving_variance)}
    others = {v.path: keras.ops.convert_to_numpy(v).copy()
              for v in model.weights if id(v) not in estimated}

    assert batch_norm.reestimate(model, data) == {"layers": 2, "batches": 4, "images": 32}
    assert bn1.momentum == bn2.momentum == MOMENTUM
    for v in model.weights:
        if id(v) not in estimated:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), others[v.path], v.path)
    found = {layer.name: statistics(layer) for layer in (bn1, bn2)}

    # bn1's input is conv1's output, in any mode.
    conv1 = [keras.Model(model.inputs, bn1.input)(x) for x, _ in data]
    means, variances = batch_statistics(conv1)
    np.testing.assert_allclose(found["bn1"][0], means.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found["bn1"][1], variances.mean(axis=0), rtol=1e-4)
    # Not the variance of all the values together: on these batches the
    # between-batch term is over 100 times the 1e-4 tolerance in some channel
    # (and Bessel's n / (n - 1) = 1.0035 is 35 times), so the test tells the
    # estimators apart.
    pooled = np.concatenate([keras.ops.convert_to_numpy(x) for x in conv1]).var(axis=(0, 1, 2))
    assert np.abs(pooled / found["bn1"][1] - 1).max() > 0.01

    # bn2's input: bn1 normalizing with batch statistics, as in training.
    # (These training-mode calls update bn1's statistics: checked above.)
    into_bn2 = keras.Model(model.inputs, bn2.input)
    means, variances = batch_statistics([into_bn2(x, training=True) for x, _ in data])
    np.testing.assert_allclose(found["bn2"][0], means.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found["bn2"][1], variances.mean(axis=0), rtol=1e-4)


def test_a_nested_model_s_batch_norm_is_re_estimated_from_bare_images():
    inner_inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3)
    bn = keras.layers.BatchNormalization(momentum=MOMENTUM)
    inner = keras.Model(inner_inputs, keras.layers.ReLU()(bn(conv(inner_inputs))), name="inner")
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inner(inputs))))
    data = batches(3, labels=False)

    assert batch_norm.reestimate(outer, data) == {"layers": 1, "batches": 3, "images": 24}
    assert_averaged(bn, [conv(x) for x in data])
    assert bn.momentum == MOMENTUM


def test_a_frozen_batch_norm_keeps_its_statistics():
    model = conv_bn_net()
    frozen, trained = model.get_layer("bn1"), model.get_layer("bn2")
    frozen.trainable = False
    rng = np.random.default_rng(3)
    for layer in (frozen, trained):  # trained-looking statistics, not the initial 0 and 1
        layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    kept, replaced = statistics(frozen), statistics(trained)

    assert batch_norm.reestimate(model, batches(3))["layers"] == 1
    for before, after in zip(kept, statistics(frozen)):
        np.testing.assert_array_equal(after, before)
    for before, after in zip(replaced, statistics(trained)):
        assert not np.allclose(after, before)


def test_max_batches_limits_the_batches_drawn_and_used():
    model = conv_bn_net()
    data = batches(6)
    drawn = []

    def stream():
        for batch in data:
            drawn.append(1)
            yield batch

    result = batch_norm.reestimate(model, stream(), max_batches=2)
    assert result == {"layers": 2, "batches": 2, "images": 16}
    assert len(drawn) == 2
    bn1 = model.get_layer("bn1")
    assert_averaged(bn1, [keras.Model(model.inputs, bn1.input)(x) for x, _ in data[:2]])


class SometimesNormalized(keras.Model):
    """BatchNormalization on the batches whose first value is positive only,
    as a residual branch that stochastic depth skips on some batches."""

    def __init__(self):
        super().__init__()
        self.bn = keras.layers.BatchNormalization(momentum=MOMENTUM)

    def call(self, x, training=False):
        if float(keras.ops.convert_to_numpy(x)[0, 0, 0, 0]) > 0:
            return self.bn(x, training=training)
        return x


def test_a_layer_skipped_on_some_batches_averages_the_batches_it_saw():
    model = SometimesNormalized()
    data = batches(5, labels=False)
    for k, x in enumerate(data):
        x[0, 0, 0, 0] = -1.0 if k in (0, 2) else 1.0  # batches 0 and 2 skip it
    model(data[1])  # builds it, in inference mode
    model.bn.moving_mean.assign(np.full(3, 50.0))  # what a skipped batch must not bring in

    assert batch_norm.reestimate(model, data) == {"layers": 1, "batches": 5, "images": 40}
    assert_averaged(model.bn, [data[1], data[3], data[4]])


def test_an_error_restores_the_statistics_and_the_momentum():
    model = conv_bn_net()
    bn1 = model.get_layer("bn1")
    before = statistics(bn1)

    def failing():
        yield from batches(2)
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        batch_norm.reestimate(model, failing())
    assert bn1.momentum == MOMENTUM
    for old, new in zip(before, statistics(bn1)):
        np.testing.assert_array_equal(new, old)


def test_bad_arguments_name_the_value():
    model = conv_bn_net()
    with pytest.raises(ValueError, match="max_batches=0"):
        batch_norm.reestimate(model, batches(1), max_batches=0)
    with pytest.raises(ValueError, match="batches=\\[\\]"):
        batch_norm.reestimate(model, [])
    assert model.get_layer("bn1").momentum == MOMENTUM
    inputs = keras.Input((8, 8, 3))
    renorm = keras.layers.BatchNormalization(renorm=True, name="renormalized")
    with pytest.raises(ValueError, match="renormalized"):
        batch_norm.reestimate(keras.Model(inputs, renorm(inputs)), batches(1))
