"""Evaluates a model on a dataset split: error, per-class accuracy, confusion matrix.

    python applications/evaluate.py runs/pyramidnet110_a48_sepdrop-cifar10
    python applications/evaluate.py model.keras --dataset folder:photos --tta flip
    python applications/evaluate.py --model pyramidnet272_a200 --weights cifar100 \
        --dataset cifar100

Accepts a run directory (reads its model.keras and its data.json: the
source, the split, the image size and the preprocessing of the run, so it
needs nothing more), a `.keras` file with `--dataset` (any dataset train.py
takes; images are resized or centre-cropped to the model's size), or a
registered `--model` with `--weights` (a trained-weights tag such as
cifar100, fetched and converted once, or a `.weights.h5`/`.keras` file):
the last measures a published claim, recorded beside the measured error.
Writes `evaluation-SPLIT.json` and `confusion-SPLIT.png` next to the model
(or into `--output-dir`; for `--model`, runs/NAME-WEIGHTS by default).
`--tta flip` averages the probabilities of the image and its mirror.
"""

import argparse
import os
import sys

import arguments as cli

# Keras and the library are imported after parsing: --help answers at once.


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
    parser.add_argument("--split", choices=cli.CHOICES["split"], default="final",
                        help="final: the run's final evaluation (the test split, or the "
                             "hold-out when there is none); validation: the run's hold-out")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--batch-size", type=cli.positive_int, default=None,
                        help="default: 256, or the split's size when smaller")
    parser.add_argument("--tta", choices=cli.CHOICES["tta"], default="none")
    parser.add_argument("--max-examples", type=cli.positive_int, default=None,
                        help="evaluate only the first N examples (smoke runs)")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    args.run = None
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
        from keras_pyramid.training.run_dir import ConfigError, load_run
        from keras_pyramid.training.run_layout import MODEL_FILE

        try:
            args.run = load_run(args.model)
        except ConfigError as error:  # a corrupt record: named, with the way out
            parser.error(str(error))
        if args.dataset is None and args.run.args is not None:
            args.dataset = args.run.args["dataset"]
        args.output_dir = args.output_dir or args.model
        args.model = args.run.model_path or os.path.join(args.model, MODEL_FILE)
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
    from keras_pyramid.weights import files

    if args.model not in applications.PRESETS:
        parser.error(f"--model {args.model!r} is not a registered name (see "
                     "keras_pyramid.list_models())")
    try:
        model = applications.build(args.model, weights=args.weights)
    except (ValueError, OSError, ImportError) as error:  # the cache's errors included
        if args.weights.endswith(".weights.h5") and os.path.isfile(args.weights):
            # The builder hands a .weights.h5 to Keras' load_weights as it is.
            error = files.weights_file_error(args.weights, error)
        if isinstance(error, files.UnloadableFile):
            parser.error(f"--weights: {error}")  # it names the file
        parser.error(f"--weights {args.weights}: {error}")
    claim = None
    if args.weights in presets.DATASET_TAGS:
        entry = applications.trained_weights(args.model, args.weights)
        claim = {"error": entry.error, "metric": entry.metric, "source": entry.source,
                 "file": entry.file_name}
    return model, claim


def open_split(parser, args):
    """(source, subset) of the split to evaluate, `args.split` named by what it is."""
    from keras_pyramid import evaluation
    from keras_pyramid.training.run_data import DataError
    from keras_pyramid.training.run_dir import ConfigError

    record = args.run.data if args.run else None
    config = evaluation.data_config(args.run, args.dataset, args.data_dir, args.download)
    try:
        source, subset, args.split = evaluation.open_split(config, args.split, record)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigError as error:
        flag = f"--split {args.split}" if error.argument == "split" else f"--dataset {args.dataset}"
        parser.error(f"{flag}: {error}")
    return source, subset


def load_model(parser, args):
    """(model, the source's claimed error or None)."""
    from keras_pyramid.weights.files import UnloadableFile, load_keras_file

    if args.saved is None:
        return registered_model(parser, args)
    try:  # not compiled (load_keras_file): the file's jit_compile may not suit this backend
        return load_keras_file(args.model), None
    except UnloadableFile as error:  # truncated, random, hostile: one line naming it
        parser.error(str(error))


def batches(parser, args, model, source, subset):
    """The library's (preprocessing, stream) of the split, after the checks
    that name this program's flags."""
    from keras_pyramid import evaluation

    if model.outputs[0].shape[-1] != source.num_classes:
        parser.error(f"the model has {model.outputs[0].shape[-1]} classes, {args.dataset} "
                     f"has {source.num_classes}")
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as error:
        parser.error(f"--output-dir {args.output_dir} cannot be created: {error.strerror}")
    examples = len(subset)
    args.batch_size = args.batch_size or min(256, examples)
    cli.check_batch_fits(parser, args.batch_size, examples, args.split)
    if args.max_examples:
        cli.check_batch_fits(parser, args.max_examples, examples, args.split, "--max-examples")
    try:
        return evaluation.split_stream(model, source, subset, args.run.data if args.run
                                       else None, args.batch_size, args.max_examples)
    except ValueError as error:  # a model of any input size
        parser.error(str(error))


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid import evaluation
    from keras_pyramid.utils.files import atomic_write_json

    source, subset = open_split(parser, args)
    model, claim = load_model(parser, args)
    preprocessing, stream = batches(parser, args, model, source, subset)
    names = list(source.class_names)
    report = {"model": args.model, "dataset": args.dataset, "split": args.split,
              "split_description": subset.description,
              "image_size": list(preprocessing.image_size), "preprocessing": preprocessing.augment,
              "tta": args.tta,
              "weights": args.weights, "source_claim": claim,
              **evaluation.evaluate(model, stream, names, args.tta)}
    atomic_write_json(os.path.join(args.output_dir, f"evaluation-{args.split}.json"), report)
    evaluation.plot_confusion(report["confusion_matrix"], names,
                              os.path.join(args.output_dir, f"confusion-{args.split}.png"))
    print(f"{args.dataset} {args.split}: error {100 * report['error']:.2f}% "
          f"on {report['examples']} images (tta {args.tta})")
    if claim:
        print(f"  the source claims {claim['error']:.2f}% ({claim['metric']}, "
              f"{claim['source']}); measured here: the line above")
    print("  per class: error (accuracy)")
    for name, accuracy in report["per_class_accuracy"].items():
        print(f"  {name:>12s} {100 * (1 - accuracy):6.2f}% ({100 * accuracy:.2f}%)"
              if accuracy is not None else f"  {name:>12s} - (no image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
