"""CIFAR-10/100 and SVHN through tensorflow-datasets, as `tf.data` pipelines for `fit`.

The pipelines feed raw 0-255 pixels (as float32): normalization lives inside
the model (`include_preprocessing=True`), so a served model takes raw images.
`tf.data` feeds `model.fit` on all three Keras backends.

Training augmentation (SPEC section 4): a random 32x32 crop of the image
zero-padded by 4 pixels, and a random horizontal flip. Evaluation: none.
"""

import dataclasses
import os
import socket

# Our dataset names -> tfds names (SVHN's 32x32 digits are tfds' svhn_cropped).
TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}
DATASETS = tuple(TFDS_NAMES)
# Where tfds downloads each from: probed before a download so that a machine
# without network fails in seconds instead of hanging in tfds for minutes.
DOWNLOAD_HOSTS = {"cifar10": ("www.cs.toronto.edu", 443),
                  "cifar100": ("www.cs.toronto.edu", 443),
                  "svhn": ("ufldl.stanford.edu", 80)}
PAD = 4


class DataNotFoundError(FileNotFoundError):
    """The dataset is not prepared where we looked and may not be downloaded."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """tfds split names, sizes and class count of one training setup."""

    train: str
    evaluation: str
    train_examples: int
    evaluation_examples: int
    num_classes: int
    class_names: tuple


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def dataset_builder(dataset, data_dir=None, download=False):
    """The tfds builder of a prepared dataset, or a DataNotFoundError that says
    where it was looked for and how to provide it.

    `data_dir=None` is tfds' default (which honours `TFDS_DATA_DIR`).
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}. Received: dataset={dataset!r}")
    tfds = _tfds()
    name = TFDS_NAMES[dataset]
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    looked_in = os.path.dirname(os.path.dirname(str(builder.data_dir)))
    howto = (
        f"Provide it with `--data-dir DIR` (or TFDS_DATA_DIR) pointing at a tfds data dir "
        f"that holds {name}/: prepare one on a machine with network "
        f"(`python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"`), copy "
        f"DIR/{name}/ to this machine and pass --data-dir with the folder that holds it."
    )
    if not download:
        raise DataNotFoundError(
            f"{dataset} is not prepared in {looked_in} and downloading is off "
            f"(--no-download). {howto}"
        )
    host = DOWNLOAD_HOSTS[dataset]
    if not _reachable(*host):
        raise DataNotFoundError(
            f"{dataset} is not prepared in {looked_in} and {host[0]} is not "
            f"reachable, so it cannot be downloaded. {howto}"
        )
    builder.download_and_prepare()
    return builder


def _reachable(host, port, timeout=3.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def splits(builder, validation_examples=0):
    """Training and evaluation splits; with `validation_examples > 0` the
    evaluation split is the LAST `validation_examples` of the training set and
    training uses the rest (disjoint), so the test set stays untouched."""
    info = builder.info
    total = info.splits["train"].num_examples
    label = info.features["label"]
    if validation_examples:
        if not 0 < validation_examples < total:
            raise ValueError(
                f"`validation_examples` must be in (0, {total}). "
                f"Received: validation_examples={validation_examples!r}"
            )
        kept = total - validation_examples
        return Splits(
            f"train[:{kept}]",
            f"train[{kept}:]",
            kept,
            validation_examples,
            label.num_classes,
            tuple(label.names),
        )
    return Splits(
        "train",
        "test",
        total,
        info.splits["test"].num_examples,
        label.num_classes,
        tuple(label.names),
    )


def augment(image, seed):
    """Random crop of the 4-pixel zero-padded image, and a random flip.

    `seed` is a shape-(2,) int tensor: stateless ops make the augmentation of
    an example a function of (run seed, epoch, position), so runs repeat.
    """
    import tensorflow as tf

    height, width = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, (height, width, 3), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def pipeline(
    builder,
    split,
    batch_size,
    training,
    seed=0,
    data_format="channels_last",
    repeat=False,
    full_batches=None,
    start_step=0,
):
    """A batched `tf.data.Dataset` of (float32 0-255 images, int32 labels).

    Training: shuffled each epoch, augmented, batches of exactly `batch_size`
    (per-batch gates then always see a full batch, and compiled steps keep
    one shape). Evaluation: in order, unaugmented, last batch may be smaller,
    unless `full_batches=True` (several JAX processes need a known batch
    size: the remainder is then left out).

    The training stream is a function of `seed` alone. Data epoch `e` is a
    uniformly random permutation of the split drawn with the stateless seed
    `(seed, e)`, and the example at position `i` of it is augmented with seed
    `(seed, e * N + i)`, N the split's size. Batch `g` of the (repeated)
    stream is therefore examples `g * batch_size ...` of the concatenated
    epochs, and `start_step=g` starts the stream there exactly: a run resumed
    at global step g sees the batches it would have seen had it never stopped.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    if training:
        ds = _training_stream(ds, batch_size, seed, repeat, start_step)
    elif repeat:
        ds = ds.repeat()
    if start_step and not training:
        raise ValueError(f"`start_step` is for training pipelines. Received: {start_step!r}")

    def to_model_input(image, label):
        image = tf.cast(image, tf.float32)
        if data_format == "channels_first":
            image = tf.transpose(image, (2, 0, 1))
        return image, tf.cast(label, tf.int32)

    ds = ds.map(to_model_input, num_parallel_calls=autotune)
    full_batches = training if full_batches is None else full_batches
    ds = ds.batch(batch_size, drop_remainder=full_batches, num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def _training_stream(examples, batch_size, seed, repeat, start_step):
    """Permuted, augmented (image, label) examples from global step `start_step` on.

    The split is decoded once and kept in memory (150 MB for CIFAR's 50,000
    images): a permutation by stateless seed then needs no shuffle buffer,
    and an epoch can start at any position without reading what precedes it.
    """
    import tensorflow as tf

    if start_step < 0:
        raise ValueError(f"`start_step` must be >= 0. Received: {start_step!r}")
    count = int(examples.cardinality())
    if count <= 0:
        raise ValueError(f"the training split must have a known, non-zero size; got {count}")
    first_epoch, skipped = divmod(start_step * batch_size, count)
    if not repeat and first_epoch:
        raise ValueError(
            f"`start_step` {start_step} is past the single epoch of {count} examples; "
            "pass repeat=True to resume a repeated stream"
        )
    last_epoch = first_epoch + 1 if not repeat else 2**62
    whole_split = examples.batch(count).cache().repeat()
    epochs = tf.data.Dataset.range(first_epoch, last_epoch)
    run_seed = tf.constant(seed, tf.int64)

    def one_epoch(epoch, split):
        images, labels = split
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([run_seed, epoch]))
        # Only the first epoch of a resumed stream starts part-way through.
        order = order[tf.where(epoch == first_epoch, tf.constant(skipped, tf.int64), 0):]
        positions = epoch * count + count - tf.size(order, tf.int64) + tf.range(
            tf.size(order, tf.int64))
        return tf.data.Dataset.from_tensor_slices(
            (positions, tf.gather(images, order), tf.gather(labels, order)))

    def augmented(position, image, label):
        return augment(image, tf.stack([run_seed, position])), label

    stream = tf.data.Dataset.zip(epochs, whole_split).flat_map(one_epoch)
    return stream.map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
