"""The tfds pipelines and the papers' recipe."""

import hashlib
import time

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_pyramid import data, recipe


def batches(dataset, count):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(count)]


@pytest.fixture
def mock_cifar100():
    with tfds.testing.mock_data(num_examples=64):
        yield tfds.builder("cifar100")


def test_training_pipeline_shapes_dtypes_and_labels(mock_cifar100):
    ds = data.pipeline(mock_cifar100, "train", batch_size=16, training=True, seed=1)
    (images, labels), = batches(ds, 1)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.float32
    assert labels.shape == (16,) and labels.dtype == np.int32
    assert 0 <= images.min() and images.max() <= 255  # raw pixels
    assert labels.max() < 100


def test_channels_first_pipeline(mock_cifar100):
    ds = data.pipeline(mock_cifar100, "test", 8, training=False, data_format="channels_first")
    (images, _), = batches(ds, 1)
    assert images.shape == (8, 3, 32, 32)


def test_evaluation_pipeline_is_unaugmented_and_repeatable(mock_cifar100):
    raw = np.stack([np.asarray(x) for x, _ in mock_cifar100.as_dataset(
        split="test", as_supervised=True).take(8)]).astype("float32")
    first = batches(data.pipeline(mock_cifar100, "test", 8, training=False), 1)[0][0]
    second = batches(data.pipeline(mock_cifar100, "test", 8, training=False), 1)[0][0]
    np.testing.assert_array_equal(first, raw)
    np.testing.assert_array_equal(first, second)


def test_augmentation_is_random_crop_and_flip_of_the_padded_image():
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(0).integers(1, 256, (32, 32, 3)), tf.uint8)
    padded = np.pad(image.numpy(), ((4, 4), (4, 4), (0, 0)))
    outputs = [data.augment(image, tf.constant([7, i], tf.int64)).numpy() for i in range(40)]
    distinct = {hashlib.sha1(o.tobytes()).hexdigest() for o in outputs}
    assert len(distinct) > 10
    flipped = 0
    for out in outputs:
        windows = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if np.array_equal(
                out, (padded[dy:dy + 32, dx:dx + 32][:, ::-1] if flip else padded[dy:dy + 32, dx:dx + 32])
            )
        ]
        assert windows, "output is not a (flipped) 32x32 window of the padded image"
        flipped += windows[0][2]
    assert 5 < flipped < 35


def test_training_pipeline_differs_between_epochs(mock_cifar100):
    ds = data.pipeline(mock_cifar100, "train", 64, training=True, seed=3, repeat=True)
    (first, first_labels), (second, second_labels) = batches(ds, 2)  # 64 examples: 2 epochs
    assert not np.array_equal(first, second)
    # Each epoch is a permutation of the split: the same labels, in another order.
    assert sorted(first_labels) == sorted(second_labels)
    assert list(first_labels) != list(second_labels)


@pytest.mark.parametrize("start_step", [3, 4, 9])
def test_training_stream_starts_exactly_at_any_global_step(mock_cifar100, start_step):
    """Batch g of a stream started at step s is batch s + g of the whole
    stream, across epoch boundaries (64 examples = 4 batches of 16 here)."""
    def stream(start, count):
        ds = data.pipeline(mock_cifar100, "train", 16, training=True, seed=5, repeat=True,
                           start_step=start)
        return [images for images, _ in batches(ds, count)]

    whole = stream(0, 12)
    resumed = stream(start_step, 12 - start_step)
    for offset, (expected, got) in enumerate(zip(whole[start_step:], resumed)):
        np.testing.assert_array_equal(got, expected, err_msg=f"batch {start_step + offset}")


def test_missing_data_without_download_fails_fast_and_says_where(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError) as caught:
        data.dataset_builder("cifar100", data_dir=str(tmp_path), download=False)
    assert time.perf_counter() - start < 30
    message = str(caught.value)
    assert str(tmp_path) in message and "--no-download" in message
    assert "download_and_prepare" in message and "--data-dir" in message
    assert "shared/data" not in message  # a path that exists only beside this checkout


