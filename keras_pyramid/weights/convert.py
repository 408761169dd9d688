"""PyramidNet checkpoints from PyTorch -> these models' weights, exactly.

Two sources name the same network's tensors differently (docs/architecture.md section 6):

    ours                  pytorchcv (osmr/imgclsmob)                official code (dyhan0920)
    stem_conv             features.init_block.conv                  conv1
    stem_bn               features.init_block.bn                    bn1
    stageS_unitU_bn1      features.stageS.unitU.body.conv1.bn       layerS.(U-1).bn1
    stageS_unitU_conv1    features.stageS.unitU.body.conv1.conv     layerS.(U-1).conv1
    stageS_unitU_bn2      features.stageS.unitU.body.conv2.bn       layerS.(U-1).bn2
    stageS_unitU_conv2    features.stageS.unitU.body.conv2.conv     layerS.(U-1).conv2
    stageS_unitU_bn3      .body.conv3.bn (bottleneck), .bn (basic)  layerS.(U-1).bn3
    stageS_unitU_conv3    features.stageS.unitU.body.conv3.conv     layerS.(U-1).conv3
    stageS_unitU_bn4      features.stageS.unitU.bn                  layerS.(U-1).bn4
    head_bn               features.post_activ.bn                    bn_final
    predictions           output                                    fc

(pytorchcv's `PreConvBlock` is BN -> [ReLU] -> conv, so its `convK.bn` is
the BN before our convK; the unit's closing BN is the unit's own `bn`.)
Tensors change layout on the way: a conv's OIHW weight becomes Keras' HWIO
kernel, a linear's (out, in) weight its transpose; BatchNorm's weight, bias,
running mean and variance are gamma, beta and the moving statistics
(`num_batches_tracked` has no counterpart and is dropped).

The mapping goes by the model's structure: every conv, BatchNorm and dense
layer of the model must find its tensors with the same shapes, and every
tensor of the checkpoint must be used, or `CheckpointMismatch` names the
first layer that does not fit, with both shapes.
"""

import io
import os
import re
import zipfile

import keras
import numpy as np

SOURCES = ("pytorchcv", "official")
_UNIT = re.compile(r"stage(\d+)_unit(\d+)_(conv|bn)(\d)$")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# The layers outside the units, by source (the module doc's table).
_OUTSIDE_UNITS = {
    "pytorchcv": {"stem_conv": "features.init_block.conv", "stem_bn": "features.init_block.bn",
                  "head_bn": "features.post_activ.bn", "predictions": "output"},
    "official": {"stem_conv": "conv1", "stem_bn": "bn1", "head_bn": "bn_final",
                 "predictions": "fc"},
}


class CheckpointMismatch(ValueError):
    """The checkpoint is not of the model's configuration."""


def read_state_dict(path):
    """The tensors of a PyTorch checkpoint as NumPy arrays, by key.

    Accepts `.pth`, `.pth.tar` and the published `.pth.zip` (a zip holding
    one `.pth`); a bare state dict or a dict holding one under `state_dict`
    (the official `train.py`); keys with DataParallel's `module.` prefix.
    Loaded with `weights_only=True`: a checkpoint from the internet cannot
    run code here. Needs torch (the `convert` extra).
    """
    try:
        import torch
    except ImportError:
        raise ImportError(
            "Converting a PyTorch checkpoint needs torch: pip install 'keras-pyramid[convert]'"
        ) from None
    path = os.fspath(path)
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if not name.endswith("/")]
            if len(members) != 1:
                raise ValueError(
                    f"`checkpoint` zip must hold one file, it holds {members}. "
                    f"Received: checkpoint={path!r}"
                )
            source = io.BytesIO(archive.read(members[0]))
    else:
        source = path
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a bad file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"`checkpoint` is not a loadable PyTorch file ({type(error).__name__}: "
            f"{first_line}). Received: checkpoint={path!r}"
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise ValueError(
            "`checkpoint` holds neither a state dict nor a dict with `state_dict`. "
            f"Received: checkpoint={path!r}"
        )
    return {
        key.removeprefix("module."): value.detach().cpu().numpy()
        for key, value in checkpoint.items()
        if not key.endswith("num_batches_tracked")
    }


def source_prefix(layer_name, source, bottleneck):
    """The checkpoint key prefix of one of our layers (the module doc's table)."""
    fixed = _OUTSIDE_UNITS[source]
    if layer_name in fixed:
        return fixed[layer_name]
    match = _UNIT.match(layer_name)
    if match is None:
        raise CheckpointMismatch(f"layer {layer_name!r} has no counterpart in a {source} "
                                 "checkpoint")
    stage, unit, kind, index = match.groups()
    if source == "official":
        return f"layer{stage}.{int(unit) - 1}.{kind}{index}"
    unit_prefix = f"features.stage{stage}.unit{unit}"
    last_bn = 4 if bottleneck else 3
    if kind == "bn" and int(index) == last_bn:
        return f"{unit_prefix}.bn"
    return f"{unit_prefix}.body.conv{index}.{kind}"


