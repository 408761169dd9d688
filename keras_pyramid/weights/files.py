"""Model and weights files from anywhere, loaded safely or refused in one line.

    model = load_keras_file("model.keras")          # architecture and weights
    load_weights_file(model, "model.weights.h5")    # weights into `model`

A file can be truncated, random, of another architecture or hostile (a
`Lambda` layer, a config naming `os.system`). Each then raises
`UnloadableFile`, a ValueError of one line that names the file and what is
wrong with it, so every program prints it as it prints a bad argument.
Architectures are rebuilt in Keras' safe mode (no Python code from a file is
run, no Lambda deserialized) and nothing is unpickled.
"""

import json
import os
import re
import zipfile

import keras

from keras_pyramid.models.init import built_shapes_first

CONFIG = "config.json"  # the architecture inside a .keras archive
# Keras' load_weights on a misfit: "... for object <Conv2D name=N, ...> ...
# variable.shape=(3, 3, 16, 18), Received: value.shape=(3, 3, 16, 20)" (the
# value's shape is "torch.Size([3, 3, 16, 20])" under torch).
_MISFIT_LAYER = re.compile(r"name=([^,>\s]+)")
_MISFIT_SHAPES = re.compile(
    r"variable\.shape=\(([\d, ]*)\), Received: value\.shape=[^\d)]*([\d, ]*)")


class UnloadableFile(ValueError):
    """A model or weights file that cannot be loaded; `reason` says why, without the path."""

    def __init__(self, path, reason):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path} cannot be loaded: {reason}")


class WeightsMisfit(UnloadableFile):
    """A readable weights file of another architecture than the model's."""


def first_sentence(error):
    """The innermost reason of `error` in one short line, with its type.

    Keras wraps a failing layer's error in its model's ("... Exception
    encountered: REASON") and appends whole configs and arrays after it.
    """
    text = str(error).rsplit("Exception encountered:", 1)[-1].strip()
    line = text.splitlines()[0].strip() if text else ""
    sentence = line.split(". ", 1)[0].rstrip(".")
    return f"{type(error).__name__}: {sentence[:200]}" if sentence else type(error).__name__


def _read_config(path):
    """The architecture (`config.json`) of a `.keras` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(CONFIG))
    except KeyError:
        raise UnloadableFile(path, f"the archive holds no {CONFIG}: not a Keras model") from None
    except ValueError as error:  # JSON, or bytes that are not text
        raise UnloadableFile(path, f"its {CONFIG} is not JSON ({first_sentence(error)})") \
            from None
    except Exception as error:  # noqa: BLE001  BadZipFile, zlib.error, EOFError, OSError...
        raise UnloadableFile(path, "it is not a .keras archive (a zip file): truncated or "
                                   f"corrupt ({first_sentence(error)})") from None


def is_whole_archive(path):
    """Whether the `.keras` file at `path` is a whole zip archive (every
    member's CRC checks) with its architecture: a cheap test, without
    building the model, that a killed write or a truncation did not happen."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None and CONFIG in archive.namelist()
    except Exception:  # noqa: BLE001  BadZipFile, zlib.error, EOFError, OSError...
        return False


def load_keras_file(path):
    """The model of a `.keras` file, not compiled; `UnloadableFile` for
    anything else.

    Its variables are created shapes first: the file's values replace them,
    so no initializer needs to run (under JAX each compiles an XLA program
    per weight shape: measured here, 0.7 s instead of 72 s for PyramidNet-20
    on a shared 2-core CPU).
    """
    path = os.fspath(path)
    config = _read_config(path)
    if not isinstance(config, dict):
        raise UnloadableFile(path, f"its {CONFIG} is not a Keras object")
    config["compile_config"] = None  # what compile=False does
    try:
        # safe_mode=True: a Lambda's Python code is refused, and a class
        # resolves only to Keras' own or a registered one (this package's):
        # a config naming os.system is refused, never run.
        model = built_shapes_first(keras.saving.deserialize_keras_object, config,
                                   safe_mode=True)
    except Exception as error:  # noqa: BLE001  a hostile config fails in any of Keras' ways
        raise UnloadableFile(path, f"its architecture is refused ({first_sentence(error)})") \
            from None
    if not isinstance(model, keras.Model):
        raise UnloadableFile(path, f"it holds a {type(model).__name__}, not a model")
    try:
        model.load_weights(path)  # Keras reads the weights inside a .keras archive
    except Exception as error:  # noqa: BLE001  the archive's weights: truncated, foreign
        raise UnloadableFile(path, f"its weights do not load ({first_sentence(error)})") \
            from None
    return model


def _misfit(error):
    """Keras' load_weights misfit as "layer 'N' is (...) in the model, (...) in the file"."""
    text = str(error)
    shapes = _MISFIT_SHAPES.search(text)
    layer = _MISFIT_LAYER.search(text)
    if shapes and layer:
        return (f"layer {layer.group(1)!r} is ({shapes.group(1)}) in the model, "
                f"({shapes.group(2)}) in the file")
    return first_sentence(error)


def weights_file_error(path, error):
    """The `UnloadableFile` for Keras' `load_weights(path)` having raised
    `error` (itself when it is one already)."""
    if isinstance(error, UnloadableFile):
        return error
    if isinstance(error, OSError):  # h5py: no HDF5 signature, truncated
        return UnloadableFile(path, f"it is not a readable HDF5 weights file: truncated or "
                                    f"corrupt ({first_sentence(error)})")
    return WeightsMisfit(path, f"it holds weights of another architecture: {_misfit(error)}")


def load_weights_file(model, path):
    """`model.load_weights(path)` for a `.weights.h5` file; `UnloadableFile`
    (`WeightsMisfit` for another architecture) naming the file otherwise."""
    path = os.fspath(path)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001  h5py and Keras fail in several ways
        raise weights_file_error(path, error) from None
    return model
