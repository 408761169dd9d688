"""How far an exported model's outputs are from the Keras model's own.

    differences = compare(model, "exports/x/1", images, class_names)
    # {"saved_model": {"logits": 3e-07, "probabilities": 1e-08, "class_id": 0.0,
    #                  "logits_relative": 2e-08, "class_name": 0.0}, "onnx": {...}}

The reference is `ServingModel`, the served function run by Keras
(`reference_outputs`); the artifacts are loaded by TensorFlow and
onnxruntime, as a serving machine loads them.
"""

import os

import keras
import numpy as np

from keras_pyramid.export import (
    INPUT_NAME,
    NAME_OUTPUT,
    ONNX_FILE,
    OUTPUT_NAMES,
    SIGNATURE,
    ServingModel,
    check_class_names,
)


def reference_outputs(model, images):
    """The Keras model's own inference outputs for uint8 `images` (NHWC), as
    numpy: what an export must reproduce."""
    serving = ServingModel(model)
    return {name: keras.ops.convert_to_numpy(value)
            for name, value in serving(np.asarray(images, "uint8")).items()}


def served_outputs(version_folder, images):
    """`{format: {output: values}}` of the SavedModel in `version_folder` and,
    if written, its `model.onnx` (run by onnxruntime) on uint8 `images`."""
    import tensorflow as tf  # the artifacts' own runtimes: needed here only

    served = tf.saved_model.load(version_folder).signatures[SIGNATURE]
    results = {"saved_model": served(image=tf.constant(images, tf.uint8))}
    onnx_path = os.path.join(version_folder, ONNX_FILE)
    if os.path.exists(onnx_path):
        import onnxruntime

        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        values = session.run(OUTPUT_NAMES, {INPUT_NAME: np.asarray(images, "uint8")})
        results["onnx"] = dict(zip(OUTPUT_NAMES, values))
    return results


def compare(model, version_folder, images, class_names=None):
    """Max absolute differences between the Keras model and its artifacts.

    Returns `{format: {output: max |served - keras|}}` for the SavedModel and,
    if present, the ONNX file (run by onnxruntime). Class ids compare as the
    fraction of disagreeing images, and the SavedModel's `class_name` as the
    fraction of images whose name is not `class_names[keras class_id]`
    (`class_names` as given to `export`); `logits_relative` is the logits'
    difference over their largest magnitude (an untrained deep PyramidNet's
    logits reach 1e8, where float32 itself is coarser than 1).
    """
    expected = reference_outputs(model, images)
    names = check_class_names(class_names, expected["logits"].shape[-1])
    results = served_outputs(version_folder, images)
    differences = {}
    for fmt, outputs in results.items():
        differences[fmt] = {name: _difference(name, np.asarray(outputs[name]), expected[name])
                            for name in OUTPUT_NAMES}
        differences[fmt]["logits_relative"] = differences[fmt]["logits"] / max(
            float(np.max(np.abs(expected["logits"]))), 1e-30)
    served_names = [name.decode("utf-8") for name in results["saved_model"][NAME_OUTPUT].numpy()]
    differences["saved_model"][NAME_OUTPUT] = float(np.mean(
        [served != names[index] for served, index in zip(served_names, expected["class_id"])]))
    return differences


def _difference(name, served, expected):
    if name == "class_id":
        return float(np.mean(served != expected))
    return float(np.max(np.abs(served.astype("float64") - expected)))
