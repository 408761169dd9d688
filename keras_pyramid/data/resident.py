"""Training without TensorFlow: arrays kept on the device, augmented inside the step.

For JAX and PyTorch users, and for GPU machines that have no TensorFlow: the
dataset is converted once to a backend tensor (on the accelerator, where
there is one) and batches are gathered from it on the device; the CIFAR
augmentation is a layer in front of the network, so it runs inside the
compiled training step, drawn from a `keras.random.SeedGenerator` whose
state is checkpointed with the gates' (`fit.random_state`).

    train = ResidentData(x_train, y_train, batch_size=128, seed=0)
    test = ResidentData(x_test, y_test, batch_size=128)
    trainer = with_augmentation(model, seed=0)   # save `model`, the bare network
    trainer.compile(...)
    fit.fit(trainer, train.training_stream, test.evaluation_stream(),
                 steps_per_epoch=train.steps_per_epoch,
                 evaluation_steps=test.evaluation_steps, ...)

Order: epoch e's permutation is NumPy's `default_rng([seed, e]).permutation`,
so the stream from any global step is known without replaying the ones
before it: a resumed run continues with the very next batch (exact at any
step). The augmentation is the papers' (docs/architecture.md section 4), the one
`augment.cifar_augment` applies in tf.data: pad 4 zero pixels, crop back to the
original size at an offset uniform on {0, ..., 8} in each direction, flip
left-right with probability 1/2, independently per example.
"""

import math
import zipfile

import keras
import numpy as np
from keras import ops

from keras_pyramid.data.augment import PAD
from keras_pyramid.utils import checks


def crop_and_flip(images, rows, columns, flips, padding=PAD, data_format="channels_last"):
    """The augmented batch for given draws, exactly.

    With `x` zero-padded by `padding` on each side, output pixel (i, j) of
    example b is `x[b, rows[b] + i, c(b, j)]` with `c = columns[b] + j`, or
    `columns[b] + (W - 1 - j)` when `flips[b]`: two one-hot selection
    matrices `R` (B, H, H + 2p) and `C` (B, W, W + 2p), and `y = R x C^T` per
    channel. One-hot products select, so the result is exact in any float
    dtype, and the gather is two small matmuls on the device.
    """
    channels_last = data_format == "channels_last"
    height, width = (images.shape[1], images.shape[2]) if channels_last else \
        (images.shape[2], images.shape[3])
    pad = [(0, 0), (padding, padding), (padding, padding), (0, 0)] if channels_last else \
        [(0, 0), (0, 0), (padding, padding), (padding, padding)]
    padded = ops.pad(images, pad)
    row_index = ops.expand_dims(rows, 1) + ops.arange(height, dtype=rows.dtype)
    ascending = ops.arange(width, dtype=columns.dtype)
    column_offsets = ops.where(ops.expand_dims(ops.cast(flips, "bool"), 1),
                               width - 1 - ascending, ascending)
    column_index = ops.expand_dims(columns, 1) + column_offsets
    select_rows = ops.one_hot(row_index, height + 2 * padding, dtype=images.dtype)
    select_columns = ops.one_hot(column_index, width + 2 * padding, dtype=images.dtype)
    if channels_last:
        return ops.einsum("bip,bpqc,bjq->bijc", select_rows, padded, select_columns)
    return ops.einsum("bip,bcpq,bjq->bcij", select_rows, padded, select_columns)


@keras.saving.register_keras_serializable(package="keras_pyramid")
class CifarAugmentation(keras.layers.Layer):
    """Pad-crop-flip on the device, in training only (see `crop_and_flip`).

    Per example: row and column offsets uniform on {0, ..., 2 * padding},
    a left-right flip with probability 1/2, all independent. The identity
    when not training.

    Args:
        padding: int >= 0, the zero padding before the crop (4 in the papers).
        seed: int or None, the seed of the layer's SeedGenerator.
        data_format: "channels_last" or "channels_first"; None is Keras'.
    """

    def __init__(self, padding=PAD, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        checks.check_int("padding", padding, minimum=0)
        self.padding = padding
        self.seed = seed
        self.data_format = data_format or keras.config.image_data_format()
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.padding == 0:
            return inputs
        # One offset and one flip PER EXAMPLE, as the papers augment:
        # keras.layers.RandomCrop draws one offset for the whole batch.
        batch = ops.shape(inputs)[0]
        span = 2 * self.padding + 1
        rows = keras.random.randint((batch,), 0, span, seed=self.seed_generator)
        columns = keras.random.randint((batch,), 0, span, seed=self.seed_generator)
        flips = keras.random.randint((batch,), 0, 2, seed=self.seed_generator)
        return crop_and_flip(inputs, rows, columns, flips, self.padding, self.data_format)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "seed": self.seed,
                "data_format": self.data_format}


def with_augmentation(model, seed=None, padding=PAD):
    """`model` behind a `CifarAugmentation`: the model to train (its weights
    are `model`'s); save `model` itself for inference."""
    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="image")
    augmented = CifarAugmentation(padding, seed=seed, name="augmentation")(inputs)
    return keras.Model(inputs, model(augmented), name=f"{model.name}_augmented")


