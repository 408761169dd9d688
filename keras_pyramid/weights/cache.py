"""Trained weights by name: fetch once, convert once, offline after that.

`load_trained(model, architecture, entry)` gives a model the weights of a
`presets.TrainedWeights` entry of its `presets.Architecture`. Everything lives in Keras' cache,
`$KERAS_HOME/models/keras_pyramid/` (`~/.keras` without KERAS_HOME):

    NAME-ERROR-SHA1.pth               the published PyTorch file, SHA-1 checked
    NAME-ERROR-SHA1.weights.h5        it, converted: the plain model's weights
    NAME-ERROR-SHA1.weights.h5.json   the converted file's SHA-256 and its source

1. A converted file whose SHA-256 matches its record is loaded: no network,
   no torch.
2. Otherwise the `.pth` is needed. One in the cache with the published SHA-1
   is used; a missing or corrupt one is fetched with `keras.utils.get_file`
   (the release's `.pth.zip`), unzipped and checked again. A file that does
   not match its checksum is deleted, never loaded: fetched once more, then
   refused.
3. It is converted (`convert.convert_into`, needs torch) into the plain
   model of its configuration, saved as `.weights.h5`, and its checksum
   recorded, each file written to a temporary name and renamed into place.

The converted file is a Keras `.weights.h5` of the plain network, so it also
loads into the `_drop`, `_sepdrop` and `_shakedrop` models of the same
configuration (regularizers have no weights) and, without its classifier,
into `include_top=False` backbones.
"""

import hashlib
import json
import os
import zipfile

import keras

from keras_pyramid.utils.files import atomic_write_json, read_json, temporary_path

CACHE_SUBDIR = os.path.join("models", "keras_pyramid")


class WeightsUnavailable(OSError):
    """The weights are not in the cache and cannot be fetched."""


class ChecksumMismatch(ValueError):
    """A file does not have the checksum it must have."""


def cache_dir():
    """Where `keras.utils.get_file` caches our files (KERAS_HOME or ~/.keras)."""
    # Keras' own cache root, as get_file computes it; it has no public accessor.
    from keras.src.backend.config import keras_home

    return os.path.join(os.path.expanduser(keras_home()), CACHE_SUBDIR)


def file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_paths(entry, directory=None):
    directory = directory or cache_dir()
    stem = entry.file_name.removesuffix(".pth")
    converted = os.path.join(directory, f"{stem}.weights.h5")
    return {
        "checkpoint": os.path.join(directory, entry.file_name),
        "converted": converted,
        "record": converted + ".json",
    }


def _verified_conversion(entry, paths):
    """The converted file if it is intact and of this entry's source file."""
    if not (os.path.isfile(paths["converted"]) and os.path.isfile(paths["record"])):
        return None
    try:
        record = read_json(paths["record"])
        intact = (record.get("source_sha1") == entry.sha1
                  and record.get("sha256") == file_digest(paths["converted"], "sha256"))
    except (OSError, ValueError):
        intact = False
    if intact:
        return paths["converted"]
    for path in (paths["converted"], paths["record"]):
        os.remove(path)  # refused: converted again below
    return None


def _unzip(zip_path, member, destination):
    temporary = temporary_path(destination)
    with zipfile.ZipFile(zip_path) as archive, open(temporary, "wb") as out:
        with archive.open(member) as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
    os.replace(temporary, destination)


def _intact(path, sha1):
    """Whether `path` exists with this SHA-1; a file without it is deleted."""
    if not os.path.isfile(path):
        return False
    if file_digest(path, "sha1") == sha1:
        return True
    os.remove(path)  # corrupt, truncated or foreign: never loaded
    return False