def test_unreachable_download_fails_fast(tmp_path, monkeypatch):
    # The discard port: refused.
    monkeypatch.setitem(data.DOWNLOAD_HOSTS, "cifar10", ("127.0.0.1", 9))
    with pytest.raises(data.DataNotFoundError, match="not reachable"):
        data.dataset_builder("cifar10", data_dir=str(tmp_path), download=True)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset='mnist'"):
        data.dataset_builder("mnist")


def test_validation_split_is_carved_from_training_and_disjoint(cifar10_tfds_dir):
    builder = data.dataset_builder("cifar10", cifar10_tfds_dir, download=False)
    split = data.splits(builder, validation_examples=500)
    assert (split.train, split.evaluation) == ("train[:49500]", "train[49500:]")
    assert (split.train_examples, split.evaluation_examples) == (49500, 500)

    def digests(name):
        ds = builder.as_dataset(split=name, as_supervised=True).batch(1000)
        return {hashlib.sha1(x.tobytes()).hexdigest() for b, _ in ds for x in b.numpy()}

    validation = digests(split.evaluation)
    training = digests(split.train)
    assert len(validation) == 500 and not validation & training
    assert data.splits(builder).evaluation == "test"


def test_schedule_values_at_the_boundaries():
    plan = recipe.paper_recipe("cifar100", epochs=300)
    assert plan.learning_rate == 0.5 and plan.milestone_epochs() == [150, 225]
    schedule = recipe.learning_rate_schedule(plan, steps_per_epoch=10)
    value = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))
    assert value(0) == pytest.approx(0.5)
    assert value(1499) == pytest.approx(0.5)  # last step of epoch 149
    assert value(1500) == pytest.approx(0.05)  # first step of epoch 150
    assert value(2249) == pytest.approx(0.05)
    assert value(2250) == pytest.approx(0.005)
    # The schedule scales with the number of epochs.
    assert recipe.paper_recipe("cifar10", epochs=40).milestone_epochs() == [20, 30]
    assert recipe.paper_recipe("cifar10").learning_rate == 0.1


def test_optimizer_is_nesterov_sgd_with_momentum():
    optimizer = recipe.make_optimizer(recipe.paper_recipe("cifar10"), 390)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.nesterov and optimizer.momentum == 0.9
    assert not optimizer.weight_decay  # the decay is the model's coupled L2


def test_nesterov_update_matches_torch_formulation():
    # One parameter, constant gradient g, lr 0.1, momentum 0.9: Torch's
    # b = 0.9 b + g; w -= 0.1 (g + 0.9 b).
    w = keras.Variable(np.array([1.0], "float32"))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    expected, buffer, g = 1.0, 0.0, 0.5
    for _ in range(3):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor([g]), w)])
        buffer = 0.9 * buffer + g
        expected -= 0.1 * (g + 0.9 * buffer)
    assert float(keras.ops.convert_to_numpy(w)[0]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [(dict(epochs=0), "epochs=0"), (dict(batch_size=-1), "batch_size=-1"),
     (dict(learning_rate=0.0), "learning_rate=0.0")],
)
def test_bad_recipe_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        recipe.paper_recipe("cifar10", **overrides)


def test_a_model_saved_with_the_old_step_decay_loads_compiled(tmp_path):
    """Run directories written before PiecewiseConstantDecay name
    `keras_pyramid>StepDecay` in their compile config: they load, compiled,
    with the same learning rates."""
    import json
    import zipfile

    from conftest import tiny_model

    model = tiny_model(None)
    model.compile(recipe.make_optimizer(recipe.paper_recipe("cifar10", epochs=4), 10),
                  "sparse_categorical_crossentropy")
    path = tmp_path / "new.keras"
    model.save(path)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                optimizer = config["compile_config"]["optimizer"]["config"]
                optimizer["learning_rate"] = {
                    "module": None, "class_name": "StepDecay",
                    "registered_name": "keras_pyramid>StepDecay",
                    "config": {"initial_learning_rate": 0.1, "boundaries": [20, 30],
                               "factor": 0.1}}
                content = json.dumps(config)
            target.writestr(item, content)
    loaded = keras.saving.load_model(old)
    schedule = loaded.optimizer._learning_rate
    value = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))
    assert [value(s) for s in (0, 19, 20, 29, 30)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
