"""The data layer: sources, splits, label noise, augmentation and the streams.

The data layer is `tf.data` only: no Keras backend plays a part until the
batches reach `fit`, so these tests run once, under the TensorFlow backend
(the others list them as skipped, with this reason). The programs' tests
(test_train_app.py) feed its streams to training on every backend.
"""

import hashlib
import os
import time

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers.data import CIFAR10_NAMES, write_image_folder

from keras_pyramid import data
from keras_pyramid.data import pipeline

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.data only (no Keras backend involved): runs once, under tensorflow")


def first_batches(dataset, count):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(count)]


def digest(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


# ---------------------------------------------------------------- folders


def test_a_folder_gives_its_classes_and_rgb_images_of_the_asked_size(image_folder):
    source = data.open_source(image_folder)
    assert source.spec == f"folder:{image_folder}" and source.kind == "folder"
    assert source.class_names == CIFAR10_NAMES[5:]
    assert len(source.parts["train"]) == 5 * 24 and source.image_size is None
    assert np.array_equal(np.bincount(source.parts["train"].labels), [24] * 5)
    # Grayscale, palette and RGBA files, JPEG and PNG, 32x32 and 45x29: all RGB 40x24.
    subset = data.whole(source.parts["train"])
    for regime in data.REGIMES:
        prep = data.Preprocessing((40, 24), regime)
        (images, labels), = first_batches(
            data.evaluation_stream(source, subset, prep, 120), 1)
        assert images.shape == (120, 40, 24, 3) and images.dtype == np.float32
        assert 0 <= images.min() and images.max() <= 255.5
        np.testing.assert_array_equal(labels, source.parts["train"].labels)
        (augmented, _), = first_batches(
            data.training_stream(source, subset, prep, 16, seed=0), 1)
        assert augmented.shape == (16, 40, 24, 3)
    # A grayscale file arrives with three equal channels.
    gray = [i for i, p in enumerate(source.parts["train"].paths) if i % 24 == 1][0]
    np.testing.assert_allclose(images[gray, ..., 0], images[gray, ..., 2])


def test_a_folder_with_train_and_test_trees(image_folder_with_test):
    source = data.open_source(f"folder:{image_folder_with_test}")
    assert {k: len(v) for k, v in source.parts.items()} == {"train": 48, "test": 18}
    splits = data.split_source(source)  # a real test split: no hold-out by default
    assert splits.validation is None and splits.final is splits.test
    splits = data.split_source(source, validation=0.25, seed=1)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (36, 12, 18)


@pytest.mark.parametrize("layout, message", [
    ("one_class", "at least 2; found 1: cat"),
    ("empty_class", "has no images"),
    ("other_classes", "every split needs the same class folders"),
    ("missing", "folder does not exist"),
])
def test_bad_folders_are_one_line_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "one_class":
        write_image_folder(root, [3], 2)
    elif layout == "empty_class":
        write_image_folder(root, [3, 4], 2)
        (root / "zebra").mkdir()
    elif layout == "other_classes":
        write_image_folder(root / "train", [3, 4], 2)
        write_image_folder(root / "test", [3, 5], 2)
    with pytest.raises(ValueError, match="`dataset`") as caught:
        data.open_source(f"folder:{root}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_undecodable_image_is_named_or_skipped_and_counted(tmp_path):
    root = write_image_folder(tmp_path / "data", [3, 4], 4)
    bad = os.path.join(root, "cat", "broken.jpg")
    with open(bad, "wb") as f:
        f.write(b"not a jpeg at all")
    with pytest.raises(data.BadImageError) as caught:
        data.open_source(root)
    assert bad in str(caught.value) and "`skip_bad_images`" in str(caught.value)
    source = data.open_source(root, skip_bad_images=True)
    assert source.skipped_files == 1 and len(source.parts["train"]) == 8
    assert bad not in source.parts["train"].paths


def test_hidden_class_folders_are_skipped_and_reported(tmp_path, capsys):
    """A dot-folder is no class (Keras' rule), but its images are named and
    counted: a class folder `..evil` once dropped 30 images without a word."""
    root = write_image_folder(tmp_path / "data", [3, 4], 2, odd=False)
    write_image_folder(tmp_path / "evil", [5], 3, odd=False)
    os.rename(tmp_path / "evil" / "dog", os.path.join(root, "..evil"))
    os.makedirs(os.path.join(root, ".ipynb_checkpoints"))
    source = data.open_source(root)
    assert source.class_names == ("cat", "deer") and len(source.parts["train"]) == 4
    assert source.skipped_folders == (os.path.join(root, "..evil"),
                                      os.path.join(root, ".ipynb_checkpoints"))
    printed = capsys.readouterr().out
    assert printed == (f"Skipped 2 hidden folders (3 images; a name starting with '.' is not a "
                       f"class): {root}/..evil, {root}/.ipynb_checkpoints\n")


def test_a_folder_without_hidden_folders_reports_none(tmp_path, capsys):
    source = data.open_source(write_image_folder(tmp_path / "data", [3, 4], 1, odd=False))
    assert source.skipped_folders == () and capsys.readouterr().out == ""


# ---------------------------------------------------------------- tfds


@pytest.mark.parametrize("spec, size, classes", [
    ("svhn", (32, 32), 10),
    ("tfds:mnist", (28, 28), 10),  # grayscale: arrives as RGB
])
def test_tfds_datasets_by_name_with_mock_data(spec, size, classes):
    with tfds.testing.mock_data(num_examples=40):
        source = data.open_source(spec)
        assert source.kind == "tfds" and source.image_size == size
        assert source.num_classes == classes and len(source.parts["train"]) == 40
        splits = data.split_source(source)
        assert splits.final is splits.test and splits.validation is None
        prep = data.Preprocessing(size, data.default_regime(size))
        assert prep.augment == "cifar"
        (images, labels), = first_batches(
            data.training_stream(source, splits.train, prep, 8, seed=0), 1)
        assert images.shape == (8, *size, 3) and labels.max() < classes


def test_unknown_or_unfit_tfds_datasets_are_one_line_errors():
    with pytest.raises(ValueError, match="is not a tfds dataset") as caught:
        data.open_source("tfds:no_such_dataset_here")
    assert "\n" not in str(caught.value)
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match="not an image classification dataset"):
            data.open_source("tfds:imdb_reviews")  # text
    with pytest.raises(ValueError, match="Received: dataset='mnist'"):
        data.open_source("mnist")  # neither a short name, tfds:NAME nor a folder


def test_missing_data_without_download_fails_fast_and_says_where(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError) as caught:
        data.open_source("cifar100", data_dir=str(tmp_path), download=False)
    assert time.perf_counter() - start < 30
    message = str(caught.value)
    # The library names its arguments; the programs turn them into their flags.
    assert str(tmp_path) in message and "(`download=False`)" in message
    assert "download_and_prepare" in message and "pass `data_dir`" in message


def test_unreachable_download_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setitem(data.sources.DOWNLOAD_HOSTS, "cifar10", ("127.0.0.1", 9))  # refused
    with pytest.raises(data.DataNotFoundError, match="not reachable"):
        data.open_source("cifar10", data_dir=str(tmp_path), download=True)


# ---------------------------------------------------------------- splits and noise


def test_the_hold_out_is_stratified_disjoint_and_seeded(cifar10_sample_tfds_dir):
    source = data.open_source("cifar10", cifar10_sample_tfds_dir)
    splits = data.split_source(source, validation=0.1, seed=3)
    train, held = splits.train, splits.validation
    assert (len(train), len(held), len(splits.test)) == (1800, 200, 500)
    assert not set(train.indices) & set(held.indices)
    assert len(set(train.indices) | set(held.indices)) == 2000
    # Each class gives its share: 10% of its count, within one example.
    per_class = np.bincount(source.parts["train"].labels, minlength=10)
    assert np.all(np.abs(np.bincount(held.labels, minlength=10) - per_class / 10) < 1)
    again = data.split_source(source, validation=200, seed=3)  # a count: the same hold-out
    np.testing.assert_array_equal(again.validation.indices, held.indices)
    other = data.split_source(source, validation=0.1, seed=4)
    assert set(other.validation.indices) != set(held.indices)
    # The images behind the indices are disjoint too.
    prep = data.Preprocessing((32, 32), "none")
    seen = {digest(x) for x in first_batches(
        data.evaluation_stream(source, held, prep, 200), 1)[0][0]}
    trained = {digest(x) for batch in data.evaluation_stream(source, train, prep, 600)
               for x in np.asarray(batch[0])}
    assert len(seen) == 200 and not seen & trained


@pytest.mark.parametrize("validation, message", [(1.0, "in [0, 1)"), (-3, "in [0, 2000)"),
                                                 ("half", "a fraction in [0, 1)")])
def test_bad_hold_outs(cifar10_sample_tfds_dir, validation, message):
    source = data.open_source("cifar10", cifar10_sample_tfds_dir)
    with pytest.raises(ValueError, match="`validation`") as caught:
        data.split_source(source, validation=validation)
    assert message in str(caught.value)


def test_label_noise_replaces_by_another_class_at_the_rate_and_is_fixed():
    labels = np.repeat(np.arange(10), 2000)
    part = data.Part("train", labels, paths=("x",) * len(labels))
    subset = data.whole(part)
    noisy, changed = data.with_label_noise(subset, 0.4, 10, seed=7)
    assert abs(changed.mean() - 0.4) < 0.015  # 20,000 draws: 4.6 standard errors
    assert np.all(noisy.labels[changed] != labels[changed])
    np.testing.assert_array_equal(noisy.labels[~changed], labels[~changed])
    # The new class is uniform over the 9 others: each about 1/9 of the changes.
    shifts = (noisy.labels[changed] - labels[changed]) % 10
    frequencies = np.bincount(shifts, minlength=10)[1:] / changed.sum()
    assert np.all(np.abs(frequencies - 1 / 9) < 0.02)
    again, _ = data.with_label_noise(subset, 0.4, 10, seed=7)
    np.testing.assert_array_equal(again.labels, noisy.labels)  # fixed for the run
    with pytest.raises(ValueError, match="label_noise=1.0"):
        data.with_label_noise(subset, 1.0, 10, seed=7)


# ---------------------------------------------------------------- streams


@pytest.mark.parametrize("reading", ["memory", "sequential", "files"])
def test_the_training_stream_starts_exactly_at_any_global_step(cifar10_sample_tfds_dir,
                                                               image_folder, monkeypatch,
                                                               reading):
    """Batch g of a stream started at step s is batch s + g of the whole
    stream, across epoch boundaries, whatever way the images are read; each
    epoch is a permutation (or a shuffle) of the training subset."""
    if reading == "files":
        source = data.open_source(image_folder)
        splits = data.split_source(source, validation=0.2, seed=0)
    else:
        if reading == "sequential":
            monkeypatch.setattr(pipeline, "MEMORY_LIMIT_BYTES", 0)
        source = data.open_source("cifar10", cifar10_sample_tfds_dir)
        splits = data.split_source(source, validation=1904, seed=0)  # 96 left
    assert data.reading(source, splits.train.part) == reading
    prep = data.Preprocessing((32, 32), "cifar")
    size = len(splits.train)  # 96 examples: 6 batches of 16 per epoch

    def stream(start, count):
        return first_batches(data.training_stream(source, splits.train, prep, 16, seed=5,
                                                  start_step=start), count)

    whole = stream(0, 14)
    for start in (4, 7):
        for offset, (expected, got) in enumerate(zip(whole[start:], stream(start, 3))):
            np.testing.assert_array_equal(got[0], expected[0], err_msg=f"{start}+{offset}")
            np.testing.assert_array_equal(got[1], expected[1])
    epoch = [label for _, labels in whole[:size // 16] for label in labels]
    assert sorted(epoch) == sorted(splits.train.labels)
    second = [label for _, labels in whole[size // 16:2 * size // 16] for label in labels]
    assert epoch != second and sorted(second) == sorted(epoch)


def test_cifar_augmentation_is_random_crop_and_flip_of_the_padded_image():
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(0).integers(1, 256, (32, 32, 3)), tf.uint8)
    padded = np.pad(image.numpy(), ((4, 4), (4, 4), (0, 0)))
    outputs = [data.cifar_augment(image, tf.constant([7, i], tf.int64)).numpy() for i in range(40)]
    assert len({digest(o) for o in outputs}) > 10
    flipped = 0
    for out in outputs:
        windows = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (0, 1)
                   if np.array_equal(out, padded[dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                                     else padded[dy:dy + 32, dx:dx + 32])]
        assert windows, "output is not a (flipped) 32x32 window of the padded image"
        flipped += windows[0][2]
    assert 5 < flipped < 35


def test_imagenet_regime_crops_and_flips_in_training_and_centre_crops_in_evaluation():
    import tensorflow as tf

    # A horizontal ramp: a crop's mean tells where it came from.
    ramp = np.tile(np.linspace(0, 255, 400)[None, :, None], (300, 1, 3)).astype("uint8")
    prep = data.Preprocessing((64, 64), "imagenet")
    centre = prep.evaluation(tf.constant(ramp)).numpy()
    assert centre.shape == (64, 64, 3)
    # Resized so that 64 is 87.5% of the short side (300 -> 73 x 97), centre 64 columns.
    assert abs(centre.mean() - 127.5) < 2 and centre[:, 0, 0].std() < 1e-3
    crops = [prep.training(tf.constant(ramp), tf.constant([1, i], tf.int64)).numpy()
             for i in range(30)]
    means = [c.mean() for c in crops]
    assert np.std(means) > 10  # crops from different places and scales
    flips = sum(c[0, 0, 0] > c[0, -1, 0] for c in crops)  # the ramp reversed
    assert 5 < flips < 25


def test_statistics_are_computed_from_the_training_images(image_folder):
    source = data.open_source(image_folder)
    splits = data.split_source(source, validation=0.2, seed=0)
    prep = data.Preprocessing((32, 32), "cifar")
    mean, std, count = data.channel_statistics(source, splits.train, prep, seed=0)
    images = np.concatenate([b[0] for b in first_batches(
        data.evaluation_stream(source, splits.train, prep, 200), 1)])
    assert count == len(splits.train) == 96
    pixels = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-6)
    sampled = data.channel_statistics(source, splits.train, prep, seed=0, limit=40)
    assert sampled[2] == 40 and np.allclose(sampled[0], mean, atol=25)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="NumPy only (no Keras backend involved): runs once, under tensorflow")
def test_a_stratified_subset_keeps_the_class_balance_and_its_seed():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    subset = data.Subset(None, np.arange(100), labels, "train")
    smaller = data.stratified_subset(subset, 20, seed=3)
    assert len(smaller) == 20
    assert np.bincount(smaller.labels, minlength=4).tolist() == [10, 6, 3, 1]
    assert np.array_equal(smaller.labels, labels[smaller.indices])
    assert np.array_equal(data.stratified_subset(subset, 20, seed=3).indices, smaller.indices)
    assert not np.array_equal(data.stratified_subset(subset, 20, seed=4).indices,
                              smaller.indices)
    assert data.stratified_subset(subset, None, seed=3) is subset
    assert data.stratified_subset(subset, 500, seed=3) is subset
