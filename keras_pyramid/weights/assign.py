"""Weights into a network by layer name: the one copy for every source.

A source is a `keras.Model` (a `.keras` file, a training run) or converted
tensors keyed by this project's layer names (`weights.convert`). Layers are
found by walking the public `layers` of a model and of every layer that
holds layers (a nested model, a `SkippableBranch`), so a flat network and a
`skip_dropped` one take the same weights.
"""

import os

import keras

from keras_pyramid.models.plan import CLASSIFIER
from keras_pyramid.models.presets import DATASET_TAGS
from keras_pyramid.training.run_layout import MODEL_FILE
from keras_pyramid.utils.checks import fail

HEAD = CLASSIFIER  # the layer whose weights a head mode decides
WEIGHTED = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)
HEAD_MODES = ("fit", "replace")


class WeightsMismatch(ValueError):
    """The weights are of another architecture than the model's."""


def weights_kind(weights):
    """None, "tag" (a dataset of the trained weights), "keras", "weights.h5" or
    "run" (a training run directory holding model.keras); a one-line
    ValueError naming `weights` for anything else."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights in DATASET_TAGS:
        return "tag"
    expected = (f"be None, a dataset tag {tuple(DATASET_TAGS)}, a .keras or .weights.h5 "
                "file, or a training run directory")
    if not isinstance(weights, (str, os.PathLike)):
        fail("weights", expected, weights)
    path = os.fspath(weights)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, MODEL_FILE)):
            fail("weights", f"be a run directory holding {MODEL_FILE} (a finished training "
                            "run)", weights)
        return "run"
    for kind in ("keras", "weights.h5"):
        if path.endswith("." + kind):
            if not os.path.isfile(path):
                fail("weights", "be a file that exists", weights)
            return kind
    fail("weights", expected, weights)


def weighted_layers(model):
    """The conv, BatchNorm and dense layers of `model`, in order, those inside
    any layer that holds layers (`layer.layers`) included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, WEIGHTED):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(weighted_layers(layer))
    return found


def layer_values(source):
    """{layer name: [arrays in Keras' order]} of a model, or the mapping itself."""
    if isinstance(source, keras.Model):
        return {layer.name: layer.get_weights() for layer in weighted_layers(source)}
    return dict(source)


def _shapes(values):
    return [tuple(value.shape) for value in values]


def assign_by_name(source, model, head="fit"):
    """Sets every conv, BatchNorm and dense layer of `model` to the values the
    source holds under its name, all or nothing.

    `head` says what the classifier `predictions` of `model` gets: "fit", the
    source's, which must fit; "replace", the source's where its shapes are
    equal, else it keeps its values (a new task's classifier). The source may
    hold layers `model` lacks only in its classifier (a backbone takes a full
    network's weights).

    Returns {"head": "copied", "replaced" or "absent" (no classifier in
    `model`), "layers": the number of layers set}. Raises `WeightsMismatch`
    naming the first layer that is missing or does not fit, with both shapes.
    """
    if head not in HEAD_MODES:
        fail("head", f"be one of {HEAD_MODES}", head)
    available = layer_values(source)
    outcome, pairs = "absent", []
    for layer in weighted_layers(model):
        values = available.pop(layer.name, None)
        shapes = _shapes(layer.weights)
        fits = values is not None and _shapes(values) == shapes
        if layer.name == HEAD and head == "replace":
            outcome = "copied" if fits else "replaced"
            if not fits:
                continue
        elif layer.name == HEAD:
            outcome = "copied"
        if values is None:
            raise WeightsMismatch(f"it has no layer {layer.name!r} ({shapes} in {model.name})")
        if not fits:
            raise WeightsMismatch(f"layer {layer.name!r} is {shapes} in {model.name}, "
                                  f"{_shapes(values)} in the source")
        pairs.append((layer, values))
    extra = [name for name in available if name != HEAD]
    if extra:
        raise WeightsMismatch(f"it has layers {model.name} lacks, e.g. {extra[0]!r}")
    for layer, values in pairs:
        layer.set_weights(values)
    return {"head": outcome, "layers": len(pairs)}


def refused(weights, mismatch):
    """The one-line ValueError for `weights` that `assign_by_name` refused."""
    return ValueError(f"`weights` is of another architecture: {mismatch}. "
                      f"Received: weights={weights!r}")
