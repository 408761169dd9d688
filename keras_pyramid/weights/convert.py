"""PyramidNet checkpoints from PyTorch -> tensors keyed by our layer names, exactly.

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

`converted_tensors` goes by the configuration's layer names
(`pyramidnet.weighted_layer_names`): every layer must find its tensors and
every tensor must be used, or `CheckpointMismatch` names the first that
does not. The result, `{layer name: [arrays in Keras' order]}`, loads into
any network of the configuration (flat or `skip_dropped`, any
regularization) with `assign.assign_by_name`, which checks the shapes; it
is stored as `.npz` (`save_tensors`, `read_tensors`); `tensors_digest` is its
checksum, the same for every exact conversion of one checkpoint.
"""

import hashlib
import io
import os
import re
import zipfile

import numpy as np

from keras_pyramid.models import presets
from keras_pyramid.models.plan import CLASSIFIER, weighted_layer_names
from keras_pyramid.utils.checks import check_choice
from keras_pyramid.utils.files import atomic_path
from keras_pyramid.weights.assign import HEAD, WeightsMismatch

SOURCES = ("pytorchcv", "official")
_UNIT = re.compile(r"stage(\d+)_unit(\d+)_(conv|bn)(\d)$")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# The layers outside the units, by source (the module doc's table).
_OUTSIDE_UNITS = {
    "pytorchcv": {"stem_conv": "features.init_block.conv", "stem_bn": "features.init_block.bn",
                  "head_bn": "features.post_activ.bn", CLASSIFIER: "output"},
    "official": {"stem_conv": "conv1", "stem_bn": "bn1", "head_bn": "bn_final",
                 CLASSIFIER: "fc"},
}


class CheckpointMismatch(WeightsMismatch):
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
        import torch  # optional and heavy: the `convert` extra, needed here only
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


def _tensor_layout(layer_name, prefix):
    """(checkpoint key, conversion to Keras' layout or None) of each of the
    layer's weights, in Keras' order."""
    if layer_name == HEAD:
        return [(f"{prefix}.weight", np.transpose), (f"{prefix}.bias", None)]
    if re.search(r"conv\d*$", layer_name):
        return [(f"{prefix}.weight", lambda w: np.transpose(w, (2, 3, 1, 0)))]
    return [(f"{prefix}.{name}", None) for name in _BN_TENSORS]


def converted_tensors(state_dict, source, *, depth, bottleneck=False, variant="cifar"):
    """`{layer name: [arrays]}` of the configuration (`depth`, `bottleneck`,
    `variant`) from a PyTorch `state_dict` (see `read_state_dict`) of
    `source`, in Keras' layout. Raises `CheckpointMismatch` for a missing or
    an unused tensor."""
    check_choice("source", source, SOURCES)
    configuration = f"a {variant} PyramidNet-{depth}{' (bottleneck)' if bottleneck else ''}"
    unused = {key for key in state_dict if not key.endswith("num_batches_tracked")}
    tensors = {}
    for name in weighted_layer_names(depth, bottleneck, variant):
        prefix = source_prefix(name, source, bottleneck)
        tensors[name] = []
        for key, to_keras in _tensor_layout(name, prefix):
            if key not in state_dict:
                raise CheckpointMismatch(f"the checkpoint has no {key!r} for layer {name!r}: "
                                         f"is it a {source} checkpoint of {configuration}?")
            value = np.asarray(state_dict[key])
            tensors[name].append(value if to_keras is None else to_keras(value))
            unused.discard(key)
    if unused:
        raise CheckpointMismatch(
            f"the checkpoint has {len(unused)} tensor{'s' if len(unused) > 1 else ''} "
            f"{configuration} has no place for, e.g. {sorted(unused)[0]!r}: it is of a "
            "deeper or other configuration")
    return tensors


def save_tensors(path, tensors):
    """Writes `{layer name: [arrays]}` as one `.npz` (keys `NAME/INDEX`),
    under a temporary name renamed into place."""
    arrays = {f"{name}/{index}": np.ascontiguousarray(value)
              for name, values in tensors.items() for index, value in enumerate(values)}
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **arrays)
    return path


def read_tensors(path):
    """The `{layer name: [arrays]}` that `save_tensors` wrote; a ValueError
    naming `path` for a file that is not one (truncated, corrupt, foreign).
    Never unpickles."""
    tensors = {}
    try:
        with np.load(path, allow_pickle=False) as arrays:
            keys = sorted(arrays.files, key=lambda key: (key.rsplit("/", 1)[0],
                                                          int(key.rsplit("/", 1)[1])))
            for key in keys:
                tensors.setdefault(key.rsplit("/", 1)[0], []).append(arrays[key])
    except (OSError, EOFError, ValueError, IndexError, KeyError, zipfile.BadZipFile) as error:
        # A changed byte fails zip's CRC (BadZipFile); cut short, EOFError.
        raise ValueError(f"{os.fspath(path)} is not a converted-tensors file "
                         f"({type(error).__name__}: {error})") from None
    return tensors


def tensors_digest(tensors):
    """The SHA-256 of `{layer name: [arrays]}`: names, positions, dtypes,
    shapes and values, in name order.

    What `presets.TrainedWeights.converted_sha256` pins. It is of the
    tensors, not of the `.npz` file, whose zip entries carry timestamps:
    every exact conversion of the same `.pth` gives the same digest.
    Compute it for a file with `tensors_digest(read_tensors(path))`.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        for index, value in enumerate(tensors[name]):
            value = np.asarray(value)
            value = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
            digest.update(f"{name}/{index} {value.dtype.str} {value.shape}\n".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def source_statistics(source, dataset, variant):
    """(mean, std), 0-255 scale, that a source's checkpoints were trained with:
    imgclsmob's transforms for pytorchcv (`presets`), the official code's
    (this package's variant defaults) for "official"."""
    if source == "pytorchcv":
        if dataset == "imagenet":
            return presets.IMGCLSMOB_IMAGENET_MEAN, presets.IMGCLSMOB_IMAGENET_STD
        return presets.IMGCLSMOB_CIFAR_MEAN, presets.IMGCLSMOB_CIFAR_STD
    return presets.VARIANTS[variant].mean, presets.VARIANTS[variant].std
