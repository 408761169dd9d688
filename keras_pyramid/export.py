"""Serving artifacts: a TensorFlow SavedModel in the TF Serving layout, and ONNX.

    export(model, "exports/pyramidnet", version=1)            # -> exports/pyramidnet/1/
    export("runs/x/model.keras", "exports/x", formats=("saved_model", "onnx"))
    export(model, "exports/flowers", class_names=["daisy", "rose", "tulip"])

The served function is the network's INFERENCE rule, traced with
`training=False`: each regularizer scales its branch by its keep probability
(`(1 - drop_rate) * F`; ShakeDrop by `E[b + alpha - b * alpha]`), so the graph
holds no random op and two calls give identical outputs.

Signature `serving_default`:

    inputs   image          uint8   [batch, height, width, 3]  raw 0-255 RGB
    outputs  logits         float32 [batch, classes]
             probabilities  float32 [batch, classes]  softmax(logits)
             class_id       int32   [batch]            argmax(logits)
             class_name     string  [batch]            class_names[class_id]

    asset    assets/class_names.txt  one name per line, in class order (UTF-8);
             `tf.saved_model.load(folder).class_names_file.asset_path`

`height` and `width` are the model's own input size, any fixed size (a model
built with `None` in its input shape is refused).
`class_names` default to the indices ("0", "1", ...). `model.onnx` serves
the numbers only (no `class_name`: string outputs are awkward for
onnxruntime) and carries the names in its metadata (`class_names`, a JSON
list: `session.get_modelmeta().custom_metadata_map`).

Images are channels-last whatever the model's data format (the transpose is
inside the graph), and the model's normalization is inside too, so a client
sends pixels as they come.

Backends: TensorFlow and JAX export natively through `model.export`. Keras
cannot write a SavedModel from the PyTorch backend, so a torch model is saved
as `.keras` and exported by a TensorFlow subprocess; ONNX (Keras' tf2onnx
path) is always produced under TensorFlow the same way. The caller sees one
function either way. `export_parity.compare` measures how far the written
artifacts are from the Keras model.

Writes are all-or-nothing: the artifact is built in a hidden sibling folder
(`.tmp-VERSION-PID`, which TF Serving ignores because it is not a number) and
renamed into place, so a crash never leaves a half-written version. The
staging folders of processes that died (killed mid-export) are removed by
the next export into the same directory; a live process's are left alone. A
full disk is an `ExportError` ("no space left on ..."), with the staging
folder removed and the existing version, if any, untouched.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
from keras import ops

from keras_pyramid.models.plan import CLASSIFIER, find_classifier
from keras_pyramid.training.run_layout import MODEL_FILE
from keras_pyramid.utils import checks
from keras_pyramid.utils.files import is_full_disk
from keras_pyramid.utils.processes import process_alive
from keras_pyramid.weights.files import UnloadableFile, load_keras_file

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities", "class_id")  # ServingModel's; ONNX serves these
NAME_OUTPUT = "class_name"  # SavedModel only, added around the model
CLASS_NAMES_FILE = "class_names.txt"  # in the SavedModel's assets/
CLASS_NAMES_ATTRIBUTE = "class_names_file"  # the loaded SavedModel's Asset
FORMATS = ("saved_model", "onnx")
ONNX_FILE = "model.onnx"
# A staging folder `.tmp-VERSION-PID`, or `.tmp-VERSION-PID-old`: the version
# it replaced, renamed aside for the instant between two renames.
STAGING = re.compile(r"^\.tmp-(?P<version>\d+)-(?P<pid>\d+)(?P<old>-old)?$")


class ExportError(RuntimeError):
    """The model cannot be exported as asked (and nothing was written)."""


class ServingModel(keras.Model):
    """uint8 RGB images in, `{logits, probabilities, class_id}` out.

    `logits` are the classifier's pre-activation `W h + b` (whatever its
    `classifier_activation`), computed in float32 even for a mixed-precision
    network; `probabilities = softmax(logits)`; `class_id = argmax(logits)`.

    Args:
        classifier: a PyramidNet (or any `keras.Model`) with a top `Dense`
            layer of the classes (`classifier_head`).
        image_size: (height, width) served when the model takes any size
            (an `Input((None, None, 3))`); a fixed model's own size wins.
    """

    def __init__(self, classifier, image_size=None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{classifier.name}_serving"), **kwargs)
        head = classifier_head(classifier)
        self.classifier = classifier
        self.head = head
        shape = tuple(classifier.inputs[0].shape[1:])
        self.channels_first = shape[0] == 3 and shape[-1] != 3
        self.image_shape = (shape[1], shape[2], 3) if self.channels_first else shape
        if None in self.image_shape[:2] and image_size is not None:
            given = iter(tuple(image_size))
            self.image_shape = (*(side or next(given) for side in self.image_shape[:2]), 3)
        if None in self.image_shape:
            raise ExportError(f"the model's input size must be fixed to be served (build it "
                              f"with input_shape=(height, width, 3)). Received: input shape "
                              f"{shape}")
        # The model's own Normalization layer keeps mean and variance as eager
        # tensors that a traced function captures, and tf2onnx turns captures
        # into extra graph inputs. So the wrapper applies the same formula with
        # constants and serves the rest of the network from the layer's output.
        first = classifier.layers[1] if len(classifier.layers) > 1 else None
        if isinstance(first, keras.layers.Normalization) and not first.invert:
            self.mean = keras.ops.convert_to_numpy(first.mean).astype("float32")
            self.scale = np.maximum(
                np.sqrt(keras.ops.convert_to_numpy(first.variance)), keras.config.epsilon()
            ).astype("float32")
            start = first.output
        else:
            self.mean = self.scale = None
            start = classifier.inputs[0]
        self.backbone = keras.Model(start, head.input, name="features")

    def call(self, image):
        x = ops.cast(image, "float32")
        if self.channels_first:
            x = ops.transpose(x, (0, 3, 1, 2))
        if self.mean is not None:
            x = (x - ops.convert_to_tensor(self.mean)) / ops.convert_to_tensor(self.scale)
        features = ops.cast(self.backbone(x, training=False), "float32")
        logits = ops.matmul(features, ops.cast(self.head.kernel, "float32"))
        if self.head.use_bias:
            logits = logits + ops.cast(self.head.bias, "float32")
        return {
            "logits": logits,
            "probabilities": ops.softmax(logits, axis=-1),
            "class_id": first_argmax(logits),
        }

    def input_signature(self):
        return [keras.InputSpec(shape=(None, *self.image_shape), dtype="uint8",
                                name=INPUT_NAME)]


def classifier_head(model):
    """The model's classifier `Dense` layer, whose `units` is the class count,
    found by its role (`plan.find_classifier`), not only by its name."""
    head = find_classifier(model)
    if head is None:
        raise ExportError(
            f"the model needs its classifier (a Dense layer of the classes on top, or named "
            f"{CLASSIFIER!r}, i.e. include_top=True) to be served. Received: model="
            f"{model.name!r}, top layer {model.layers[-1].__class__.__name__}")
    return head


def check_class_names(class_names, classes):
    """`class_names` as a list of `classes` str; None gives "0", "1", ...
    A name holds no line break: the asset file has one name per line."""
    if class_names is None:
        return [str(index) for index in range(classes)]
    try:
        names = None if isinstance(class_names, (str, bytes)) else list(class_names)
    except TypeError:
        names = None
    if (names is None or len(names) != classes
            or not all(isinstance(n, str) and n == "".join(n.splitlines()) for n in names)):
        count = "" if names is None else f" ({len(names)} names)"
        raise ValueError(f"`class_names` must be a sequence of {classes} str (one per class of "
                         f"the classifier, without line breaks). Received: "
                         f"class_names={class_names!r}{count}")
    return names


def first_argmax(logits):
    """`argmax(logits, axis=-1)` as int32, the lowest index on ties, from ops
    every exporter knows: Keras' TF argmax adds a bitcast (its -0.0 fix) that
    ONNX cannot express, and JAX lowers top_k to a StableHLO op newer than
    TensorFlow 2.21 can load."""
    classes = ops.shape(logits)[-1]
    is_max = ops.equal(logits, ops.max(logits, axis=-1, keepdims=True))
    index = ops.where(is_max, ops.arange(classes, dtype="int32"), classes)
    return ops.min(index, axis=-1)


def load_classifier(path):
    """The Keras model in a `.keras` file (or a run directory's `model.keras`),
    loaded by the one loader (`weights.files.load_keras_file`); `ExportError`
    when there is none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"no model file at {path!r}: pass a .keras file or a run directory "
                          f"that holds {MODEL_FILE}")
    if not path.endswith(".keras"):
        raise ExportError(f"the model must be a Keras `.keras` file. Received: {path!r}")
    try:
        # Not compiled: the file keeps its jit_compile, which this backend may
        # not support, and serving needs no optimizer. A hostile or broken
        # file is one line, its config not dumped.
        return load_keras_file(path)
    except UnloadableFile as error:
        raise ExportError(str(error)) from None


