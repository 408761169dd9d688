"""Splits, noisy labels, and the `tf.data` streams that feed `fit` on every backend.

    splits = split_source(source, validation=0.1, seed=0)        # stratified hold-out
    train = training_stream(source, splits.train, prep, 128, seed=0, start_step=step)
    held_out = evaluation_stream(source, splits.validation, prep, 256)

Images are float32 0-255 (normalization is inside the model), labels int32.

The training stream is a function of the seed alone, whatever the source.
Data epoch e visits the training examples in an order drawn with the
stateless seed (seed, e), and the example at position p of the concatenated
epochs is augmented with seed (seed, p). Batch g is therefore examples
g * batch_size ... of that sequence, and `start_step=g` starts there: a run
resumed at global step g sees the batches it would have seen uninterrupted.
How images are read depends on the source (`reading`):

- "memory": a tfds split with one image size that fits in `MEMORY_LIMIT_BYTES`
  decoded (CIFAR's 50,000 images are 150 MB) is decoded once and kept; an
  epoch's order is a permutation, and a resume starts at any step for free.
- "files": a folder is read from disk every epoch, decoded in parallel in the
  permuted order: the same exactness at any size, 100,000 JPEGs included.
- "sequential": a larger tfds split (or one whose images vary in size) is
  streamed from its record files through a shuffle buffer seeded with
  (seed, e); a resume at step g re-reads, and discards, the examples of the
  epoch before g (exact at any step; costs up to one epoch of reading).
"""

import dataclasses

import numpy as np

from keras_pyramid.data.sources import Part

MEMORY_LIMIT_BYTES = 2 * 2**30
SHUFFLE_BUFFER = 10_000  # the sequential reading's shuffle window
DEFAULT_VALIDATION_FRACTION = 0.1
STATISTICS_IMAGES = 10_000  # a seeded sample: means settle long before
# Streams of the run seed for the stratified hold-out and the label noise,
# so that neither draw depends on the other.
HOLDOUT_STREAM, NOISE_STREAM, STATISTICS_STREAM, SUBSET_STREAM = 0x5EED, 0x0015E, 0x57A7, 0x5AB5


@dataclasses.dataclass(frozen=True)
class Subset:
    """Examples `indices` of a source's split `part`, with their `labels`
    (possibly noisy: the labels training sees)."""

    part: Part
    indices: np.ndarray
    labels: np.ndarray
    description: str

    def __len__(self):
        return len(self.indices)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training data, the per-epoch `validation` data (or None) and the `test`
    data touched only by the final evaluation (or None, then the final
    evaluation is the validation data's)."""

    train: Subset
    validation: Subset = None
    test: Subset = None

    @property
    def final(self):
        return self.test if self.test is not None else self.validation


def whole(part, description=None):
    return Subset(part, np.arange(len(part)), part.labels, description or part.name)


def split_source(source, validation=None, seed=0):
    """The source's splits, with a stratified hold-out where asked.

    `validation`: None (the default rule: the source's own validation split
    if it has one; else a hold-out of 10% of the training split when the
    source has no test split; else none), a fraction in [0, 1), or a count
    of examples >= 1. The hold-out takes, from each class, its share of the
    count (largest remainders), drawn with (seed, HOLDOUT_STREAM): it never
    overlaps training and repeats for a seed.
    """
    train, parts = source.parts["train"], source.parts
    test = whole(parts["test"]) if "test" in parts else None
    if validation is None:
        if "validation" in parts:
            return Splits(whole(train), whole(parts["validation"]), test)
        validation = DEFAULT_VALIDATION_FRACTION if test is None else 0
    count = _holdout_count(validation, len(train))
    if count == 0:
        if test is None and "validation" not in parts:
            raise ValueError(f"`validation` {validation!r} leaves no held-out data: "
                             f"{source.spec} has no test split to evaluate on")
        held = whole(parts["validation"]) if "validation" in parts else None
        return Splits(whole(train), held, test)
    held_out = stratified_holdout(train.labels, count, seed)
    kept = np.flatnonzero(~held_out)
    chosen = np.flatnonzero(held_out)
    share = f"{count} of {len(train)}"
    return Splits(Subset(train, kept, train.labels[kept], f"train minus hold-out ({share})"),
                  Subset(train, chosen, train.labels[chosen], f"hold-out of train ({share})"),
                  test)


def _holdout_count(validation, total):
    if isinstance(validation, bool) or not isinstance(validation, (int, float)):
        raise ValueError(f"`validation` must be a fraction in [0, 1) or a count >= 1. "
                         f"Received: validation={validation!r}")
    if isinstance(validation, float):
        if not 0 <= validation < 1:
            raise ValueError(f"`validation` as a fraction must be in [0, 1). "
                             f"Received: validation={validation!r}")
        return int(round(validation * total))
    if not 0 <= validation < total:
        raise ValueError(f"`validation` as a count must be in [0, {total}) (the training "
                         f"split's size). Received: validation={validation!r}")
    return validation


def stratified_holdout(labels, count, seed, stream=HOLDOUT_STREAM):
    """A boolean mask of `count` examples, each class contributing its share
    `count * n_c / n` (rounded by largest remainders), chosen at random with
    the generator (seed, stream)."""
    labels = np.asarray(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[:count - quota.sum()]] += 1
    rng = np.random.default_rng([seed, stream])
    mask = np.zeros(len(labels), bool)
    for label, take in zip(classes, quota):
        members = np.flatnonzero(labels == label)
        mask[rng.permutation(members)[:take]] = True
    return mask


def stratified_subset(subset, count, seed):
    """`count` examples of `subset`, each class keeping its share (a smaller
    training set, the same class balance), drawn with (seed, SUBSET_STREAM);
    `subset` itself when `count` is None or not smaller."""
    if count is None or count >= len(subset):
        return subset
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`train_examples` must be an int >= 1. Received: "
                         f"train_examples={count!r}")
    kept = np.flatnonzero(stratified_holdout(subset.labels, count, seed, SUBSET_STREAM))
    return Subset(subset.part, subset.indices[kept], subset.labels[kept],
                  f"{count} of {subset.description}, stratified")


