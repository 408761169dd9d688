"""Trained weights by name: fetch once, convert once, offline after that.

`converted_weights(architecture, entry)` returns the path of a
`presets.TrainedWeights` entry of its `presets.Architecture`, converted to
this project's layer names; it builds no model (the builder,
`keras_pyramid.PyramidNet`, assigns the file's tensors by name). Everything
lives in Keras' cache, `$KERAS_HOME/models/keras_pyramid/` (`~/.keras`
without KERAS_HOME):

    NAME-ERROR-SHA1.pth         the published PyTorch file, SHA-1 checked
    NAME-ERROR-SHA1.npz         it, converted: {layer name: tensors} (`convert`)
    NAME-ERROR-SHA1.npz.json    the converted file's SHA-256 and its source

1. A converted file whose SHA-256 matches its record is loaded: no network,
   no torch.
2. Otherwise the `.pth` is needed. One in the cache with the published SHA-1
   is used; a missing or corrupt one is fetched with `keras.utils.get_file`
   (the release's `.pth.zip`), unzipped and checked again. A file that does
   not match its checksum is deleted, never loaded: fetched once more, then
   refused.
3. It is converted (`convert.converted_tensors`, needs torch), saved, and
   its checksum recorded, each file written to a temporary name and renamed
   into place.

The converted tensors are keyed by layer name, so they load into the plain,
`_drop`, `_sepdrop` and `_shakedrop` networks of the configuration
(regularizers have no weights), flat or `skip_dropped`, and, without their
classifier, into `include_top=False` backbones.
"""

import hashlib
import os
import zipfile

import keras

# Keras' own cache root, as get_file computes it; it has no public accessor.
from keras.src.backend.config import keras_home

from keras_pyramid.utils.files import atomic_write_json, read_json, temporary_path
from keras_pyramid.weights import convert

CACHE_SUBDIR = os.path.join("models", "keras_pyramid")


class WeightsUnavailable(OSError):
    """The weights are not in the cache and cannot be fetched."""


class ChecksumMismatch(ValueError):
    """A file does not have the checksum it must have."""


def cache_dir():
    """Where `keras.utils.get_file` caches our files (KERAS_HOME or ~/.keras)."""
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
    converted = os.path.join(directory, f"{stem}.npz")
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


def converted_weights(architecture, entry, directory=None):
    """The path of `entry`'s tensors converted to our layer names (`.npz`,
    see `convert.read_tensors`), converting (and fetching) them the first
    time."""
    paths = cached_paths(entry, directory)
    converted = _verified_conversion(entry, paths)
    if converted:
        return converted
    checkpoint = fetch_checkpoint(entry, directory)
    tensors = convert.converted_tensors(
        convert.read_state_dict(checkpoint), entry.source, depth=architecture.depth,
        bottleneck=architecture.bottleneck, variant=architecture.variant)
    convert.save_tensors(paths["converted"], tensors)
    atomic_write_json(paths["record"], {
        "sha256": file_digest(paths["converted"], "sha256"),
        "source": entry.source,
        "source_file": entry.file_name,
        "source_sha1": entry.sha1,
        "url": entry.url,
    })
    return paths["converted"]