class ResidentData:
    """One split as two backend tensors, served in batches gathered on the device.

    `images`: uint8 or float (N, H, W, C) arrays (channels first with
    `data_format="channels_first"`, transposed once here); `labels`: (N,) or
    (N, 1) ints. Batches are float32 pixels in 0-255 (the models normalize
    inside) and int32 labels.
    """

    def __init__(self, images, labels, batch_size, seed=0, data_format="channels_last"):
        images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
        if len(images) != len(labels):
            raise ValueError(f"`images` and `labels` must have as many rows. Received: "
                             f"{len(images)} images and {len(labels)} labels")
        checks.check_int("batch_size", batch_size, minimum=1, maximum=len(images))
        if data_format == "channels_first":
            images = images.transpose(0, 3, 1, 2)
        self.count = len(images)
        self.batch_size = batch_size
        self.seed = seed
        # Kept in their own dtype (uint8 is a quarter of float32's memory).
        self.images = ops.convert_to_tensor(images)
        self.labels = ops.convert_to_tensor(labels.astype("int32"))

    @property
    def steps_per_epoch(self):
        """Full batches only: every training step sees `batch_size` examples."""
        return self.count // self.batch_size

    def order(self, epoch):
        return np.random.default_rng([self.seed, epoch]).permutation(self.count)

    def _batch(self, indices):
        indices = ops.convert_to_tensor(np.asarray(indices, "int32"))
        return (ops.cast(ops.take(self.images, indices, axis=0), "float32"),
                ops.take(self.labels, indices, axis=0))

    def training_stream(self, start_step=0):
        """Shuffled full batches forever, from global step `start_step` on."""
        steps = self.steps_per_epoch
        epoch, position = divmod(start_step, steps)
        while True:
            order = self.order(epoch)
            for step in range(position, steps):
                yield self._batch(order[step * self.batch_size:(step + 1) * self.batch_size])
            epoch, position = epoch + 1, 0

    def evaluation_stream(self):
        """Every example in order, the last batch maybe smaller, again and
        again: Keras reads `evaluation_steps` batches (one pass) per evaluation
        from the same generator."""
        while True:
            for start in range(0, self.count, self.batch_size):
                yield self._batch(np.arange(start, min(start + self.batch_size, self.count)))

    @property
    def evaluation_steps(self):
        return math.ceil(self.count / self.batch_size)


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path):
    """(x_train, y_train, x_test, y_test, class_names) of a `.npz` in the
    `keras.datasets` layout: `x_train`, `y_train`, `x_test`, `y_test`, and
    optionally `class_names`. Labels come back as int64 vectors.

    Everything is checked here, at load, so that a bad file fails before a
    run directory exists rather than mid-training (a negative label crashed
    one backend and trained silently on another). Raises ValueError naming
    the file and the problem: not a readable `.npz` (truncated, corrupt), a
    missing array, images and labels of different counts, labels that are
    not integers in 0..classes-1 (classes: the `class_names` given, else
    the largest label + 1), or images of two sizes.
    """
    path = str(path)
    arrays = _read_npz(path)
    missing = [key for key in NPZ_ARRAYS if key not in arrays]
    if missing:
        raise ValueError(f"{path} has no {missing[0]!r} (it holds {sorted(arrays)}); "
                         f"expected {', '.join(NPZ_ARRAYS)}")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    y_train = _integer_labels(path, "train", x_train, arrays["y_train"])
    y_test = _integer_labels(path, "test", x_test, arrays["y_test"])
    if "class_names" in arrays:
        names = tuple(str(name) for name in arrays["class_names"].reshape(-1))
    else:
        names = tuple(str(i) for i in range(int(max(y_train.max(), y_test.max())) + 1))
    for split, labels in (("train", y_train), ("test", y_test)):
        _check_label_range(path, split, labels, len(names))
    if x_train.ndim != 4 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{path}: x_train and x_test must be (N, H, W, C) images of one size. "
                         f"Received: {x_train.shape} and {x_test.shape}")
    return x_train, y_train, x_test, y_test, names


def _read_npz(path):
    """Every array of the `.npz` at `path`, read now (a damaged member fails
    here, not at its first use); a ValueError for a file that is not one."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # zipfile's error for a truncated archive (its directory is at the
        # end); numpy's for a file that is neither .npz, .npy nor a pickle.
        raise ValueError(f"{path} is not a readable .npz file (truncated or corrupt?): "
                         f"{error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds one array (a .npy), not a .npz archive of "
                         f"{', '.join(NPZ_ARRAYS)}")
    with archive:
        try:
            return {key: archive[key] for key in archive}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            # A damaged member: a bad CRC, "cannot reshape", a pickled array.
            raise ValueError(f"{path} is not a readable .npz file (truncated or corrupt?): "
                             f"{error}") from None


def _integer_labels(path, split, images, labels):
    """`labels` as an int64 vector, one per image of `images`."""
    labels = labels.reshape(-1)
    if len(images) == 0:
        raise ValueError(f"{path}: x_{split} holds no images")
    if len(labels) != len(images):
        raise ValueError(f"{path}: x_{split} has {len(images)} images but y_{split} has "
                         f"{len(labels)} labels (one label per image)")
    integral = labels.dtype.kind in "iu" or (
        labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels)))
        and bool(np.all(labels == np.round(labels))))
    if not integral:
        raise ValueError(f"{path}: y_{split} must hold integer class indices. Received: "
                         f"dtype {labels.dtype}, e.g. {labels[:3].tolist()}")
    return labels.astype(np.int64)


def _check_label_range(path, split, labels, classes):
    """Every label a class index: in 0..classes-1."""
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        values = sorted(set(labels[outside].tolist()))
        shown = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise ValueError(f"{path}: y_{split} has {int(outside.sum())} labels outside "
                         f"0..{classes - 1} (the {classes} classes): {shown}")
