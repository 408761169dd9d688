"""keras.applications conventions: explicit None overrides, any channel count
without trained weights, any input size from the variant's minimum (ceil-mode
shortcut pooling), and closest-name hints. Tiny models only (depth 8 or 11)."""

import keras
import numpy as np
import pytest
from helpers.models import tiny_model

import keras_pyramid
from keras_pyramid import applications
from keras_pyramid.models.init import built_shapes_first
from keras_pyramid.models.presets import CIFAR_MEAN, CIFAR_STD
from keras_pyramid.models.pyramidnet import minimum_input_size, normalization_statistics
from keras_pyramid.models.regularizers import PyramidSepDrop
from keras_pyramid.models.shortcut import PyramidShortcut


def tiny(**arguments):
    """`tiny_model` initialized with NumPy draws: seconds less per build under JAX."""
    return built_shapes_first(tiny_model, **arguments)


def ceil_mode_average_pool(x):
    """NumPy reference: 2x2 stride-2 windows from the top-left corner, the last
    ones clipped to the image (ceil mode), each the mean of its real pixels only."""
    height, width = x.shape[1:3]
    rows, columns = -(-height // 2), -(-width // 2)
    out = np.zeros((x.shape[0], rows, columns, x.shape[3]))
    for i in range(rows):
        for j in range(columns):
            out[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2))
    return out


def test_build_passes_an_explicit_none_through():
    # Before: every None override was dropped, so this was softmax and sepdrop.
    model = built_shapes_first(keras_pyramid.build, "pyramidnet8_a24_sepdrop",
                               input_shape=(16, 16, 3), classifier_activation=None,
                               regularization=None)
    assert model.get_layer("predictions").activation is keras.activations.linear
    assert not any(isinstance(layer, PyramidSepDrop) for layer in model.layers)
    logits = model.predict(np.full((2, 16, 16, 3), 128.0, "float32"), verbose=0)
    assert not np.allclose(logits.sum(axis=1), 1.0)
    # Not given: the registered configuration and the builder's defaults stay.
    with keras.StatelessScope(initialize_variables=False):  # shapes only: cheap under JAX
        default = keras_pyramid.build("pyramidnet8_a24_sepdrop", input_shape=(16, 16, 3),
                                      drop_rate=None)
        assert default.get_layer("predictions").activation is keras.activations.softmax
        assert [layer for layer in default.layers
                if isinstance(layer, PyramidSepDrop)][-1].drop_rate == 0.5
    keras.backend.clear_session(free_memory=False)


@pytest.mark.parametrize("name, closest", [("pyramidnet110_a48x", "'pyramidnet110_a48'"),
                                           ("PyramidNet272_a200_SepDrop",
                                            "'pyramidnet272_a200_sepdrop'")])
def test_unknown_names_get_the_closest_registered_ones(name, closest):
    with pytest.raises(ValueError, match=f"did you mean {closest}") as raised:
        keras_pyramid.build(name)
    assert str(raised.value).endswith(f"Received: name={name!r}")
    assert "pyramidnet200_a300_imagenet" not in str(raised.value)  # not the 80 names
    with pytest.raises(ValueError, match=f"did you mean {closest}"):
        applications.trained_weights(name, "cifar10")
    assert applications.check_model_name("pyramidnet8_a24") == "pyramidnet8_a24"


@pytest.mark.parametrize("input_shape", [(16, 16, 1), (None, None, 1)])
def test_any_channel_count_without_trained_weights(input_shape):
    model = tiny(input_shape=input_shape, classes=4)
    mean, std = normalization_statistics(model)
    # No statistics given: the CIFAR default's average, on the one channel.
    np.testing.assert_allclose(mean, [np.mean(CIFAR_MEAN)])
    np.testing.assert_allclose(std, [np.mean(CIFAR_STD)], rtol=1e-6)
    assert model.predict(np.zeros((1, 16, 16, 1), "float32"), verbose=0).shape == (1, 4)


def test_statistics_take_one_value_per_channel():
    model = tiny(input_shape=(16, 16, 2), mean=(10.0, 20.0), std=(2.0, 4.0))
    mean, std = normalization_statistics(model)
    np.testing.assert_allclose(mean, [10.0, 20.0])
    np.testing.assert_allclose(std, [2.0, 4.0])
    with pytest.raises(ValueError, match=r"`mean` must be 2 finite numbers.*mean=\(1, 2, 3\)"):
        tiny_model(input_shape=(16, 16, 2), mean=(1, 2, 3))


def test_trained_weights_still_need_three_channels():
    # Refused before anything is fetched.
    with pytest.raises(ValueError, match=r"^`input_shape` must have 3 \(RGB\) channels with "
                                         r"`weights='cifar10'`.*input_shape=\(32, 32, 1\)$"):
        keras_pyramid.build("pyramidnet110_a48", weights="cifar10", input_shape=(32, 32, 1))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size", [(7, 5), (6, 8), (1, 3)])
def test_shortcut_pool_is_ceil_mode_without_counting_padding(size, data_format):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    layer = PyramidShortcut(5, strides=2, data_format=data_format)
    inputs = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    output = keras.ops.convert_to_numpy(layer(inputs))
    assert output.shape == layer.compute_output_shape(inputs.shape)
    if data_format == "channels_first":
        output = output.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(output[..., :3], ceil_mode_average_pool(x), atol=1e-6)
    np.testing.assert_array_equal(output[..., 3:], 0.0)


def test_odd_sizes_shrink_like_the_strided_convolutions():
    """Every stride-2 layer maps n to ceil(n / 2): 33 -> 17 -> 9, 35 -> 18 -> 9, 17 -> 9 -> 5."""
    static = tiny(input_shape=(35, 17, 3), include_top=False, pooling=None)
    assert static.output.shape == (None, 9, 5, 22)
    features = tiny(input_shape=(None, None, 3), include_top=False, pooling=None)
    for size, last in ((33, 9), (35, 9), (17, 5)):
        x = np.zeros((1, size, size, 3), "float32")
        assert features.predict(x, verbose=0).shape == (1, last, last, 22)


def test_minimum_input_size_is_accepted_and_one_below_refused():
    assert (minimum_input_size("cifar"), minimum_input_size("imagenet")) == (4, 32)
    assert tiny(input_shape=(4, 5, 3)).output.shape == (None, 10)
    with pytest.raises(ValueError, match=r"^`input_shape` must have height and width >= 4 "
                                         r".*Received: input_shape=\(3, 16, 3\)$"):
        tiny_model(input_shape=(3, 16, 3))
    imagenet = dict(depth=50, bottleneck=True, variant="imagenet", alpha=8)
    with keras.StatelessScope(initialize_variables=False):  # shapes only: cheap under JAX
        model = tiny_model(input_shape=(32, 33, 3), **imagenet)
        assert model.output.shape == (None, 1000)
    keras.backend.clear_session(free_memory=False)
    with pytest.raises(ValueError, match=r">= 32.*input_shape=\(31, 32, 3\)$"):
        tiny_model(input_shape=(31, 32, 3), **imagenet)
    with pytest.raises(ValueError, match=r"variant='resnet'"):
        minimum_input_size("resnet")