def check_version(version):
    checks.check_int("version", version, minimum=1)  # TF Serving's version folders


def check_formats(formats):
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ValueError(f"`formats` must be a non-empty subset of {FORMATS}. "
                         f"Received: formats={formats!r}")
    return formats


def export(model, directory, version=1, *, formats=("saved_model",), overwrite=False,
           verbose=False, class_names=None, image_size=None):
    """Writes `directory/version/` (a SavedModel; `model.onnx` inside with "onnx").

    Args:
        model: a `keras.Model` classifier, or the path of a `.keras` file or
            of a run directory holding `model.keras`.
        directory: the model's folder in the TF Serving layout.
        version: int >= 1, the version folder.
        formats: a subset of `("saved_model", "onnx")`.
        overwrite: replace an existing version (atomically) instead of
            raising `FileExistsError`.
        verbose: print Keras' export messages.
        class_names: one str per class, in class order: the SavedModel's
            `class_name` output and its `assets/class_names.txt` (and the
            ONNX metadata). None: "0", "1", ...
        image_size: (height, width) to serve a model that takes any size
            (its input `(None, None, 3)`); ignored for a fixed-size model.

    Returns:
        The path of the version folder.
    """
    check_version(version)
    formats = check_formats(formats)
    directory = os.path.abspath(os.fspath(directory))
    target = os.path.join(directory, str(version))
    remove_stale_staging(directory)  # may put back a version a killed export took aside
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target!r} already exists: choose another version or "
                              f"pass overwrite=True")
    if isinstance(model, (str, os.PathLike)):
        model = load_classifier(model)
    serving = ServingModel(model, image_size)  # checks the classifier before any write
    class_names = check_class_names(class_names, serving.head.units)
    # One call builds the wrapper (export refuses unbuilt models); all its
    # weights are the classifier's own.
    serving(np.zeros((1, *serving.image_shape), "uint8"))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the output directory {directory!r}: {error}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ExportError(f"the output directory {directory!r} is not writable")
    staging = os.path.join(directory, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write(serving, staging, formats, verbose, class_names)
        _replace_directory(staging, target)
    except Exception as error:
        if is_full_disk(error):
            raise ExportError(f"no space left on the device of {directory} while writing "
                              f"version {version}: nothing was replaced (the partial export "
                              f"was removed); free some space and export again") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_stale_staging(directory):
    """Removes the staging folders in `directory` left by processes that are
    no longer alive (an export killed mid-write); a live process's are left
    alone. A killed overwrite may have left the old version renamed aside
    (`.tmp-V-PID-old`) and no version V: it is put back, since the new one
    never took its place. Returns the paths removed or restored."""
    if not os.path.isdir(directory):
        return []
    cleaned = []
    for name in sorted(os.listdir(directory)):
        match = STAGING.match(name)
        if match is None or process_alive(int(match["pid"])):
            continue
        path = os.path.join(directory, name)
        version = os.path.join(directory, str(int(match["version"])))
        try:
            if match["old"] and not os.path.exists(version):
                os.rename(path, version)
            else:
                shutil.rmtree(path)
        except OSError:
            continue  # another process cleaned it first, or we may not: not ours to fail on
        cleaned.append(path)
    return cleaned


def _write(serving, folder, formats, verbose, class_names):
    native = keras.backend.backend() in ("tensorflow", "jax")
    if "saved_model" in formats and native:
        _write_saved_model(serving, folder, verbose, class_names)
    if "onnx" in formats and keras.backend.backend() == "tensorflow":
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, ONNX_FILE)
        serving.export(path, format="onnx", verbose=verbose,
                       input_signature=serving.input_signature())
        _add_onnx_metadata(path, {"class_names": json.dumps(class_names)})
    in_tensorflow = [f for f in formats
                     if keras.backend.backend() != "tensorflow"
                     and not (f == "saved_model" and native)]
    if in_tensorflow:
        _write_in_tensorflow(serving, folder, in_tensorflow, verbose, class_names)


