"""Crash regressions: each runs in a subprocess, so a segfault fails the test
instead of killing pytest (see tests/upstream/jax_ynn_reduce_crash.py)."""

import json

import numpy as np
import pytest
from keras import ops

from conftest import random_images, run_python
from keras_pyramid.layers import average_pool_2x2_by_slices

# The trigger of the jaxlib 0.10.2 YNN "reduce" fusion segfault, written with
# this package's layers: a widening conv after a channel scale, then a unit
# (zero-padded shortcut + conv) and the pooled shortcut of the next stage.
# With `ops.average_pool` in PyramidShortcut it dies under JAX at batch 1.
SHORTCUT_TRIGGER = """
import json, keras, numpy as np
from keras_pyramid.layers import PyramidShortcut
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


# Every distinct code path and width pattern of the registry, at a cost CI can
# bear (see README, "Tests"): basic and bottleneck units; the four
# regularizations and skipping; the widths that crashed (110 alpha 84 is a
# registered model; 32 and 20 at alpha 138 are the search's draws) and the
# widest registered basic stage (alpha 270, as its 20-layer cousin: the same
# per-unit width steps occur in a deeper net at 110 layers only more finely).
CONFIGURATIONS = [
    {"depth": 20, "alpha": 48, "regularization": None},
    {"depth": 20, "alpha": 48, "regularization": "drop", "skip_dropped": True},
    {"depth": 20, "alpha": 48, "regularization": "sepdrop"},
    {"depth": 20, "alpha": 48, "regularization": "shakedrop"},
    {"depth": 20, "alpha": 138, "regularization": "sepdrop"},
    {"depth": 32, "alpha": 138, "regularization": None},
    {"depth": 20, "alpha": 270, "regularization": "sepdrop"},
    {"depth": 110, "alpha": 84, "regularization": None},
    {"depth": 29, "alpha": 48, "bottleneck": True, "regularization": "sepdrop"},
]

EVERY_CONFIGURATION = """
import json, sys, keras, numpy as np, keras_pyramid
x = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype("float32")
y = np.arange(4) % 10
for configuration in json.loads(sys.argv[1]):
    configuration = dict(configuration)
    depth, alpha = configuration.pop("depth"), configuration.pop("alpha")
    bottleneck = configuration.pop("bottleneck", False)
    model = keras_pyramid.PyramidNet(depth, alpha, bottleneck, classes=10, seed=0,
                                     **configuration)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, y)
    probabilities = model.predict(x, batch_size=4, verbose=0)
    print(json.dumps({"name": model.name, "loss": float(loss),
                      "sums": probabilities.sum(axis=1).tolist()}), flush=True)
"""


def test_every_distinct_configuration_infers_and_trains():
    code = "import sys; sys.argv[1:] = [%r]\n" % json.dumps(CONFIGURATIONS) + EVERY_CONFIGURATION
    rows = [json.loads(line) for line in run_python(code, timeout=1500).splitlines()
            if line.startswith("{")]
    assert len(rows) == len(CONFIGURATIONS)
    for row in rows:
        assert np.isfinite(row["loss"]), row
        np.testing.assert_allclose(row["sums"], 1.0, rtol=1e-4, err_msg=row["name"])
