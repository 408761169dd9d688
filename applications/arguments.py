"""Argument types shared by the command-line programs.

Each type turns a bad value into argparse's one-line `error: argument --FLAG:
...` with exit status 2, naming the value received.

Nothing here imports Keras or TensorFlow (importing `keras_pyramid` does:
it registers its layers with Keras), so `--help` and a bad flag answer at
once. The library's choices are therefore written out in `CHOICES`;
tests/programs/test_help.py checks each against the library's own tuple.
"""

import argparse
import math
import os

SEED_LIMIT = 2**32 - 1

CHOICES = {
    "augment": ("cifar", "imagenet", "none"),  # keras_pyramid.data.augment.REGIMES
    "recipe": ("paper", "finetune"),  # keras_pyramid.training.recipe.RECIPES
    "mixed_precision": ("auto", "off", "bfloat16", "float16"),  # training.device
    "distribute": ("none", "auto", "data-parallel"),  # training.distribution.MODES
    "jit_compile": ("auto", "true", "false"),  # training.experiment.JIT_COMPILE
    "skip_dropped": ("auto", "on", "off"),  # training.experiment.SKIP_DROPPED
    "split": ("final", "test", "validation", "train"),  # keras_pyramid.evaluation.SPLITS
    "tta": ("none", "flip"),  # keras_pyramid.evaluation.TTA
    "format": ("saved_model", "onnx"),  # keras_pyramid.export.FORMATS
    "tuner": ("random", "bayesian", "hyperband"),  # keras_pyramid.tuning.hypermodel.TUNERS
    "source": ("pytorchcv", "official"),  # keras_pyramid.weights.convert.SOURCES
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where the help does not already say what the
    default is, never "(default: None)" nor a switch's own True or False; an
    epilog (the examples) keeps its lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or "default" in text or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if text.startswith("example"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def non_empty(text):
    """An argparse type: any text but the empty one (an empty --model or
    --output-dir would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, got {text!r}")
    return text


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int, got {text!r}") from None


def _finite(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _argument_type(convert, accepts, requirement):
    """An argparse type: `convert(text)`, then `accepts(value)` or the error
    "must be REQUIREMENT, got TEXT"."""

    def parse(text):
        value = convert(text)
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__doc__ = f"An argparse type: {requirement}."
    return parse


positive_int = _argument_type(_integer, lambda v: v >= 1, "an int >= 1")
non_negative_int = _argument_type(_integer, lambda v: v >= 0, "an int >= 0")
# numpy's and Keras' seeds are unsigned 32-bit ints.
seed = _argument_type(_integer, lambda v: 0 <= v <= SEED_LIMIT, "an int in [0, 2**32 - 1]")
positive_float = _argument_type(_finite, lambda v: v > 0, "a finite number > 0")
non_negative_float = _argument_type(_finite, lambda v: v >= 0, "a finite number >= 0")
# A unit is never dropped with certainty.
drop_probability = _argument_type(_finite, lambda v: 0 <= v < 1, "in [0, 1)")


# A hold-out fraction: 0 (none) up to, not including, the whole training split.
holdout_fraction = _argument_type(_finite, lambda v: 0 <= v < 1, "in [0, 1)")


def image_size(text):
    """An argparse type: N (square) or H,W; ints >= 1."""
    parts = text.split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(parts) == 1 and size:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"must be N or H,W (ints >= 1), got {text!r}")
    return size


def dataset(text):
    """An argparse type: a dataset spec (keras_pyramid.data.spec's grammar,
    checked for form here, for existence when opened; an npz file must exist)."""
    from keras_pyramid.data.spec import DATASETS, parse_dataset

    try:
        spec = parse_dataset(text)
    except ValueError:
        spec = None
    if spec is not None and (spec.kind != "npz" or os.path.isfile(spec.name)):
        return text
    raise argparse.ArgumentTypeError(
        f"must be {', '.join(DATASETS)}, tfds:NAME[:VERSION], a folder (PATH or "
        f"folder:PATH) or npz:PATH of an existing .npz file, got {text!r}")


def drop_rate_schedule(text):
    """An argparse type: "constant" or "ramp:FRACTION", FRACTION in (0, 1]."""
    from keras_pyramid.training.specs import parse_schedule

    try:
        parse_schedule(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'constant' or 'ramp:FRACTION' with FRACTION in (0, 1], got {text!r}"
        ) from None
    return text








def check_batch_fits(parser, batch_size, examples, split, flag="--batch-size"):
    """A batch (or an example count, with `flag`) larger than its split cannot
    be formed (and would only ask the machine for memory it will not use)."""
    if batch_size > examples:
        parser.error(f"{flag} {batch_size} exceeds the {examples:,} images of the {split} split")


def at_most(parse, maximum, reason):
    """An argparse type: `parse`'s (another type here), then at most
    `maximum`, or the error "must be at most MAXIMUM (REASON), got TEXT"."""

    def bounded(text):
        value = parse(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,} ({reason}), "
                                             f"got {text}")
        return value

    bounded.__doc__ = f"{parse.__doc__} At most {maximum}."
    return bounded


def noise_rates(text):
    """An argparse type: comma-separated label-noise rates, each in [0, 1)
    (labels are never all replaced), e.g. "0,0.2,0.4"."""
    rates = []
    for part in text.split(","):
        try:
            rate = float(part)
        except ValueError:
            rate = math.nan
        if not 0 <= rate < 1:
            raise argparse.ArgumentTypeError(f"each rate must be in [0, 1), got {text}")
        rates.append(rate)
    return tuple(sorted(set(rates)))
