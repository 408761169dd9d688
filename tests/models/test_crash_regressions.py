"""Crash regressions: each runs in a subprocess, so a segfault fails the test
instead of killing pytest (see tests/upstream/jax_ynn_reduce_crash.py)."""

import json

import numpy as np
import pytest
from helpers.models import random_images
from helpers.processes import run_python
from keras import ops

from keras_pyramid.models.shortcut import average_pool_2x2_by_slices

# The trigger of the jaxlib 0.10.2 YNN "reduce" fusion segfault, written with
# this package's layers: a widening conv after a channel scale, then a unit
# (zero-padded shortcut + conv) and the pooled shortcut of the next stage.
# With `ops.average_pool` in PyramidShortcut it dies under JAX at batch 1.
SHORTCUT_TRIGGER = """
import json, keras, numpy as np
from keras_pyramid.models.shortcut import PyramidShortcut
inputs = keras.Input((32, 32, 31))
y = keras.layers.Conv2D(47, 3, padding="same", use_bias=False)(
    keras.layers.BatchNormalization()(inputs))
branch = keras.layers.Conv2D(62, 3, padding="same", use_bias=False)(
    keras.layers.BatchNormalization()(y))
z = keras.layers.Add()([PyramidShortcut(62)(y), branch])
pooled = PyramidShortcut(77, strides=2)(z)
x = np.random.default_rng(0).normal(size=(1, 32, 32, 31)).astype("float32")
got = keras.Model(inputs, pooled).predict(x, verbose=0)
before = keras.Model(inputs, z).predict(x, verbose=0)
expected = before.reshape(1, 16, 2, 16, 2, 62).mean(axis=(2, 4))
print(json.dumps({"shape": list(got.shape),
                  "pool_error": float(np.abs(got[..., :62] - expected).max()),
                  "padding_max": float(np.abs(got[..., 62:]).max())}))
"""


def test_pooled_shortcut_after_widening_units_does_not_crash():
    result = json.loads(run_python(SHORTCUT_TRIGGER, timeout=300).strip().splitlines()[-1])
    assert result["shape"] == [1, 16, 16, 77]
    assert result["pool_error"] < 1e-5
    assert result["padding_max"] == 0.0


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_average_pool_by_slices_equals_average_pool(data_format):
    x = random_images(2, size=8, channels_first=data_format == "channels_first")
    expected = ops.average_pool(x, 2, 2, "valid", data_format=data_format)
    got = average_pool_2x2_by_slices(ops.convert_to_tensor(x), data_format)
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected),
                               rtol=1e-6, atol=1e-4)


# The distinct architectures of the registry at a cost CI can bear (under JAX
# each one is minutes of XLA compilation here): basic and bottleneck units, at
# widths that crashed JAX. The crash needs widening units of 16 or more
# channels before a stage's pooled shortcut, which every registered
# configuration has at both stage transitions. Covered: the basic unit at the
# search's first crashing draw (alpha 138 over 9 units, 15.3 channels a unit),
# the bottleneck unit (4x outputs, the 164-272 family), both trained one step
# and run in inference; and the registered pyramidnet110_a84 itself in
# inference, where it crashed (its training step alone costs minutes of
# compilation). The regularizers' and skipping's code paths are tested on
# every backend with tiny models (test_layers, test_models, test_skipping);
# two of the gate kinds ride here.
TRAINED = [
    {"depth": 20, "alpha": 138, "regularization": "sepdrop"},
    {"depth": 29, "alpha": 48, "bottleneck": True, "regularization": "drop"},
]
INFERRED = ["pyramidnet110_a84"]

# Built shapes-only and filled by NumPy: the crash was in the compiled
# network, not in its initializers, whose per-shape XLA compiles would cost
# JAX more than the rest of the test.
EVERY_CONFIGURATION = """
import json, sys, keras, numpy as np, keras_pyramid
from keras_pyramid.models.init import initialize_with_numpy
trained, inferred = json.loads(sys.argv[1]), json.loads(sys.argv[2])


def cheaply(build):
    with keras.StatelessScope(initialize_variables=False):
        model = build()
    return initialize_with_numpy(model)

x = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype("float32")
y = np.arange(4) % 10

def report(model, loss=None):
    probabilities = model.predict(x, batch_size=4, verbose=0)
    print(json.dumps({"name": model.name, "loss": loss,
                      "sums": probabilities.sum(axis=1).tolist()}), flush=True)

for configuration in trained:
    configuration = dict(configuration)
    depth, alpha = configuration.pop("depth"), configuration.pop("alpha")
    bottleneck = configuration.pop("bottleneck", False)
    model = cheaply(lambda: keras_pyramid.PyramidNet(depth, alpha, bottleneck, classes=10,
                                                     seed=0, **configuration))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    report(model, float(model.train_on_batch(x, y)))
for name in inferred:
    report(cheaply(lambda: keras_pyramid.build(name, classes=10)))
"""


def test_every_distinct_architecture_infers_and_trains():
    arguments = [json.dumps(TRAINED), json.dumps(INFERRED)]
    code = f"import sys; sys.argv[1:] = {arguments!r}\n" + EVERY_CONFIGURATION
    rows = [json.loads(line) for line in run_python(code, timeout=1500).splitlines()
            if line.startswith("{")]
    assert [row["name"] for row in rows] == [
        "pyramidnet20_a138_sepdrop", "pyramidnet29_a48_drop", *INFERRED]
    for row in rows:
        assert row["loss"] is None or np.isfinite(row["loss"]), row
        np.testing.assert_allclose(row["sums"], 1.0, rtol=1e-4, err_msg=row["name"])