def with_label_noise(subset, rate, num_classes, seed):
    """`subset` whose labels are each replaced, with probability `rate`, by
    a class drawn uniformly from the OTHER classes; drawn once with
    (seed, NOISE_STREAM), so fixed for the run. Returns (subset, changed)."""
    if not 0 <= rate < 1:
        raise ValueError(f"`label_noise` must be in [0, 1). Received: label_noise={rate!r}")
    rng = np.random.default_rng([seed, NOISE_STREAM])
    changed = rng.random(len(subset)) < rate
    shift = rng.integers(1, num_classes, len(subset))  # 1..K-1: never the same class
    noisy = np.where(changed, (subset.labels + shift) % num_classes, subset.labels)
    return dataclasses.replace(subset, labels=noisy), changed


def reading(source, part):
    """"memory", "files" or "sequential" (see the module docstring)."""
    if part.paths is not None:
        return "files"
    if source.image_size is not None:
        height, width = source.image_size
        if len(part) * height * width * 3 <= MEMORY_LIMIT_BYTES:
            return "memory"
    return "sequential"


def _tf():
    import tensorflow as tf

    return tf


def _tfds_images(source, part):
    """The tfds split's images, in order."""
    examples = source.builder.as_dataset(split=part.tfds_split, shuffle_files=False)
    return examples.map(lambda example: example[source.image_feature])


def _read_file(path):
    tf = _tf()
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _decoded_part(source, part):
    """A dataset of one element: the whole split's images, decoded once and cached."""
    return _tfds_images(source, part).batch(len(part)).cache()


def training_stream(source, subset, preprocessing, batch_size, seed=0,
                    data_format="channels_last", start_step=0):
    """Repeated, augmented batches of exactly `batch_size` from global step
    `start_step` on (per-batch gates always see a full batch; compiled steps
    keep one shape)."""
    tf = _tf()
    if start_step < 0:
        raise ValueError(f"`start_step` must be >= 0. Received: start_step={start_step!r}")
    count = len(subset)
    if count < batch_size:
        raise ValueError(f"`batch_size` {batch_size} exceeds the {count} training examples")
    first_epoch, skipped = divmod(start_step * batch_size, count)
    run_seed = tf.constant(seed, tf.int64)
    labels = tf.constant(subset.labels, tf.int32)
    epochs = tf.data.Dataset.range(first_epoch, 2**62)
    how = reading(source, subset.part)

    def start_of(epoch):  # only the first epoch of a resumed stream starts part-way
        return tf.where(epoch == first_epoch, tf.constant(skipped, tf.int64), 0)

    def positions(epoch, size):
        return epoch * count + count - size + tf.range(size)

    if how == "sequential":
        wanted = np.zeros(len(subset.part), bool)
        wanted[subset.indices] = True
        rank = np.cumsum(wanted) - 1  # part index -> subset index
        table = tf.constant(np.where(wanted, rank, -1), tf.int64)
        images = _tfds_images(source, subset.part).enumerate()

        def one_epoch(epoch):
            kept = images.map(lambda i, image: (tf.gather(table, i), image)).filter(
                lambda k, image: k >= 0)
            kept = kept.shuffle(min(SHUFFLE_BUFFER, count), seed=seed * 100_003 + epoch,
                                reshuffle_each_iteration=False)
            kept = kept.skip(start_of(epoch))
            index = tf.data.Dataset.range(start_of(epoch), count).map(
                lambda j: epoch * count + j)
            return tf.data.Dataset.zip(index, kept)

        stream = epochs.flat_map(one_epoch).map(
            lambda p, example: (p, example[1], tf.gather(labels, example[0])))
    else:
        def order(epoch):
            permutation = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([run_seed, epoch]))
            return permutation[start_of(epoch):]

        if how == "memory":
            where = tf.constant(subset.indices, tf.int64)

            def one_epoch(epoch, decoded):
                chosen = order(epoch)
                return tf.data.Dataset.from_tensor_slices((
                    positions(epoch, tf.size(chosen, tf.int64)),
                    tf.gather(decoded, tf.gather(where, chosen)),
                    tf.gather(labels, chosen)))

            stream = tf.data.Dataset.zip(epochs, _decoded_part(source, subset.part).repeat())
            stream = stream.flat_map(one_epoch)
        else:
            paths = tf.constant(np.asarray(subset.part.paths)[subset.indices])

            def one_epoch(epoch):
                chosen = order(epoch)
                return tf.data.Dataset.from_tensor_slices((
                    positions(epoch, tf.size(chosen, tf.int64)), chosen))

            stream = epochs.flat_map(one_epoch).map(
                lambda p, k: (p, _read_file(tf.gather(paths, k)), tf.gather(labels, k)),
                num_parallel_calls=tf.data.AUTOTUNE)

    def augmented(position, image, label):
        return preprocessing.training(image, tf.stack([run_seed, position])), label

    stream = stream.map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    return _batched(stream, batch_size, True, data_format)


