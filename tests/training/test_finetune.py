"""Fine-tuning: trained weights into a new network, the frozen-backbone phase, the recipe."""

import os
import shutil

import keras
import numpy as np
import pytest
from helpers.models import random_images, tiny_model
from helpers.served_weights import SERVED_NAME as SERVED

import keras_pyramid
from keras_pyramid.models import presets
from keras_pyramid.models.init import built_shapes_first
from keras_pyramid.training import finetune, recipe
from keras_pyramid.weights.assign import HEAD, weighted_layers, weights_kind

SOURCE_STATISTICS = ((10.0, 20.0, 30.0), (40.0, 50.0, 60.0))


def tiny(classes=5, **kwargs):
    """conftest's PyramidNet-8 alpha 6 on 16x16 images, its initial values
    drawn by NumPy (seconds faster under JAX)."""
    return built_shapes_first(tiny_model, classes=classes, **kwargs)


def randomized(model, seed):
    """Every weight drawn at random (BN's moving statistics too), so that a
    copied weight cannot equal a fresh one by chance."""
    rng = np.random.default_rng(seed)
    for layer in weighted_layers(model):
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                           for w in layer.get_weights()])
    return model


def values(layer):
    return [np.array(w) for w in layer.get_weights()]


def assert_backbone_equal(model, source):
    """Every conv, BN and dense layer of `model` but the classifier holds `source`'s weights."""
    for layer in weighted_layers(model):
        if layer.name != HEAD:
            for a, b in zip(values(layer), values(source.get_layer(layer.name))):
                np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A trained 10-class source as a .keras file, a run directory and a .weights.h5."""
    folder = tmp_path_factory.mktemp("sources")
    model = randomized(tiny(10, mean=SOURCE_STATISTICS[0], std=SOURCE_STATISTICS[1]), 1)
    model.save(folder / "source.keras")
    model.save_weights(folder / "source.weights.h5")
    os.makedirs(folder / "run")
    shutil.copy(folder / "source.keras", folder / "run" / "model.keras")
    return {"model": model, "keras": str(folder / "source.keras"),
            "weights.h5": str(folder / "source.weights.h5"), "run": str(folder / "run"),
            "folder": folder}


def test_weights_kinds_and_one_line_errors(sources):
    assert weights_kind("cifar100") == "tag"
    for kind in ("keras", "weights.h5", "run"):
        assert weights_kind(sources[kind]) == kind
    empty = sources["folder"] / "empty"
    empty.mkdir(exist_ok=True)
    for weights, reason in [("cifar1000", "must be None, a dataset tag"),
                            (str(empty), "holding model.keras"),
                            ("missing.keras", "be a file that exists")]:
        with pytest.raises(ValueError) as caught:
            weights_kind(weights)
        message = str(caught.value)
        assert "\n" not in message and reason in message
        assert message.startswith("`weights`") and f"weights={weights!r}" in message
    assert weights_kind(None) is None  # the one weights_kind: None is no weights
    with pytest.raises(ValueError, match="to fine-tune from. Received: weights=None"):
        finetune.load_backbone(tiny(), None, None)


@pytest.mark.parametrize("kind", ["keras", "run", "weights.h5"])
def test_a_new_head_is_replaced_and_the_backbone_is_the_sources(sources, kind):
    model = tiny(5)
    fresh = values(model.get_layer("predictions"))
    report = finetune.load_backbone(model, None, sources[kind])
    assert report == {"source": sources[kind], "kind": kind, "head": "replaced",
                      "layers": len(weighted_layers(model)) - 1}
    assert_backbone_equal(model, sources["model"])
    for a, b in zip(values(model.get_layer("predictions")), fresh):
        np.testing.assert_array_equal(a, b)


def test_an_equal_head_is_copied_into_another_regularization_and_input_size(sources):
    model = tiny(10, regularization="sepdrop", skip_dropped=True, input_shape=(32, 32, 3))
    report = finetune.load_backbone(model, None, sources["run"])
    assert report["head"] == "copied" and report["layers"] == len(weighted_layers(model))
    for a, b in zip(values(model.get_layer("predictions")),
                    values(sources["model"].get_layer("predictions"))):
        np.testing.assert_array_equal(a, b)
    assert_backbone_equal(model, sources["model"])


def test_another_architecture_is_a_one_line_error_naming_the_first_misfit(sources):
    model = tiny(5, alpha=8)
    before = [values(layer) for layer in weighted_layers(model)]
    with pytest.raises(ValueError) as caught:
        finetune.load_backbone(model, None, sources["keras"])
    message = str(caught.value)
    assert "\n" not in message and f"weights={sources['keras']!r}" in message
    assert ("layer 'stage1_unit1_conv1' is [(3, 3, 16, 19)] in pyramidnet8_a8, "
            "[(3, 3, 16, 18)] in the source") in message
    # A .weights.h5 holds no architecture: Keras' own message, on one line.
    with pytest.raises(ValueError, match=r"^`weights` must fit pyramidnet8_a8 \(.*stage1"):
        finetune.load_backbone(model, None, sources["weights.h5"])
    for layer, old in zip(weighted_layers(model), before):  # all or nothing
        for a, b in zip(values(layer), old):
            np.testing.assert_array_equal(a, b)


def test_statistics_come_with_the_weights(sources):
    for kind in ("keras", "run"):
        assert finetune.weights_statistics(None, sources[kind]) == SOURCE_STATISTICS
    assert finetune.weights_statistics(None, sources["weights.h5"]) == (None, None)
    assert finetune.weights_statistics("pyramidnet110_a48_sepdrop", "svhn") == (
        presets.IMGCLSMOB_CIFAR_MEAN, presets.IMGCLSMOB_CIFAR_STD)
    with pytest.raises(ValueError, match="with the registered `model_name`"):
        finetune.weights_statistics(None, "cifar10")
    with pytest.raises(ValueError, match="No trained weights for pyramidnet20_a48"):
        finetune.load_backbone(tiny(), "pyramidnet20_a48", "cifar10")


def test_a_tag_initialises_a_skipping_network_with_a_new_head(served):
    """The converted cifar10 weights of the configuration, through its plain
    model, into a 5-class PyramidSepDrop with skipped branches at 16x16."""
    name = SERVED + "_sepdrop"
    mean, std = finetune.weights_statistics(name, "cifar10")
    assert (mean, std) == (served["entry"].mean, served["entry"].std)
    model = built_shapes_first(keras_pyramid.build, name, classes=5, mean=mean, std=std,
                               skip_dropped=True, input_shape=(16, 16, 3))
    report = finetune.load_backbone(model, name, "cifar10")
    assert report == {"source": "cifar10", "kind": "tag", "head": "replaced",
                      "layers": len(weighted_layers(model)) - 1}
    assert_backbone_equal(model, keras_pyramid.build(SERVED, weights="cifar10"))


def snapshot(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.variables}


def changed(before, after):
    return {path for path in before if not np.array_equal(before[path], after[path])}


def two_phase_model(frozen):
    """The fine-tuning protocol of finetune's module doc, compiled for one phase."""
    model = tiny(5)
    plan = recipe.finetune_recipe(epochs=2, batch_size=8)
    optimizer = finetune.build_optimizer(model, recipe.make_optimizer(plan, 2))
    finetune.set_backbone_trainable(model, not frozen)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