def _add_onnx_metadata(path, properties):
    """Adds `properties` (str: str) to the ONNX file's `metadata_props`, which
    onnxruntime shows as `get_modelmeta().custom_metadata_map`."""
    import onnx

    model = onnx.load(path)
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def _write_saved_model(serving, folder, verbose, class_names):
    """`model.export(format="tf_saved_model")` spelled out with its
    `ExportArchive`, to put a shape check in front of the model and the
    class names behind it.

    Signatures: `serving_default`, the model behind `tf.ensure_shape`, plus
    `class_name`, and `serve_unchecked`, the model alone (every ExportArchive
    endpoint becomes a signature; the name warns off). A loaded signature
    checks dtypes but not shapes: without the check a 1-channel batch would
    broadcast through the normalization and give answers, and JAX's own shape
    assertion fails with a page of MLIR instead of a one-line message. The
    names are a string constant of this outer `tf.function` (under JAX the
    model's endpoint is jax2tf-converted, which has no strings), and a
    `tf.saved_model.Asset` on the archive writes them to
    `assets/class_names.txt`.
    """
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(serving)
    serve = archive.add_endpoint("serve_unchecked", serving.__call__, serving.input_signature())
    expected = (None, *serving.image_shape)

    @tf.function(input_signature=[tf.TensorSpec(expected, tf.uint8, name=INPUT_NAME)])
    def serving_default(image):
        outputs = dict(serve(tf.ensure_shape(image, expected, name="check_image_shape")))
        names = tf.constant(class_names, tf.string, name="class_names")
        outputs[NAME_OUTPUT] = tf.gather(names, outputs["class_id"], name=NAME_OUTPUT)
        return outputs

    serving_default.get_concrete_function()
    archive.add_endpoint(SIGNATURE, serving_default)
    if keras.backend.backend() == "tensorflow":
        _store_each_variable_once(archive)
    with tempfile.TemporaryDirectory() as scratch:
        names_file = os.path.join(scratch, CLASS_NAMES_FILE)
        with open(names_file, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))
        # ExportArchive has no public way to add a file; an Asset tracked by
        # the saved root object is copied into assets/ by tf.saved_model.save.
        setattr(archive._tf_trackable, CLASS_NAMES_ATTRIBUTE, tf.saved_model.Asset(names_file))
        archive.write_out(folder, verbose=verbose)