def evaluation_stream(source, subset, preprocessing, batch_size,
                      data_format="channels_last", full_batches=False, limit=None):
    """The subset in order, unaugmented; the last batch may be smaller unless
    `full_batches` (several JAX processes need a known batch size: the
    remainder is then left out). `limit`: the first N examples only."""
    images = ordered_images(source, subset)
    labels = _tf().data.Dataset.from_tensor_slices(subset.labels.astype("int32"))
    stream = _tf().data.Dataset.zip(images, labels)
    if limit is not None:
        stream = stream.take(limit)
    stream = stream.map(lambda image, label: (preprocessing.evaluation(image), label),
                        num_parallel_calls=_tf().data.AUTOTUNE)
    return _batched(stream, batch_size, full_batches, data_format)


def ordered_images(source, subset):
    """The subset's raw images (uint8, any size) in order."""
    tf = _tf()
    how = reading(source, subset.part)
    if how == "files":
        paths = np.asarray(subset.part.paths)[subset.indices]
        return tf.data.Dataset.from_tensor_slices(paths).map(
            _read_file, num_parallel_calls=tf.data.AUTOTUNE)
    if how == "memory" and len(subset) < len(subset.part):
        where = tf.constant(subset.indices, tf.int64)
        return _decoded_part(source, subset.part).flat_map(
            lambda decoded: tf.data.Dataset.from_tensor_slices(tf.gather(decoded, where)))
    images = _tfds_images(source, subset.part)
    if len(subset) == len(subset.part):
        return images
    wanted = np.zeros(len(subset.part), bool)
    wanted[subset.indices] = True
    mask = tf.constant(wanted)
    return images.enumerate().filter(lambda i, image: tf.gather(mask, i)).map(
        lambda i, image: image)


def _batched(stream, batch_size, full_batches, data_format):
    tf = _tf()

    def to_model_input(image, label):
        if data_format == "channels_first":
            image = tf.transpose(image, (2, 0, 1))
        return image, tf.cast(label, tf.int32)

    stream = stream.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    return stream.batch(batch_size, drop_remainder=full_batches,
                        num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def channel_statistics(source, subset, preprocessing, seed=0, limit=STATISTICS_IMAGES):
    """Per-channel (mean, std) on the 0-255 scale of the training images as
    the model sees them at evaluation (resized or centre-cropped to its
    size): over all of them, or a seeded sample of `limit`. Returns
    (mean, std, images used)."""
    tf = _tf()
    if len(subset) > limit:
        rng = np.random.default_rng([seed, STATISTICS_STREAM])
        chosen = np.sort(rng.choice(len(subset), limit, replace=False))
        subset = dataclasses.replace(subset, indices=subset.indices[chosen],
                                     labels=subset.labels[chosen])
    images = ordered_images(source, subset).map(preprocessing.evaluation,
                                                num_parallel_calls=tf.data.AUTOTUNE)
    # Not keras.layers.Normalization.adapt: on these batches it agrees only to
    # float32 rounding (about 1e-7 relative; 1e-3 on a NumPy array), and these
    # float64 sums, recorded in data.json, are exact to 1e-9.
    total = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    for batch in images.batch(256).as_numpy_iterator():
        values = batch.reshape(-1, 3).astype(np.float64)
        total += values.sum(0)
        squares += (values**2).sum(0)
        pixels += len(values)
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std], len(subset)
