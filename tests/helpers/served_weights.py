"""The trained weights the tests serve: a random pytorchcv PyramidNet-8 alpha 24
stands as this configuration's "cifar10" weights (test_cache.py, test_finetune.py)."""

import dataclasses
import hashlib

SERVED_NAME = "pyramidnet8_a24"


def file_sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def with_entry(entry):
    """presets.ARCHITECTURES with `entry` as SERVED_NAME's only weights."""
    from keras_pyramid.models import presets

    return tuple(dataclasses.replace(a, weights=(entry,)) if a.name() == SERVED_NAME else a
                 for a in presets.ARCHITECTURES)
