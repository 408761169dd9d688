"""Evaluates a model on a dataset split: error, per-class accuracy, confusion matrix.

    python applications/evaluate.py runs/pyramidnet110_a48_sepdrop-cifar10
    python applications/evaluate.py model.keras --dataset folder:photos --tta flip
    python applications/evaluate.py --model pyramidnet272_a200 --weights cifar100 \
        --dataset cifar100

Accepts a run directory (reads its model.keras and its data.json: the
source, the split, the image size and the preprocessing of the run, so it
needs nothing more), a `.keras` file with `--dataset` (any dataset train.py
takes; images are resized or centre-cropped to the model's size), or a registered `--model` with `--weights` (a trained-weights tag such
as cifar100, fetched and converted once, or a `.weights.h5`/`.keras` file):
the last measures a published claim, recorded beside the measured error.
Writes `evaluation-SPLIT.json` and `confusion-SPLIT.png` next to the model
(or into `--output-dir`; for `--model`, runs/NAME-WEIGHTS by default).
`--tta flip` averages the probabilities of the image and its mirror.
"""

import argparse
import dataclasses
import json
import os
import sys

import arguments as cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved", nargs="?", metavar="MODEL",
                        help="a run directory or a .keras file (or give --model)")
    parser.add_argument("--model", default=None,
                        help="a registered name (keras_pyramid.list_models()), with --weights")
    parser.add_argument("--weights", default=None,
                        help="with --model: a trained-weights tag (cifar10, cifar100, svhn) "
                             "or a .weights.h5 / .keras file")
    parser.add_argument("--dataset", type=cli.dataset, default=None,
                        help="cifar10, cifar100, svhn, tfds:NAME[:VERSION] or a folder; "
                             "default: the run's dataset")
    parser.add_argument("--split", choices=("final", "test", "validation", "train"),
                        default="final",
                        help="final: the run's final evaluation (the test split, or the "
                             "hold-out when there is none); validation: the run's hold-out")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--batch-size", type=cli.positive_int, default=None,
                        help="default: 256, or the split's size when smaller")
    parser.add_argument("--tta", choices=("none", "flip"), default="none")
    parser.add_argument("--max-examples", type=cli.positive_int, default=None,
                        help="evaluate only the first N examples (smoke runs)")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    args.run_dir = None
    if (args.saved is None) == (args.model is None):
        parser.error("give a saved MODEL or --model NAME --weights W, one of them")
    if args.model is not None:
        if args.weights is None:
            parser.error(f"--model {args.model} needs --weights (a tag or a file)")
        if args.dataset is None:
            parser.error("--dataset is required with --model")
        tag = os.path.basename(args.weights).split(".")[0]
        args.output_dir = args.output_dir or os.path.join("runs", f"{args.model}-{tag}")
        return parser, args
    if args.weights is not None:
        parser.error("--weights goes with --model NAME, not with a saved model")
    args.model = args.saved
    if os.path.isdir(args.model):
        args.run_dir = args.model
        run_args = os.path.join(args.model, "args.json")
        if args.dataset is None and os.path.exists(run_args):
            with open(run_args) as f:
                args.dataset = json.load(f)["dataset"]
        args.output_dir = args.output_dir or args.model
        args.model = os.path.join(args.model, "model.keras")
    if not os.path.isfile(args.model) or not args.model.endswith(".keras"):
        parser.error(f"model {args.model!r} is not a .keras file or a run directory with one")
    if args.dataset is None:
        parser.error("--dataset is required when the model is not in a run directory")
    args.output_dir = args.output_dir or os.path.dirname(os.path.abspath(args.model))
    return parser, args


def registered_model(parser, args):
    """The registered model with its weights, and the source's claimed error
    for a weights tag (None otherwise)."""
    from keras_pyramid import applications
    from keras_pyramid.models import presets
    from keras_pyramid.weights.cache import ChecksumMismatch, WeightsUnavailable

    if args.model not in applications.PRESETS:
        parser.error(f"--model {args.model!r} is not a registered name (see "
                     "keras_pyramid.list_models())")
    try:
        model = applications.build(args.model, weights=args.weights)
    except (ValueError, WeightsUnavailable, ChecksumMismatch, ImportError) as error:
        parser.error(f"--weights {args.weights}: {error}")
    claim = None
    if args.weights in presets.DATASET_TAGS:
        entry = applications.trained_weights(args.model, args.weights)
        claim = {"error": entry.error, "metric": entry.metric, "source": entry.source,
                 "file": entry.file_name}
    return model, claim


def confusion_matrix(labels, predictions, classes):
    matrix = [[0] * classes for _ in range(classes)]
    for true, predicted in zip(labels, predictions):
        matrix[int(true)][int(predicted)] += 1
    return matrix


def plot_confusion(matrix, class_names, path):
    import matplotlib

    from keras_pyramid.utils.files import temporary_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    temporary = temporary_path(path)
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)