def fetch_checkpoint(entry, directory=None):
    """The published `.pth` of `entry`, SHA-1 checked, fetched if need be."""
    checkpoint = cached_paths(entry, directory)["checkpoint"]
    if _intact(checkpoint, entry.sha1):
        return checkpoint
    # get_file falls back to /tmp for a folder that does not exist yet.
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    zip_name = entry.file_name + ".zip"
    for attempt in range(2):
        try:
            zip_path = keras.utils.get_file(
                zip_name, entry.url, cache_dir=os.path.dirname(checkpoint),
                cache_subdir="", force_download=attempt > 0,
            )
        except Exception as error:  # get_file wraps every fetch failure in Exception
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise WeightsUnavailable(
                f"cannot fetch {zip_name} ({reason}). Put it, or the {entry.file_name} "
                f"inside it (SHA-1 {entry.sha1}), in {os.path.dirname(checkpoint)} and "
                f"retry; its address is {entry.url}"
            ) from None
        try:
            _unzip(zip_path, entry.file_name, checkpoint)
        except (zipfile.BadZipFile, KeyError):
            pass  # a truncated or foreign zip: fetched again, or refused below
        os.remove(zip_path)
        if _intact(checkpoint, entry.sha1):
            return checkpoint
    raise ChecksumMismatch(
        f"{entry.file_name} fetched from {entry.url} does not have its SHA-1 {entry.sha1} "
        "(twice): refused"
    )


def plain_model(architecture, entry):
    """The plain network these weights were trained as, with their
    preprocessing, its variables filled by NumPy (seconds under JAX, too)."""
    from keras_pyramid.models.pyramidnet import PyramidNet, built_shapes_first

    return built_shapes_first(PyramidNet, **architecture.arguments(), classes=entry.classes,
                              mean=entry.mean, std=entry.std)


def converted_weights(architecture, entry, directory=None):
    """The path of `entry`'s weights as a `.weights.h5` of the plain model,
    converting (and fetching) them the first time."""
    paths = cached_paths(entry, directory)
    converted = _verified_conversion(entry, paths)
    if converted:
        return converted
    checkpoint = fetch_checkpoint(entry, directory)
    from keras_pyramid.weights.convert import convert_into, read_state_dict

    model = plain_model(architecture, entry)
    convert_into(model, read_state_dict(checkpoint), entry.source, architecture.bottleneck)
    temporary = temporary_path(paths["converted"])
    model.save_weights(temporary)
    os.replace(temporary, paths["converted"])
    atomic_write_json(paths["record"], {
        "sha256": file_digest(paths["converted"], "sha256"),
        "source": entry.source,
        "source_file": entry.file_name,
        "source_sha1": entry.sha1,
        "url": entry.url,
    })
    return paths["converted"]


def load_trained(model, architecture, entry, directory=None):
    """Loads `entry`'s weights into `model` (its configuration's plain,
    regularized or backbone-only network). Returns the model."""
    from keras_pyramid.models.skipping import SkippableBranch

    path = converted_weights(architecture, entry, directory)
    if any(isinstance(layer, SkippableBranch) for layer in model.layers):
        # Its branches hold their layers inside one layer, which a weights
        # file of the flat network does not match: through the plain model, by name.
        plain = plain_model(architecture, entry)
        plain.load_weights(path)
        return copy_weights(plain, model)
    model.load_weights(path)
    return model


def copy_weights(source, target):
    """Copies the weights of `source` into `target` layer by layer, by name
    (conv, BatchNorm and dense layers), e.g. from a `.keras` file of another
    regularization. The classifier is copied only when `target` has one.
    Raises ValueError naming the first layer that is missing or differs."""
    from keras_pyramid.weights.convert import weighted_layers

    available = {layer.name: layer for layer in weighted_layers(source)}
    for layer in weighted_layers(target):
        origin = available.get(layer.name)
        if origin is None:
            raise ValueError(f"`weights` has no layer {layer.name!r} of {target.name}")
        shapes = [tuple(w.shape) for w in layer.weights]
        origin_shapes = [tuple(w.shape) for w in origin.weights]
        if shapes != origin_shapes:
            raise ValueError(
                f"`weights` layer {layer.name!r} does not fit: {shapes} in {target.name}, "
                f"{origin_shapes} in {source.name}"
            )
        layer.set_weights(origin.get_weights())
    return target
