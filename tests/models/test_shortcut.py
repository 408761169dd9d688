"""The pyramidal shortcut: pooling, zero channels, data formats, config."""

import numpy as np
import pytest
from keras import ops
from saving_case import run_serialization_test

from keras_pyramid.models.shortcut import PyramidShortcut


@pytest.mark.parametrize("strides", [1, 2])
def test_shortcut_pools_and_appends_zero_channels(strides):
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype("float32")
    y = ops.convert_to_numpy(PyramidShortcut(5, strides)(x))
    expected = x
    if strides == 2:
        expected = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(y[..., :3], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y[..., 3:], 0.0)


def test_shortcut_channels_first():
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype("float32")
    y = ops.convert_to_numpy(PyramidShortcut(5, 2, data_format="channels_first")(x))
    assert y.shape == (2, 5, 2, 2)
    np.testing.assert_array_equal(y[:, 3:], 0.0)



def test_config_round_trip():
    run_serialization_test(PyramidShortcut(12, 2))


def test_bad_strides_name_the_argument_and_value():
    with pytest.raises(ValueError, match="strides=3"):
        PyramidShortcut(8, strides=3)