def open_split(parser, args, run_config):
    """(source, subset, record) of the split to evaluate. A run directory's
    split is rebuilt from its args.json and data.json as the run had it."""
    from keras_pyramid.training import experiment

    record = experiment.read_data_record(args.run_dir) if args.run_dir else None
    try:
        source, splits = experiment.open_data(run_config, record)
    except experiment.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except experiment.ConfigError as error:
        parser.error(f"--dataset {args.dataset}: {error}")
    if args.split == "final":  # named by what it is: the test split, or the hold-out
        args.split = "test" if splits.test is not None else "validation"
    subset = {"test": splits.test, "validation": splits.validation,
              "train": splits.train}[args.split]
    if subset is None:
        parser.error(f"--split {args.split}: {args.dataset} has no such split here "
                     f"(try final or train)")
    return source, subset, record


def run_config_of(args):
    """The RunConfig whose data this evaluation reads: the run's own, or the flags'."""
    from keras_pyramid.training import experiment

    values = {"dataset": args.dataset, "data_dir": args.data_dir, "download": args.download}
    if args.run_dir and os.path.exists(os.path.join(args.run_dir, "args.json")):
        with open(os.path.join(args.run_dir, "args.json")) as f:
            recorded = json.load(f)
        fields = {f.name for f in dataclasses.fields(experiment.RunConfig)}
        for key in ("validation_examples", "validation", "seed", "skip_bad_images", "data_dir"):
            if key in recorded:  # runs before 0.2 recorded validation_examples (0: none)
                values[experiment.RENAMED.get(key, key)] = recorded[key]
        values = {k: v for k, v in values.items() if k in fields}
        values["dataset"] = args.dataset
        if args.data_dir is not None:
            values["data_dir"] = args.data_dir
    return experiment.RunConfig(**values)


def main(argv=None):
    parser, args = parse_args(argv)
    import keras
    import numpy as np

    import keras_pyramid  # noqa: F401  registers the layers
    from keras_pyramid import data
    from keras_pyramid.utils.files import atomic_write_json

    source, subset, record = open_split(parser, args, run_config_of(args))
    if args.saved is None:
        model, claim = registered_model(parser, args)
    else:
        # compile=False: a .keras file keeps its jit_compile, which another
        # backend may not support.
        model, claim = keras.saving.load_model(args.model, compile=False), None
    data_format = keras.config.image_data_format()
    shape = tuple(model.inputs[0].shape[1:])
    size = shape[:2] if data_format == "channels_last" else shape[1:]
    if None in size:
        parser.error(f"the model takes images of any size {shape}: evaluate needs a fixed one")
    regime = record["augment"] if record else data.default_regime(size)
    preprocessing = data.Preprocessing(tuple(size), regime)
    if model.outputs[0].shape[-1] != source.num_classes:
        parser.error(f"the model has {model.outputs[0].shape[-1]} classes, {args.dataset} "
                     f"has {source.num_classes}")
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as error:
        parser.error(f"--output-dir {args.output_dir} cannot be created: {error.strerror}")
    examples = len(subset)
    if args.batch_size is None:
        args.batch_size = min(256, examples)
    cli.check_batch_fits(parser, args.batch_size, examples, args.split)
    if args.max_examples:
        cli.check_batch_fits(parser, args.max_examples, examples, args.split, "--max-examples")
    ds = data.evaluation_stream(source, subset, preprocessing, args.batch_size, data_format,
                                limit=args.max_examples)
    width_axis = 2 if data_format == "channels_last" else 3
    labels, predictions = [], []
    for images, batch_labels in ds.as_numpy_iterator():
        probabilities = keras.ops.convert_to_numpy(model(images, training=False))
        if args.tta == "flip":
            mirrored = np.flip(images, axis=width_axis)
            probabilities = probabilities + keras.ops.convert_to_numpy(
                model(mirrored, training=False))
        labels.append(batch_labels)
        predictions.append(np.argmax(probabilities, axis=-1))
    labels, predictions = np.concatenate(labels), np.concatenate(predictions)
    names = list(source.class_names)
    matrix = confusion_matrix(labels, predictions, len(names))
    per_class = {
        name: (matrix[i][i] / sum(matrix[i]) if sum(matrix[i]) else None)
        for i, name in enumerate(names)
    }
    split_tag = args.split
    report = {
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "split_description": subset.description,
        "image_size": list(preprocessing.image_size),
        "preprocessing": preprocessing.augment,
        "tta": args.tta,
        "examples": int(len(labels)),
        "error": float(np.mean(labels != predictions)),
        "weights": args.weights,
        "source_claim": claim,
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    atomic_write_json(os.path.join(args.output_dir, f"evaluation-{split_tag}.json"), report)
    plot_confusion(matrix, names, os.path.join(args.output_dir, f"confusion-{split_tag}.png"))
    print(f"{args.dataset} {args.split}: error {100 * report['error']:.2f}% "
          f"on {report['examples']} images (tta {args.tta})")
    if claim:
        print(f"  the source claims {claim['error']:.2f}% ({claim['metric']}, "
              f"{claim['source']}); measured here: the line above")
    for name, accuracy in per_class.items():
        print(f"  {name:>12s} {100 * accuracy:6.2f}%" if accuracy is not None else f"  {name}: -")
    return 0


if __name__ == "__main__":
    sys.exit(main())
