"""A finished run directory, reloaded in a fresh process as a user would."""

import json

import keras

from helpers.processes import run_python

# What a user does with a finished run directory, in a fresh process and with
# the consumer's defaults: `load_model(path)` (compile=True), then
# `model.load_weights` of the last checkpoint.
RELOAD_RUN_DIRECTORY = """
import glob, json, os, sys
import keras, numpy as np
import keras_pyramid  # the only import a user needs
run_dir = sys.argv[1]
model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
x = np.random.default_rng(0).uniform(0, 255, (2, *model.inputs[0].shape[1:])).astype("float32")
saved = model.predict(x, verbose=0)
checkpoints = glob.glob(os.path.join(run_dir, "checkpoint", "*.weights.h5"))
model.load_weights(checkpoints[0])
print(json.dumps({
    "backend": keras.backend.backend(),
    "optimizer": type(model.optimizer).__name__,
    "schedule": type(model.optimizer._learning_rate).__name__,
    "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
    "checkpoints": len(checkpoints),
    "difference": float(np.abs(model.predict(x, verbose=0) - saved).max()),
}))
"""


def assert_run_directory_reloads(run_dir, steps, schedule="PiecewiseConstantDecay"):
    """The run's model.keras loads compiled in a fresh process, its optimizer
    at `steps` with the recipe's schedule, and the last checkpoint's weights
    load into it and give the same predictions (they are the final weights)."""
    report = json.loads(run_python(RELOAD_RUN_DIRECTORY.replace(
        "sys.argv[1]", repr(str(run_dir)))).strip().splitlines()[-1])
    assert report["backend"] == keras.backend.backend()
    assert report["optimizer"] == "SGD" and report["schedule"] == schedule
    assert report["iterations"] == steps and report["checkpoints"] == 1
    assert report["difference"] < 1e-5, report
