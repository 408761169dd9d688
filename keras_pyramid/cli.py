"""Argument types shared by the command-line programs."""

import argparse


def positive_int(text):
    """An argparse type: an int >= 1, or a one-line error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text}")
    return value
