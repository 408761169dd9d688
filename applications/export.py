"""Exports a trained model for serving: a SavedModel in the TF Serving layout, optionally ONNX.

    python applications/export.py runs/pyramidnet110_a48_sepdrop-cifar10 \\
        --output exports/pyramidnet110 --version 1
    python applications/export.py model.keras --output exports/x --format onnx --overwrite

Writes `OUTPUT/VERSION/` (saved_model.pb, variables/; `model.onnx` too with
`--format onnx`), whatever backend trained the model, then checks the
artifacts against the Keras model on a few images and prints the largest
differences. The signature (`serving_default`) takes `image`, a uint8 batch
[N, H, W, 3] of raw RGB pixels, and returns `logits`, `probabilities` and
`class_id`. See `keras_pyramid/export.py` and the README for serving.
"""

import argparse
import json
import os
import sys

from keras_pyramid import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="a run directory (with model.keras) or a .keras file")
    parser.add_argument("--output", default=None,
                        help="the model's serving folder (default: exports/MODEL_NAME)")
    parser.add_argument("--version", type=cli.positive_int, default=1,
                        help="the version folder, >= 1")
    parser.add_argument("--format", choices=("saved_model", "onnx"), default="saved_model",
                        help="onnx: the SavedModel plus model.onnx")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing version (atomically)")
    parser.add_argument("--check-images", type=cli.non_negative_int, default=8,
                        help="random images to compare the artifacts on (0: skip)")
    args = parser.parse_args(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_pyramid import export as exporting

    formats = ("saved_model",) if args.format == "saved_model" else ("saved_model", "onnx")
    try:
        model = exporting.load_classifier(args.model)
        output = args.output or os.path.join("exports", model.name)
        folder = exporting.export(model, output, args.version, formats=formats,
                                  overwrite=args.overwrite)
    except (exporting.ExportError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {model.name} to {folder}")
    if args.check_images:
        shape = (args.check_images, *exporting.ServingModel(model).image_shape)
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        differences = exporting.compare(model, folder, images)
        print("max |artifact - keras| on", args.check_images, "random images:")
        print(json.dumps(differences, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