def test_the_frozen_phase_trains_the_head_only_and_checkpoints_restore_across_phases(tmp_path):
    images, labels = random_images(16), np.arange(16) % 5
    variables = [v.path for v in tiny(5).variables]
    model = two_phase_model(frozen=True)
    optimizer = model.optimizer
    optimizer_variables = [v.path for v in optimizer.variables]  # built over all of them
    assert len(optimizer_variables) == 1 + len(tiny(5).trainable_variables)  # step, momenta
    assert [v.path for v in model.variables] == variables
    assert [v.path for v in model.trainable_variables] == ["predictions/kernel",
                                                           "predictions/bias"]
    start = snapshot(model)
    model.fit(images, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
    head_phase = snapshot(model)
    # Nothing of the backbone moved, BN's moving statistics included.
    assert changed(start, head_phase) == {"predictions/kernel", "predictions/bias"}
    model.save_weights(tmp_path / "head_phase.weights.h5")

    finetune.set_backbone_trainable(model, True)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=8, epochs=2, initial_epoch=1, shuffle=False,
              verbose=0)
    moved = changed(head_phase, snapshot(model))
    weights = {v.path for layer in weighted_layers(model) for v in layer.weights}
    assert weights <= moved  # every kernel, BN parameter and moving statistic
    assert [v.path for v in model.variables] == variables
    assert [v.path for v in optimizer.variables] == optimizer_variables
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    model.save_weights(tmp_path / "full_phase.weights.h5")
    # The schedule is Keras' own class: a saved compiled model loads anywhere.
    config = keras.optimizers.serialize(optimizer)["config"]["learning_rate"]
    assert (config["module"], config["class_name"]) == ("keras.optimizers.schedules",
                                                        "CosineDecay")
    assert isinstance(keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
                      ._learning_rate, keras.optimizers.schedules.CosineDecay)

    # A checkpoint of either phase restores into a model compiled for the other.
    restored = two_phase_model(frozen=False)
    restored.load_weights(tmp_path / "head_phase.weights.h5")
    assert not changed(head_phase, snapshot(restored))
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 2
    restored = two_phase_model(frozen=True)
    restored.load_weights(tmp_path / "full_phase.weights.h5")
    assert not changed(snapshot(model), snapshot(restored))
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 4


