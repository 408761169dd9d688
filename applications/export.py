"""Exports a trained model for serving: a SavedModel in the TF Serving layout, optionally ONNX.

    python applications/export.py runs/pyramidnet110_a48_sepdrop-cifar10 \\
        --output exports/pyramidnet110 --version 1
    python applications/export.py model.keras --output exports/x --format onnx --overwrite
    python applications/export.py model.keras --class-names names.txt   # one name a line

Writes `OUTPUT/VERSION/` (saved_model.pb, variables/, assets/class_names.txt;
`model.onnx` too with `--format onnx`), whatever backend trained the model,
then checks the artifacts against the Keras model on a few images and prints
the largest differences. The signature (`serving_default`) takes `image`, a
uint8 batch [N, H, W, 3] of raw RGB pixels (H, W: the model's input size),
and returns `logits`, `probabilities`, `class_id` and `class_name`.

Class names: `--class-names FILE`, else the run directory's `data.json`
(its "class_names", written by the training run), else the class indices
"0", "1", ... See `keras_pyramid/export.py` and docs/serving.md.

The default `--output` is `exports/NAME`, NAME the run directory's name (or,
for a `.keras` file, its stem; `RUN_DIR/model.keras` counts as RUN_DIR): two
runs of one architecture never share a serving folder, where TF Serving
would serve one as a version of the other.
"""

import argparse
import json
import os
import sys

import arguments as cli

# Keras and the library are imported after parsing: --help answers at once.

EXPORTS = "exports"  # the default output's parent folder
# The comparison runs the Keras model, the SavedModel (and onnxruntime) on
# all the images in one batch: a sample check, bounded so that it cannot
# exhaust memory (2,000,000,000 asked for 6 TB) after the export is written.
MAX_CHECK_IMAGES = 256


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("model", help="a run directory (with model.keras) or a .keras file")
    parser.add_argument("--output", default=None,
                        help="the model's serving folder (default: exports/ and the run "
                             "directory's name, or the .keras file's stem)")
    parser.add_argument("--version", type=cli.positive_int, default=1,
                        help="the version folder, >= 1")
    parser.add_argument("--format", choices=cli.CHOICES["format"], default="saved_model",
                        help="onnx: the SavedModel plus model.onnx")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing version (atomically)")
    parser.add_argument("--check-images", default=8,
                        type=cli.at_most(cli.non_negative_int, MAX_CHECK_IMAGES,
                                         "the check runs them in one batch"),
                        help=f"random images to compare the artifacts on (0: skip; at most "
                             f"{MAX_CHECK_IMAGES})")
    parser.add_argument("--class-names", default=None, metavar="FILE",
                        help="a text file, one class name a line in class order (default: "
                             "the run directory's data.json, else the indices 0, 1, ...)")
    args = parser.parse_args(argv)
    return args


class NamesError(ValueError):
    """The class names given cannot be used (a one-line message)."""


def read_class_names(args):
    """(names, source): `--class-names FILE` (one name a line), else the run
    directory's data.json "class_names" (`load_run`), else (None, ...): the
    index names."""
    if args.class_names is not None:
        return _read_names(f"--class-names {args.class_names}",
                           lambda: _text(args.class_names).splitlines())
    from keras_pyramid.training.run_dir import DATA_FILE, load_run

    data_file = os.path.join(args.model, DATA_FILE)
    if os.path.isfile(data_file):
        return _read_names(data_file, lambda: load_run(args.model).data["class_names"])
    return None, "the class indices"


def _text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_names(source, read):
    """The names `read()` returns, checked; a NamesError blaming `source`."""
    try:
        names = read()
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise NamesError(f"{_blame(source)}cannot read class names from it "
                         f"({type(error).__name__}: {error})") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise NamesError(f"{_blame(source)}the class names must be a list of str, "
                         f"got {names!r}")
    return names, source


def check_name_count(names, source, classes):
    if names is not None and len(names) != classes:
        raise NamesError(f"{_blame(source)}{len(names)} class names for a model with "
                         f"{classes} classes")


def _blame(source):
    """The start of an error about `source`: the flag and value, or the
    data.json file and how to override it."""
    return f"{source}: " if source.startswith("--") else (
        f"{source} (override it with --class-names FILE): ")


def default_output(model_path):
    """exports/NAME: the run directory's name, or the `.keras` file's stem
    (a run directory's own model.keras: the directory's name)."""
    from keras_pyramid.training.run_layout import MODEL_FILE

    path = os.path.abspath(model_path)
    if os.path.basename(path) == MODEL_FILE:
        path = os.path.dirname(path)
    elif not os.path.isdir(path):
        path = os.path.splitext(path)[0]
    return os.path.join(EXPORTS, os.path.basename(path) or "model")


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_pyramid import export as exporting
    from keras_pyramid.export_parity import compare

    formats = ("saved_model",) if args.format == "saved_model" else ("saved_model", "onnx")
    try:
        names, source = read_class_names(args)
        model = exporting.load_classifier(args.model)
        check_name_count(names, source, exporting.classifier_head(model).units)
        output = args.output or default_output(args.model)
        folder = exporting.export(model, output, args.version, formats=formats,
                                  overwrite=args.overwrite, class_names=names)
    except FileExistsError:  # the library's message names its argument, overwrite=True
        target = os.path.join(os.path.abspath(output), str(args.version))
        print(f"error: {target!r} already exists: choose another --version or pass "
              f"--overwrite", file=sys.stderr)
        return 2
    except (exporting.ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {model.name} to {folder}, class names from {source}")
    if args.check_images:
        shape = (args.check_images, *exporting.ServingModel(model).image_shape)
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        differences = compare(model, folder, images, names)
        print("max |artifact - keras| on", args.check_images, "random images:")
        print(json.dumps(differences, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
