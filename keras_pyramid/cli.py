"""Argument types shared by the command-line programs.

Each type turns a bad value into argparse's one-line `error: argument --FLAG:
...` with exit status 2, naming the value received.
"""

import argparse
import math

SEED_LIMIT = 2**32 - 1  # numpy's and Keras' seeds are unsigned 32-bit ints


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


def positive_int(text):
    """An int >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text}")
    return value


def non_negative_int(text):
    """An int >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an int >= 0, got {text}")
    return value


def seed(text):
    """An int in [0, 2**32 - 1]."""
    value = _integer(text)
    if not 0 <= value <= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**32 - 1], got {text}")
    return value


def positive_float(text):
    """A finite number > 0."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text):
    """A finite number >= 0."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def drop_probability(text):
    """A number in [0, 1): a unit is never dropped with certainty."""
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def check_batch_fits(parser, batch_size, examples, split, flag="--batch-size"):
    """A batch larger than its split cannot be formed (and would only ask
    the machine for the memory of a batch that does not exist)."""
    if batch_size > examples:
        parser.error(f"{flag} {batch_size} exceeds the {examples:,} images of the {split} split")
