"""Converts a PyTorch PyramidNet checkpoint into a self-contained Keras file.

    python applications/convert_weights.py CHECKPOINT --source pytorchcv \
        --model pyramidnet272_a200 --dataset cifar100 --output pyramidnet272.keras
    python applications/convert_weights.py model_best.pth.tar --source official \
        --model pyramidnet101_a360_imagenet --dataset imagenet --output out.weights.h5

CHECKPOINT: a `.pth`, `.pth.tar` or published `.pth.zip`; a bare state dict
or a dict with `state_dict` (the official train.py), `module.` prefixes
allowed; loaded with `weights_only=True`. `--source pytorchcv` is
osmr/imgclsmob's layout, `official` dyhan0920/PyramidNet-PyTorch's. The
`.keras` output holds the architecture, the weights and the preprocessing
the weights were trained with (it takes raw 0-255 pixels), and loads after
`import keras_pyramid` on any backend; `.weights.h5` holds the weights only.
Any regularization of the configuration may be named (`_sepdrop`, ...):
regularizers have no weights. Needs torch.
"""

import argparse
import math
import os
import sys

import arguments as cli

SOURCES = cli.CHOICES["source"]
DATASETS = ("cifar10", "cifar100", "svhn", "imagenet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .pth, .pth.tar or .pth.zip PyTorch file")
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument("--model", required=True, help="a registered name, e.g. pyramidnet110_a48")
    parser.add_argument("--dataset", choices=DATASETS, required=True,
                        help="what the checkpoint was trained on: its classes and statistics")
    parser.add_argument("--output", required=True, help="OUT.keras or OUT.weights.h5")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} is not a file")
    if not args.output.endswith((".keras", ".weights.h5")):
        parser.error(f"--output must end in .keras or .weights.h5, got {args.output!r}")
    problem = output_problem(args.output)
    if problem:  # before converting: a conversion is minutes for a large network
        parser.error(f"--output {args.output!r} {problem}")
    return parser, args


def output_problem(path):
    """Why a file cannot be written at `path` (None if it can): it is a
    directory, or its nearest existing ancestor is not a writable folder."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return "is a directory: name the file to write"
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f"cannot be written: {ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot be written: {ancestor} is not writable"
    return None


def converted_model(args):
    """The registered model `args.model`, with the checkpoint's class count and
    the preprocessing of its source, holding the converted tensors."""
    from keras_pyramid.applications import PRESETS, build
    from keras_pyramid.models.init import built_shapes_first
    from keras_pyramid.models.presets import DATASET_TAGS
    from keras_pyramid.weights import convert
    from keras_pyramid.weights.assign import assign_by_name

    preset = PRESETS[args.model]
    tensors = convert.converted_tensors(
        convert.read_state_dict(args.checkpoint), args.source, depth=preset["depth"],
        bottleneck=preset["bottleneck"], variant=preset["variant"])
    mean, std = convert.source_statistics(args.source, args.dataset, preset["variant"])
    model = built_shapes_first(build, args.model, classes=DATASET_TAGS[args.dataset][0],
                               mean=mean, std=std)
    try:
        assign_by_name(tensors, model)
    except ValueError as error:  # the tensors are of another configuration
        raise convert.CheckpointMismatch(f"it does not fit {args.model}: {error}") from None
    return model


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid.applications import PRESETS
    from keras_pyramid.utils.files import atomic_path

    if args.model not in PRESETS:
        parser.error(f"--model {args.model!r} is not a registered name (see "
                     "keras_pyramid.list_models())")
    try:
        model = converted_model(args)
    except (ValueError, ImportError) as error:  # CheckpointMismatch is a ValueError
        parser.error(f"checkpoint {args.checkpoint}: {error}")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with atomic_path(args.output) as temporary:  # removed if the write fails
            if args.output.endswith(".keras"):
                model.save(temporary)
            else:
                model.save_weights(temporary)
    except OSError as error:  # a full disk, or the folder changed since parse_args
        parser.error(f"--output {args.output!r} cannot be written: "
                     f"{error.strerror or error}")
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    print(f"{args.model}: {trainable:,} trainable parameters from {args.checkpoint} "
          f"({args.source}, {args.dataset}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
