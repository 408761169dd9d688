"""The evaluation core: a classifier on a split -> error, per-class accuracy, confusion matrix.

    run = load_run("runs/pyramidnet110_a48_sepdrop-cifar10")
    source, subset, split = open_split(data_config(run), "final", run.data)
    preprocessing, batches = split_stream(model, source, subset, run.data)
    report = evaluate(model, batches, source.class_names, tta="flip")

`applications/evaluate.py` parses, calls these and prints; a search or a
comparison calls them the same way.
"""

import os

import keras
import numpy as np

from keras_pyramid import data
from keras_pyramid.training.config import RunConfig
from keras_pyramid.training.run_data import open_data
from keras_pyramid.training.run_dir import ConfigError
from keras_pyramid.utils.files import atomic_path
from keras_pyramid.weights.files import load_keras_file

TTA = ("none", "flip")  # flip: the mean of the image's and its mirror's probabilities
SPLITS = ("final", "test", "validation", "train")  # final: test, or the hold-out without one
# args.json fields that fix which examples a run's splits hold.
SPLIT_DEFINING = ("validation", "seed", "split_seed", "train_examples", "skip_bad_images",
                  "data_dir", "use_test_split")


def data_config(run=None, dataset=None, data_dir=None, download=False):
    """The RunConfig whose data an evaluation reads: a run's (`run_dir.Run`)
    split as it had it, on `dataset` (default: the run's) and `data_dir`
    (default: the run's), or the given dataset alone."""
    values = {"dataset": dataset, "data_dir": data_dir, "download": download}
    if run is not None and run.args is not None:
        values.update({key: run.args[key] for key in SPLIT_DEFINING if key in run.args})
        values["dataset"] = dataset or run.args["dataset"]
        values["data_dir"] = data_dir if data_dir is not None else values.get("data_dir")
    return RunConfig(**values)


def open_split(config, split="final", record=None):
    """(source, subset, split name) of `split` (one of SPLITS; "final" is
    named by what it is). `record`: the run's data.json, which fixes its
    split. Raises ConfigError or run_data.DataError."""
    if split not in SPLITS:
        raise ConfigError("split", f"must be one of {SPLITS}. Received: split={split!r}")
    source, splits = open_data(config, record)
    if split == "final":
        split = "test" if splits.test is not None else "validation"
    subset = {"test": splits.test, "validation": splits.validation, "train": splits.train}[split]
    if subset is None:
        raise ConfigError("split", f"{config.dataset} has no such split here "
                                   f"(try final or train)")
    return source, subset, split


def image_size_of(model, fallback=None):
    """(height, width) the model takes; for a model of any size, `fallback`
    (the size its run trained at), else ValueError."""
    shape = tuple(model.inputs[0].shape[1:])
    size = shape[:2] if keras.config.image_data_format() == "channels_last" else shape[1:]
    if None in size:
        if fallback is not None:
            return tuple(fallback)
        raise ValueError(f"the model takes images of any size {shape}: evaluation needs a "
                         f"fixed one")
    return tuple(size)


def predict(model, batches, tta="none"):
    """(labels, predicted classes) over `batches` of (images, labels)."""
    width_axis = 2 if keras.config.image_data_format() == "channels_last" else 3
    labels, predictions = [], []
    for images, batch_labels in batches.as_numpy_iterator():
        probabilities = keras.ops.convert_to_numpy(model(images, training=False))
        if tta == "flip":
            mirrored = np.flip(images, axis=width_axis)
            probabilities = probabilities + keras.ops.convert_to_numpy(
                model(mirrored, training=False))
        labels.append(batch_labels)
        predictions.append(np.argmax(probabilities, axis=-1))
    return np.concatenate(labels), np.concatenate(predictions)


def confusion_matrix(labels, predictions, classes):
    """(classes, classes) counts: row the true class, column the predicted one."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    counts = np.bincount(classes * labels + predictions, minlength=classes * classes)
    return counts.reshape(classes, classes)


def summary(labels, predictions, class_names):
    """examples, error, per-class accuracy (None for a class without examples)
    and the confusion matrix (lists, for JSON)."""
    matrix = confusion_matrix(labels, predictions, len(class_names))
    totals = matrix.sum(axis=1)
    per_class = {name: (float(matrix[i, i] / totals[i]) if totals[i] else None)
                 for i, name in enumerate(class_names)}
    return {"examples": int(len(labels)), "error": float(np.mean(labels != predictions)),
            "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist()}


def evaluate(model, batches, class_names, tta="none"):
    """`summary` of `model` on `batches` (with test-time augmentation `tta`)."""
    if tta not in TTA:
        raise ValueError(f"`tta` must be one of {TTA}. Received: tta={tta!r}")
    return summary(*predict(model, batches, tta), list(class_names))


def plot_confusion(matrix, class_names, path):
    """The row-normalized confusion matrix as a PNG (counts written in for <= 20 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(6, len(class_names) * 0.12 + 4)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(class_names) <= 20:
        axes.set_xticks(range(len(class_names)), class_names, rotation=90)
        axes.set_yticks(range(len(class_names)), class_names)
        for (i, j), value in np.ndenumerate(counts):
            axes.text(j, i, int(value), ha="center", va="center", fontsize=7)
    axes.set(xlabel="predicted", ylabel="true", title="confusion matrix (row-normalized)")
    figure.colorbar(image)
    figure.tight_layout()
    with atomic_path(os.fspath(path)) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)



def split_stream(model, source, subset, record=None, batch_size=256, limit=None,
                 image_size=None):
    """(preprocessing, batches) of `subset` for `model`: images resized to the
    model's input size, in the regime of `record` (a run's data.json: as the
    run had it) or the default one for that size; batches of at most
    `batch_size`, the first `limit` examples only where given. A model of any
    input size takes `image_size`, else the record's (ValueError without)."""
    size = image_size_of(model, image_size or (record or {}).get("image_size"))
    preprocessing = data.Preprocessing(size, record["augment"] if record else
                                       data.default_regime(size))
    return preprocessing, data.evaluation_stream(
        source, subset, preprocessing, min(batch_size, len(subset)),
        keras.config.image_data_format(), limit=limit)


def evaluate_saved(path, config, record=None, split="final", batch_size=256, limit=None):
    """`summary` of the .keras model at `path` on `split` of `config`'s data
    (`data_config`), preprocessed as `record` (a run's data.json) had it;
    its first `limit` examples only, where given."""
    model = load_keras_file(path)
    source, subset, _ = open_split(config, split, record)
    _, stream = split_stream(model, source, subset, record, batch_size, limit,
                             config.image_size)
    return evaluate(model, stream, list(source.class_names))
