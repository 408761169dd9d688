"""The PyramidNet builder, the named builders and the registry."""

import os
import sys

import keras
import numpy as np
import pytest
from helpers.models import random_images, tiny_model, trainable_parameter_count
from helpers.paths import REPO
from saving_case import run_serialization_test

import keras_pyramid
from keras_pyramid import applications
from keras_pyramid.models.pyramidnet import unit_widths
from keras_pyramid.models.regularizers import PyramidSepDrop, ShakeDrop, StochasticDepth

# docs/architecture.md section 1, copied here on purpose: the presets table is the code's
# source of truth, so the test must not read its expectations from it.
SPEC_PARAMETER_COUNTS = [
    (110, 48, False, 1_772_706, 1_778_556),
    (110, 84, False, 3_904_446, 3_913_536),
    (110, 270, False, 28_485_477, 28_511_307),
    (164, 48, True, 1_715_442, 1_738_572),
    (164, 84, True, 3_757_494, 3_793_584),
    (164, 270, True, 27_216_021, 27_319_071),
    (200, 240, True, 26_752_702, 26_844_952),
    (236, 220, True, 26_969_046, 27_054_096),
    (272, 200, True, 26_210_842, 26_288_692),
]


def count_without_initializing(**arguments):
    """Trainable parameters of a model built without running any initializer.

    Initializing a 26M-parameter model costs minutes under JAX (one XLA
    compile per weight shape); shapes are all a count needs.
    """
    with keras.StatelessScope(initialize_variables=False):
        model = keras_pyramid.PyramidNet(**arguments)
        count = trainable_parameter_count(model)
    # Drop the never-initialized variables from Keras' global list.
    keras.backend.clear_session(free_memory=False)
    return count


@pytest.mark.parametrize(
    "depth, alpha, bottleneck, c10, c100",
    SPEC_PARAMETER_COUNTS,
    ids=[f"{d}_a{a}" for d, a, *_ in SPEC_PARAMETER_COUNTS],
)
def test_trainable_parameter_counts_equal_spec(depth, alpha, bottleneck, c10, c100):
    for classes, expected in ((10, c10), (100, c100)):
        for regularization in (None, "sepdrop"):  # regularizers add nothing
            count = count_without_initializing(
                depth=depth,
                alpha=alpha,
                bottleneck=bottleneck,
                classes=classes,
                regularization=regularization,
            )
            assert count == expected, (depth, alpha, classes, regularization)


def test_presets_table_matches_spec():
    for depth, alpha, bottleneck, c10, c100 in SPEC_PARAMETER_COUNTS:
        preset = applications.PRESETS[f"pyramidnet{depth}_a{alpha}_sepdrop"]
        assert preset["params"] == {10: c10, 100: c100}
        assert preset["bottleneck"] is bottleneck
    for depth, alpha, count, _ in SPEC_IMAGENET_COUNTS:
        assert applications.PRESETS[f"pyramidnet{depth}_a{alpha}_imagenet"]["params"] == {
            1000: count}


# docs/architecture.md section 1b, 1000 classes, copied on purpose (see above): depth, alpha,
# trainable parameters, final feature width.
SPEC_IMAGENET_COUNTS = [
    (101, 250, 24_956_608, 1256),
    (101, 360, 42_455_070, 1696),
    (152, 200, 27_341_608, 1056),
    (200, 300, 62_368_168, 1456),
    (200, 450, 116_775_213, 2056),
]


@pytest.mark.parametrize("depth, alpha, count, features", SPEC_IMAGENET_COUNTS,
                         ids=[f"{d}_a{a}" for d, a, *_ in SPEC_IMAGENET_COUNTS])
def test_imagenet_parameter_counts_equal_spec(depth, alpha, count, features):
    name = f"pyramidnet{depth}_a{alpha}_imagenet"
    with keras.StatelessScope(initialize_variables=False):
        model = keras_pyramid.build(name)
        assert trainable_parameter_count(model) == count
        assert model.get_layer("predictions").kernel.shape == (features, 1000)
        assert model.input_shape == (None, 224, 224, 3)
        dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        assert [layer.rate for layer in dropout] == ([0.5] if alpha == 450 else [])
    keras.backend.clear_session(free_memory=False)


