"""Trained weights by name: fetch once, convert, and trust only what is pinned.

`converted_weights(architecture, entry)` returns the path of a
`presets.TrainedWeights` entry of its `presets.Architecture`, converted to
this project's layer names; it builds no model (the builder,
`keras_pyramid.PyramidNet`, assigns the file's tensors by name). Everything
lives in Keras' cache, `$KERAS_HOME/models/keras_pyramid/` (`~/.keras`
without KERAS_HOME):

    NAME-ERROR-SHA1.pth         the published PyTorch file, SHA-1 checked
    NAME-ERROR-SHA1.npz         it, converted: {layer name: tensors} (`convert`)
    NAME-ERROR-SHA1.npz.json    where it came from, and its `tensors_sha256`

Only the presets are trusted, never the cache's own record (anyone who can
write a file there can write its record too):

1. An entry with a pinned `converted_sha256` is served from the converted
   file when its tensors have that digest (`convert.tensors_digest`): no
   network, no torch.
2. Otherwise the `.pth` is needed. One in the cache with the published SHA-1
   is used; a missing or corrupt one is fetched with `keras.utils.get_file`
   (the release's `.pth.zip`), unzipped and checked again. It is converted
   (`convert.converted_tensors`, needs torch), and that conversion is what
   is served: it must have the pinned digest where there is one, and a
   cached file with other tensors is replaced. So without a pin every load
   re-checks the `.pth` and converts it again.
3. A file that fails its check is deleted, never loaded, and fetched or
   converted again; a second failure is `ChecksumMismatch`. Each file is
   written to a temporary name and renamed into place.

The record's `tensors_sha256` is the value to pin in
`presets.CONVERTED_SHA256` once the file has been fetched somewhere.

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

from keras_pyramid.utils.files import atomic_path, atomic_write_json
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


def _remove_conversion(paths):
    for path in (paths["converted"], paths["record"]):
        if os.path.exists(path):
            os.remove(path)


def _holds(paths, digest):
    """Whether the converted file holds tensors of `digest`; one that does
    not (other tensors, corrupt, unreadable) is deleted with its record."""
    if not os.path.isfile(paths["converted"]):
        return False
    try:
        if convert.tensors_digest(convert.read_tensors(paths["converted"])) == digest:
            return True
    except ValueError:  # not a converted-tensors file at all
        pass
    _remove_conversion(paths)  # refused: never loaded, converted again
    return False


def _unzip(zip_path, member, destination):
    with atomic_path(destination) as temporary, zipfile.ZipFile(zip_path) as archive:
        with archive.open(member) as source, open(temporary, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)


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


def _conversion(architecture, entry, directory):
    """The tensors of `entry`'s SHA-1-checked `.pth`, converted (needs torch)."""
    checkpoint = fetch_checkpoint(entry, directory)
    try:
        state_dict = convert.read_state_dict(checkpoint)
    except ImportError as error:  # say why a cached conversion is not enough
        raise ImportError(f"{error} ({entry.file_name}: a cached conversion is served without "
                          "torch only where presets.CONVERTED_SHA256 pins its digest)") from None
    return convert.converted_tensors(
        state_dict, entry.source, depth=architecture.depth,
        bottleneck=architecture.bottleneck, variant=architecture.variant)


def converted_weights(architecture, entry, directory=None):
    """The path of `entry`'s tensors converted to our layer names (`.npz`,
    see `convert.read_tensors`), checked as the module doc says: against the
    pinned `entry.converted_sha256`, or else against a conversion of the
    published `.pth` made now."""
    paths = cached_paths(entry, directory)
    pinned = entry.converted_sha256
    if pinned and _holds(paths, pinned):
        return paths["converted"]
    tensors = _conversion(architecture, entry, directory)
    digest = convert.tensors_digest(tensors)
    if pinned and digest != pinned:
        raise ChecksumMismatch(
            f"{entry.file_name} (SHA-1 {entry.sha1}) converts to tensors of SHA-256 {digest}, "
            f"not the pinned {pinned}: refused (the converter or the pin is wrong)")
    if not _holds(paths, digest):
        convert.save_tensors(paths["converted"], tensors)
        atomic_write_json(paths["record"], {
            "tensors_sha256": digest,
            "source": entry.source,
            "source_file": entry.file_name,
            "source_sha1": entry.sha1,
            "url": entry.url,
        })
    return paths["converted"]