def _store_each_variable_once(archive):
    """Works around keras-team/keras#23553 (open in Keras 3.15): on TensorFlow
    `ExportArchive` tracks the `keras.Variable` wrappers while the traced
    endpoints capture the `tf.Variable`s inside them, two objects that the
    checkpoint cannot deduplicate, so every weight is written twice (a 203 MB
    instead of 101 MB PyramidNet-272). Tracking the inner `tf.Variable`s
    instead (the fix proposed upstream, keras-team/keras#23563) stores each
    once; the tests check the stored size against the parameter count."""
    import tensorflow as tf

    trackable = archive._tf_trackable
    for collection in ("variables", "trainable_variables", "non_trainable_variables"):
        inner = [getattr(v, "value", v) for v in getattr(trackable, collection)]
        if all(isinstance(v, tf.Variable) for v in inner):
            setattr(trackable, collection, inner)


def _write_in_tensorflow(serving, folder, formats, verbose, class_names):
    """Exports through a subprocess on the TensorFlow backend: the `.keras`
    file is backend-neutral, and TF is the backend Keras exports from."""
    with tempfile.TemporaryDirectory() as scratch:
        saved = os.path.join(scratch, MODEL_FILE)
        serving.classifier.save(saved)
        request = json.dumps({"model": saved, "folder": folder, "formats": list(formats),
                              "verbose": bool(verbose), "class_names": list(class_names),
                              "image_size": list(serving.image_shape[:2])})
        environment = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        finished = subprocess.run(
            [sys.executable, "-m", "keras_pyramid.export", request],
            env=environment, capture_output=True, text=True, check=False,
        )
    if finished.returncode != 0:
        raise ExportError("the TensorFlow export subprocess failed:\n"
                          + finished.stderr[-4000:])


def _replace_directory(staging, target):
    """Moves `staging` onto `target`. An existing `target` is first renamed
    aside, so at every instant `target` is either the old or the new artifact
    (or, between two renames, absent), never a mixture."""
    if not os.path.exists(target):
        os.rename(staging, target)
        return
    retired = f"{staging}-old"
    os.rename(target, retired)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _main_in_tensorflow(request):
    request = json.loads(request)
    serving = ServingModel(load_classifier(request["model"]), request["image_size"])
    serving(np.zeros((1, *serving.image_shape), "uint8"))
    _write(serving, request["folder"], request["formats"], request["verbose"],
           request["class_names"])


if __name__ == "__main__":
    _main_in_tensorflow(sys.argv[1])