def test_imagenet_stem_and_stage_plan_follow_resnet():
    with keras.StatelessScope(initialize_variables=False):  # shapes only: cheap under JAX
        model = keras_pyramid.PyramidNet(50, 48, True, variant="imagenet",
                                         input_shape=(64, 64, 3), include_top=False)
    keras.backend.clear_session(free_memory=False)
    assert model.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("stem_conv_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("stem_pool_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("stem_pool").output.shape == (None, 16, 16, 64)  # 64 / 4
    for stage, units in enumerate((3, 4, 6, 3), start=1):
        assert f"stage{stage}_unit{units}_add" in [layer.name for layer in model.layers]
        assert f"stage{stage}_unit{units + 1}_add" not in [layer.name for layer in model.layers]
    assert model.output.shape == (None, 2, 2, 4 * (64 + 48))  # 64 / 32
    assert keras_pyramid.models.pyramidnet.stage_plan(200, True, "imagenet") == (3, 24, 36, 3)
    assert keras_pyramid.models.pyramidnet.stage_plan(110) == (18, 18, 18)


def test_initialize_with_numpy_follows_the_initializers():
    from keras_pyramid.models.init import initialize_with_numpy

    with keras.StatelessScope(initialize_variables=False):
        model = tiny_model("sepdrop", depth=14, alpha=48, seed=5)
    initialize_with_numpy(model, seed=0)
    kernel = keras.ops.convert_to_numpy(model.get_layer("stage3_unit2_conv2").kernel)
    # He normal over fan-out, untruncated: std sqrt(2 / (3 * 3 * out)).
    expected = np.sqrt(2.0 / (9 * kernel.shape[-1]))
    assert abs(kernel.std() / expected - 1) < 0.05 and abs(kernel.mean()) < 0.05 * expected
    head = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    bound = 1 / np.sqrt(head.shape[0])  # PyTorch's nn.Linear
    assert np.abs(head).max() <= bound and np.abs(head).max() > 0.9 * bound
    bn = model.get_layer("stage1_unit1_bn1")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.gamma), 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_mean), 0.0)
    # Seed states as a plain build sets them: the gates draw the same stream.
    plain = tiny_model("sepdrop", depth=14, alpha=48, seed=5)
    seeds = [[keras.ops.convert_to_numpy(v) for v in m.variables if "seed" in v.path]
             for m in (model, plain)]
    assert len(seeds[0]) == 6
    for ours, theirs in zip(*seeds):
        np.testing.assert_array_equal(ours, theirs)


def test_multiplicative_widths_follow_the_rule():
    """docs/architecture.md 1c: c_k = c_{k-1} * alpha^(1/N) from 16, D_k = floor(c_k + 0.5)."""
    for alpha in (4.75, 8, 27):
        widths = unit_widths(110, alpha, widening="multiplicative")
        assert len(widths) == 54
        expected = [int(np.floor(16 * alpha ** (k / 54) + 0.5)) for k in range(1, 55)]
        assert widths == expected
        assert widths[-1] == round(16 * alpha)
    assert unit_widths(164, 8, True, widening="multiplicative")[-1] == 128
    with keras.StatelessScope(initialize_variables=False):
        model = applications.PyramidNet110Multiplicative(alpha=8, include_top=False)
        assert model.name == "pyramidnet110_a8_multiplicative"
        assert model.output.shape[-1] == 128
    keras.backend.clear_session(free_memory=False)


def test_imagenet_and_multiplicative_names_are_registered():
    imagenet = keras_pyramid.list_models(variant="imagenet")
    for depth, alpha in ((101, 250), (101, 360), (152, 200), (200, 300), (200, 450)):
        for suffix in ("", "_drop", "_sepdrop", "_shakedrop"):
            assert f"pyramidnet{depth}_a{alpha}_imagenet{suffix}" in imagenet
    assert len(imagenet) == 5 * 4
    cifar = keras_pyramid.list_models(variant="cifar")
    assert set(cifar) | set(imagenet) == set(keras_pyramid.list_models())
    assert not set(cifar) & set(imagenet)
    for alpha in ("4.75", "8", "27"):
        assert f"pyramidnet110_a{alpha}_multiplicative_sepdrop" in cifar
    with pytest.raises(ValueError, match="variant='resnet'"):
        keras_pyramid.list_models(variant="resnet")
    assert applications.PyramidNet101ImageNetSepDrop.__name__ == "PyramidNet101ImageNetSepDrop"
    assert "(224, 224, 3)" in applications.PyramidNet200ImageNet.__doc__