def weighted_layers(model):
    """The conv, BatchNorm and dense layers of `model`, in order, the branch
    layers inside a `SkippableBranch` included."""
    from keras_pyramid.models.skipping import SkippableBranch

    kinds = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)
    layers = []
    for layer in model.layers:
        layers.extend(layer.branch if isinstance(layer, SkippableBranch) else [layer])
    return [layer for layer in layers if isinstance(layer, kinds)]


def _keras_values(layer, prefix):
    """The layer's weights from the checkpoint, in Keras' order and layout."""
    if isinstance(layer, keras.layers.Conv2D):
        return [(f"{prefix}.weight", lambda w: np.transpose(w, (2, 3, 1, 0)))]
    if isinstance(layer, keras.layers.Dense):
        return [(f"{prefix}.weight", np.transpose), (f"{prefix}.bias", None)]
    return [(f"{prefix}.{name}", None) for name in _BN_TENSORS]


def convert_into(model, state_dict, source, bottleneck):
    """Sets `model`'s weights from `state_dict` (see `read_state_dict`).

    Every conv, BatchNorm and dense layer must find its tensors with equal
    shapes, and every tensor must be used: otherwise `CheckpointMismatch`,
    naming the first layer (or tensor) that does not fit. A model without
    its top (`include_top=False`) leaves the classifier's tensors unused on
    purpose. Returns the model.
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: source={source!r}")
    unused = {key for key in state_dict if not key.endswith("num_batches_tracked")}
    has_top = False
    for layer in weighted_layers(model):
        has_top = has_top or layer.name == "predictions"
        prefix = source_prefix(layer.name, source, bottleneck)
        values = []
        for variable, (key, to_keras) in zip(layer.weights,
                                              _keras_values(layer, prefix)):
            if key not in state_dict:
                raise CheckpointMismatch(
                    f"the checkpoint has no {key!r} for layer {layer.name!r} "
                    f"(shape {tuple(variable.shape)}): is it a {source} checkpoint of "
                    f"{model.name}?"
                )
            value = state_dict[key] if to_keras is None else to_keras(state_dict[key])
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointMismatch(
                    f"layer {layer.name!r} does not fit: {tuple(variable.shape)} in "
                    f"{model.name}, {tuple(value.shape)} in the checkpoint ({key}); the "
                    "checkpoint is of another configuration"
                )
            values.append(value)
            unused.discard(key)
        layer.set_weights(values)
    if not has_top:
        top = source_prefix("predictions", source, bottleneck)
        unused -= {f"{top}.weight", f"{top}.bias"}
    if unused:
        raise CheckpointMismatch(
            f"the checkpoint has {len(unused)} tensor{'s' if len(unused) > 1 else ''} "
            f"{model.name} has no place for, "
            f"e.g. {sorted(unused)[0]!r}: it is of a deeper or other configuration"
        )
    return model


def source_statistics(source, dataset, variant):
    """(mean, std), 0-255 scale, that a source's checkpoints were trained with:
    imgclsmob's transforms for pytorchcv (`presets`), the official code's
    (this package's variant defaults) for "official"."""
    from keras_pyramid.models import presets
    from keras_pyramid.models.pyramidnet import VARIANTS

    if source == "pytorchcv":
        if dataset == "imagenet":
            return presets.IMGCLSMOB_IMAGENET_MEAN, presets.IMGCLSMOB_IMAGENET_STD
        return presets.IMGCLSMOB_CIFAR_MEAN, presets.IMGCLSMOB_CIFAR_STD
    return VARIANTS[variant].mean, VARIANTS[variant].std


def converted_model(checkpoint, name, source, dataset):
    """The registered model `name` with the weights of a PyTorch `checkpoint`
    of `source` trained on `dataset` (a tag of `presets.DATASET_TAGS`): its
    class count and the preprocessing of that source, so that it takes raw
    0-255 pixels. Any regularization of the configuration works (the
    regularizers have no weights)."""
    from keras_pyramid.applications import PRESETS, build
    from keras_pyramid.models.pyramidnet import built_shapes_first
    from keras_pyramid.models.presets import DATASET_TAGS

    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: source={source!r}")
    if dataset not in DATASET_TAGS:
        raise ValueError(f"`dataset` must be one of {tuple(DATASET_TAGS)}. "
                         f"Received: dataset={dataset!r}")
    if name not in PRESETS:
        build(name)  # its ValueError lists the valid names
    state_dict = read_state_dict(checkpoint)
    preset = PRESETS[name]
    mean, std = source_statistics(source, dataset, preset["variant"])
    model = built_shapes_first(build, name, classes=DATASET_TAGS[dataset][0], mean=mean,
                               std=std)
    return convert_into(model, state_dict, source, preset["bottleneck"])