def test_freezing_reaches_into_a_wrapped_model_and_comes_after_the_optimizer():
    from keras_pyramid.data.resident import with_augmentation

    model = tiny(5)
    augmented = finetune.set_backbone_trainable(with_augmentation(model), False)
    assert [v.path for v in augmented.trainable_variables] == ["predictions/kernel",
                                                               "predictions/bias"]
    finetune.set_backbone_trainable(augmented, True)
    assert len(augmented.trainable_variables) == len(tiny(5).trainable_variables)
    finetune.set_backbone_trainable(model, False)
    with pytest.raises(ValueError, match="`model` must not be frozen yet"):
        finetune.build_optimizer(model, keras.optimizers.SGD())
    with pytest.raises(ValueError, match="has no layer 'predictions'"):
        finetune.set_backbone_trainable(tiny(include_top=False), False)


def test_cosine_schedule_and_the_finetune_recipe():
    plan = recipe.finetune_recipe()
    assert (plan.learning_rate, plan.schedule, plan.epochs, plan.batch_size) == (
        0.01, "cosine", 30, 64)
    assert (plan.momentum, plan.nesterov, plan.weight_decay) == (0.9, True, 1e-4)
    assert plan.frozen_epochs() == 5
    assert recipe.finetune_recipe(epochs=12, learning_rate=None).frozen_epochs() == 2
    assert recipe.finetune_recipe(learning_rate=None, batch_size=None) == plan
    assert recipe.finetune_recipe(batch_size=32).batch_size == 32
    schedule = recipe.learning_rate_schedule(recipe.finetune_recipe(epochs=4), 10)
    assert isinstance(recipe.make_optimizer(plan, 10)._learning_rate,
                      keras.optimizers.schedules.CosineDecay)
    def value(step):
        return float(keras.ops.convert_to_numpy(schedule(step)))

    assert value(0) == pytest.approx(0.01)
    assert value(20) == pytest.approx(0.005)
    assert value(40) == pytest.approx(0.0, abs=1e-9)
    assert isinstance(recipe.learning_rate_schedule(recipe.paper_recipe("cifar10"), 10),
                      keras.optimizers.schedules.PiecewiseConstantDecay)


def test_recipes_by_name_and_for_any_dataset():
    assert recipe.paper_recipe("oxford_flowers102").learning_rate == 0.1
    assert recipe.paper_recipe("cifar100").learning_rate == 0.5
    assert recipe.recipe_named("paper", "cifar100", epochs=None).learning_rate == 0.5
    assert recipe.recipe_named("finetune", "cifar100", epochs=3).epochs == 3
    for call, message in [(lambda: recipe.recipe_named("scratch", "cifar10"), "`recipe`"),
                          (lambda: recipe.finetune_recipe(schedule="linear"), "`schedule`"),
                          (lambda: recipe.finetune_recipe(freeze_backbone=1.5),
                           "`freeze_backbone`")]:
        with pytest.raises(ValueError) as caught:
            call()
        assert message in str(caught.value) and "\n" not in str(caught.value)