def test_unit_widths_round_half_up_as_spec():
    widths = unit_widths(110, 48)
    stage1 = [17, 18, 19, 20, 20, 21, 22, 23, 24, 25, 26, 27, 28, 28, 29, 30, 31, 32]
    assert widths[:18] == stage1
    assert widths[18:36] == [w + 16 for w in stage1]
    assert widths[36:] == [w + 32 for w in stage1]
    assert unit_widths(272, 200, bottleneck=True)[-1] == 216


def test_bottleneck_output_is_four_times_the_width():
    model = tiny_model(depth=11, alpha=6, bottleneck=True, include_top=False)
    assert model.output.shape[-1] == 4 * (16 + 6)
    assert model.get_layer("stage3_unit1_conv2").strides == (2, 2)


def test_layer_names_are_hierarchical_and_deterministic():
    first, second = tiny_model("sepdrop"), tiny_model("sepdrop")
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    for name in (
        "normalization",
        "stem_conv",
        "stage1_unit1_bn1",
        "stage2_unit1_conv1_pad",
        "stage2_unit1_sepdrop",
        "stage3_unit1_shortcut",
        "head_bn",
        "predictions",
    ):
        assert name in names, name


def test_strided_convs_pad_like_pytorch():
    model = tiny_model(include_preprocessing=False)
    pad = model.get_layer("stage2_unit1_conv1_pad")
    assert pad.padding == ((1, 1), (1, 1))
    assert model.get_layer("stage2_unit1_conv1").padding == "valid"


def test_batchnorm_and_initializers_follow_torch():
    model = tiny_model()
    bn = model.get_layer("stage1_unit1_bn2")
    assert bn.momentum == 0.9 and bn.epsilon == 1e-5
    kernel = model.get_layer("stem_conv").kernel
    init = model.get_layer("stem_conv").kernel_initializer.get_config()
    assert init["mode"] == "fan_out" and init["distribution"] == "untruncated_normal"
    assert init["scale"] == 2.0 and kernel.shape == (3, 3, 3, 16)


def test_regularizer_drop_rates_follow_the_linear_rule():
    model = tiny_model("sepdrop", depth=14, drop_rate=0.6)  # 6 units
    layers = [layer for layer in model.layers if isinstance(layer, PyramidSepDrop)]
    rates = [layer.drop_rate for layer in layers]
    np.testing.assert_allclose(rates, [0.6 * unit / 6 for unit in range(1, 7)])
    # Identity channels are the unit's input channels: 16 for the first unit.
    assert layers[0].identity_channels == 16


def test_new_channels_rates_follow_the_linear_rule():
    model = tiny_model("sepdrop", drop_rate=0.4, new_drop_rate=0.3)
    layers = [layer for layer in model.layers if isinstance(layer, PyramidSepDrop)]
    assert [layer.drop_rate for layer in layers] == pytest.approx([0.4 / 3, 0.8 / 3, 0.4])
    assert [layer.new_drop_rate for layer in layers] == pytest.approx([0.1, 0.2, 0.3])
    tied = tiny_model("sepdrop", drop_rate=0.4)
    assert all(layer.new_drop_rate is None for layer in tied.layers
               if isinstance(layer, PyramidSepDrop))
    reloaded = run_serialization_test(model)
    assert [layer.new_drop_rate for layer in reloaded.layers
            if isinstance(layer, PyramidSepDrop)] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "regularization, layer_type",
    [("drop", StochasticDepth), ("sepdrop", PyramidSepDrop), ("shakedrop", ShakeDrop)],
)
def test_regularization_kinds(regularization, layer_type):
    model = tiny_model(regularization)
    found = [layer for layer in model.layers if isinstance(layer, layer_type)]
    assert len(found) == 3


def test_include_top_false_and_pooling():
    features = tiny_model(include_top=False)
    assert features.output.shape == (None, 4, 4, 22)
    pooled = tiny_model(include_top=False, pooling="avg")
    assert pooled.output.shape == (None, 22)


def test_predict_never_drops_and_is_deterministic():
    model = tiny_model("sepdrop", drop_rate=0.9)
    x = random_images(8)
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
    )
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-5)


def test_channels_first_computes_the_same_function():
    last = tiny_model("sepdrop", classifier_activation=None)
    keras.config.set_image_data_format("channels_first")
    first = tiny_model("sepdrop", classifier_activation=None, input_shape=(3, 16, 16))
    assert first.output.shape == (None, 10)
    first.set_weights(last.get_weights())
    x = random_images(4)
    expected = last.predict(x, verbose=0)
    actual = first.predict(x.transpose(0, 3, 1, 2), verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_weights_argument_loads_a_weights_file(tmp_path):
    source = tiny_model(classifier_activation=None)
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    loaded = tiny_model(classifier_activation=None, weights=path)
    x = random_images(2)
    np.testing.assert_array_equal(
        source.predict(x, verbose=0), loaded.predict(x, verbose=0)
    )


def test_registry_lists_names_and_builds_with_overrides():
    names = keras_pyramid.list_models()
    for name in (
        "pyramidnet110_a48",
        "pyramidnet272_a200_sepdrop",
        "pyramidnet110_a270_shakedrop",
        "pyramidnet164_a270_drop",
    ):
        assert name in names
    model = keras_pyramid.build(
        "pyramidnet8_a24_sepdrop", input_shape=(16, 16, 3), classes=5, drop_rate=None
    )
    assert model.name == "pyramidnet8_a24_sepdrop"
    assert model.output.shape == (None, 5)
    last = [layer for layer in model.layers if isinstance(layer, PyramidSepDrop)][-1]
    assert last.drop_rate == 0.5  # None fell through to the default


def test_unknown_model_name_names_the_closest_ones():
    with pytest.raises(ValueError, match="did you mean 'pyramidnet8_a24'.*list_models"):
        keras_pyramid.build("pyramidnet999")


def test_named_builders_carry_the_paper_defaults():
    assert applications.PyramidNet272SepDrop.__name__ == "PyramidNet272SepDrop"
    assert "alpha 200" in applications.PyramidNet272SepDrop.__doc__
    with keras.StatelessScope(initialize_variables=False):
        model = applications.PyramidNet110(classes=100)
        assert model.name == "pyramidnet110_a48"
        assert trainable_parameter_count(model) == 1_778_556
        sepdrop = applications.PyramidNet272SepDrop(classes=100)
        assert sepdrop.name == "pyramidnet272_a200_sepdrop"
        assert any(isinstance(layer, PyramidSepDrop) for layer in sepdrop.layers)
    keras.backend.clear_session(free_memory=False)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(depth=100), r"depth=100"),
        (dict(depth=29, bottleneck=False), r"depth=29"),
        (dict(depth=26, bottleneck=True), r"depth=26"),
        (dict(depth="110"), r"depth='110'"),
        (dict(alpha=0), r"alpha=0"),
        (dict(alpha=-4.5), r"alpha=-4.5"),
        (dict(drop_rate=1.0), r"drop_rate=1.0"),
        (dict(drop_rate=-0.2), r"drop_rate=-0.2"),
        (dict(regularization="dropout"), r"regularization='dropout'"),
        (dict(classes=0), r"classes=0"),
        (dict(input_shape=(16, 16, 0)), r"input_shape=\(16, 16, 0\)"),
        (dict(input_shape=(16, 16, None)), r"input_shape=\(16, 16, None\)"),
        (dict(input_shape=(16, 16)), r"input_shape=\(16, 16\)"),
        (dict(input_shape=(2, 2, 3)), r"input_shape=\(2, 2, 3\)"),
        (dict(input_shape=(16, 16, 1), mean=(1, 2, 3)), r"mean=\(1, 2, 3\)"),
        (dict(pooling="sum"), r"pooling='sum'"),
        (dict(weights="imagenet"), r"weights='imagenet'"),
        (dict(weights="missing.weights.h5"), r"weights='missing.weights.h5'"),
        (dict(granularity="pixel"), r"granularity='pixel'"),
        (dict(weight_decay=-1e-4), r"weight_decay=-0.0001"),
        (dict(regularization="sepdrop", new_drop_rate=1.0), r"new_drop_rate=1.0"),
        (dict(regularization="drop", new_drop_rate=0.2), r"new_drop_rate=0.2"),
        (dict(variant="resnet"), r"variant='resnet'"),
        (dict(widening="geometric"), r"widening='geometric'"),
        (dict(head_dropout=1.0), r"head_dropout=1.0"),
        (dict(variant="imagenet", depth=50), r"bottleneck=False"),
        (dict(variant="imagenet", depth=110, bottleneck=True), r"depth=110"),
        (dict(variant="imagenet", depth=101.0, bottleneck=True), r"depth=101.0"),
        (dict(variant="imagenet", depth=50, bottleneck=True), r"input_shape=\(16, 16, 3\)"),
        (dict(variant="imagenet", depth=50, bottleneck=True, input_shape=(48, 31, 3)),
         r">= 32.*input_shape=\(48, 31, 3\)"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(arguments, message):
    full = dict(depth=8, alpha=6, input_shape=(16, 16, 3))
    full.update(arguments)
    with pytest.raises(ValueError, match=message):
        keras_pyramid.PyramidNet(**full)


def test_weight_decay_penalizes_every_parameter():
    model = tiny_model(weight_decay=1e-4)
    assert len(model.losses) == len(model.trainable_weights)
    expected = sum(
        0.5 * 1e-4 * float(np.sum(keras.ops.convert_to_numpy(w) ** 2))
        for w in model.trainable_weights
    )
    total = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    np.testing.assert_allclose(total, expected, rtol=1e-4)
    assert tiny_model().losses == []


def copy_into_reference(model, reference):
    """Random BN statistics and affine terms (so every weight matters), then
    the Keras weights copied into the PyTorch reference, in eval mode."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([
                rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                rng.normal(0, 0.1, shape), rng.uniform(0.5, 1.5, shape),
            ])
    reference.load_from_keras(model)
    reference.eval()


@pytest.mark.parametrize("variant, bottleneck, size", [
    ("cifar", False, 16), ("cifar", True, 16), ("imagenet", True, 64),
    # Odd sizes: the ceil-mode shortcut pool (AvgPool2d(2, 2, ceil_mode=True) there).
    ("cifar", False, 17), ("cifar", True, 15)],
    ids=["cifar-basic", "cifar-bottleneck", "imagenet", "cifar-basic-17", "cifar-bottleneck-15"])
def test_weights_ported_from_pytorch_give_the_same_logits(variant, bottleneck, size):
    """The Keras model and an independent PyTorch PyramidNet in the official
    code's style compute the same logits from the same weights (ImageNet:
    depth 50, alpha 48, at 64x64 with 10 classes)."""
    import torch

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # the benchmark's yardstick
    from torch_pyramidnet import TorchPyramidNet

    from keras_pyramid.models.init import initialize_with_numpy
    from keras_pyramid.models.pyramidnet import VARIANTS, stage_plan

    depth, alpha = {("cifar", False): (8, 6), ("cifar", True): (11, 6),
                    ("imagenet", True): (50, 48)}[variant, bottleneck]
    with keras.StatelessScope(initialize_variables=False):  # cheap under JAX
        model = tiny_model(depth=depth, alpha=alpha, bottleneck=bottleneck, variant=variant,
                           classes=10, classifier_activation=None,
                           input_shape=(size, size, 3))
    initialize_with_numpy(model)
    reference = TorchPyramidNet(unit_widths(depth, alpha, bottleneck, variant=variant),
                                bottleneck, classes=10, variant=variant,
                                stages=stage_plan(depth, bottleneck, variant))
    copy_into_reference(model, reference)

    x = random_images(4, size=size)
    statistics = VARIANTS[variant]
    normalized = ((x - np.array(statistics.mean, "float32")) /
                  np.array(statistics.std, "float32")).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        expected = reference(torch.from_numpy(normalized)).numpy()
    actual = model.predict(x, verbose=0)
    scale = np.abs(expected).max()
    print(f"{variant} largest logit difference / largest logit: "
          f"{np.abs(actual - expected).max() / scale:.2e}")
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)
