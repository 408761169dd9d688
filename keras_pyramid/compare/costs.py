"""What a candidate costs: to train (per cell, from its run directory) and
to serve (per candidate, one seed's final model, exported and measured).

Training, per cell (all read back from the run directory, so a report
rebuilt later holds the same numbers):
- wall time: the epochs' seconds in history.json (training and per-epoch
  evaluation, over every process that ran the cell);
- training images/s from the median step (results.json), the first step
  of each process, which compiles, apart (`compile_seconds`);
- images seen, the device, the process's peak host memory during the cell
  and the accelerator's (cost.json, written by the process that finished it);
- the projected time of the full recipe on this device: its epochs over
  the whole training split at the median step's speed, evaluations apart.
"""

import math
import os

import keras

from keras_pyramid.compare import macs, serving, serving_rounds
from keras_pyramid.compare.cells import COST_FILE, finished
from keras_pyramid.export import export
from keras_pyramid.training.run_dir import read_record
from keras_pyramid.training.run_layout import DATA_FILE, HISTORY_JSON, MODEL_FILE, RESULTS_FILE
from keras_pyramid.utils.files import atomic_write_json, read_json_or
from keras_pyramid.weights.files import load_keras_file

MODEL_FIGURES_FILE = "model.json"
SERVING_FILE = "serving.json"
SERVING_DIR = "serving"


def _read(folder, name):
    """A record of the comparison's, None when absent; one line naming it when corrupt."""
    return read_record(os.path.join(folder, name), "delete it: the next run measures it again",
                       "output")


def cell_figures(cell, output, full_recipe_images):
    """The row of `cell` in comparison.json; status "missing" without results.
    `full_recipe_images`: the images the full recipe trains on (epochs x the
    whole training split), for the projection."""
    run_dir = cell.run_dir(output)
    row = {"candidate": cell.candidate.name, "noise": cell.noise, "seed": cell.seed,
           "run_dir": os.path.relpath(run_dir, output)}
    if not finished(cell, output):  # a broken cell is retrained by the next run
        return {**row, "status": "missing"}
    results = _read(run_dir, RESULTS_FILE)
    # a list, written with results.json
    history = read_json_or(os.path.join(run_dir, HISTORY_JSON), [])
    cost = _read(run_dir, COST_FILE) or {}
    speed = results["train_images_per_second"]
    data = _read(run_dir, DATA_FILE) or {}
    return {**row, "status": "finished", "final_error": results["final_error"],
            "evaluated_examples": results["evaluated_examples"],
            "image_size": results.get("image_size"),
            "error_as_trained": results.get("error_as_trained"),
            "batch_norm_reestimated": results.get("batch_norm_reestimated"),
            **learning_curve(history, data.get("split", {}).get("validation_from")),
            "process": cost.get("process"), "machine_load": cost.get("machine_load"),
            "wall_seconds": sum(r["seconds"] for r in history),
            "train_seconds": results.get("train_seconds"),
            "median_step_seconds": results.get("median_step_seconds"),
            "train_images_per_second": speed,
            "compile_seconds": results.get("compile_seconds"),
            "images_seen": results.get("images_seen"),
            "peak_host_memory_bytes": cost.get("peak_host_memory_bytes"),
            "peak_host_memory_from": cost.get("peak_host_memory_from"),
            "accelerator_peak_memory_bytes": cost.get("accelerator_peak_memory_bytes"),
            "device": cost.get("device"), "backend": cost.get("backend"),
            "projected_full_recipe_seconds": full_recipe_images / speed}


def learning_curve(history, held_out):
    """{"curve": [{"epoch", "error"}], "curve_on": ...} of a run's history:
    the per-epoch error on the hold-out (`held_out` names it) where the run
    evaluated one each epoch, else the training batches' error (training
    mode, augmented: a weaker signal, said so)."""
    if history and "val_accuracy" in history[-1]:
        return {"curve": [{"epoch": r["epoch"], "error": 1.0 - r["val_accuracy"]}
                          for r in history if "val_accuracy" in r],
                "curve_on": held_out or "the per-epoch evaluation"}
    return {"curve": [{"epoch": r["epoch"], "error": 1.0 - r["accuracy"]}
                      for r in history if "accuracy" in r],
            "curve_on": "the training batches (no hold-out was evaluated each epoch)"}


def model_figures(model_path, cache_dir, image_size=None):
    """Parameters (all, trainable) and forward multiply-adds per image of the
    model at `model_path`, cached in `cache_dir`/model.json; `image_size`:
    the (height, width) counted for a model that takes any size."""
    cached = _read(cache_dir, MODEL_FIGURES_FILE)
    if cached is not None:
        return cached
    model = load_keras_file(model_path)
    figures = {"parameters": _count(model.weights),
               "trainable_parameters": _count(model.trainable_weights),
               "multiply_adds": macs.multiply_adds(model, _free_input_shape(model, image_size))}
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write_json(os.path.join(cache_dir, MODEL_FIGURES_FILE), figures)
    return figures


def _free_input_shape(model, image_size):
    """One image's shape at `image_size` for a model whose input takes any
    size, else None (the model's own shape counts)."""
    shape = tuple(model.inputs[0].shape[1:])
    if None not in shape or image_size is None:
        return None
    height, width = image_size
    channels_first = keras.config.image_data_format() == "channels_first"
    return (shape[0], height, width) if channels_first else (height, width, shape[-1])


def _count(variables):
    return int(sum(math.prod(v.shape) for v in variables))


SERVING_ROUNDS = 5  # interleaved rounds: a ratio of p50s pairs by round, with an interval
# Fewer requests than a report needs (serving.MIN_REPORTED_REQUESTS) is a smoke
# measurement: 2 rounds, the fewest that pair.
SMOKE_ROUNDS = 2


def serving_rounds_for(requests):
    return SERVING_ROUNDS if requests >= serving.MIN_REPORTED_REQUESTS else SMOKE_ROUNDS


def serving_measurements(models, output, class_names, requests, image_size,
                         print_function=print):
    """The serving cost of every candidate's model: each exported as export.py
    exports it (SavedModel and ONNX, into OUTPUT/serving/SLUG), then all
    measured together in interleaved rounds (`serving_rounds_for`)
    (`serving_rounds.measure_interleaved`). `models`: {name: (model path,
    seed, slug)}. Cached in OUTPUT/serving/serving.json for the same models
    and requests; `requests` 0 reads what was measured, measuring nothing."""
    path = os.path.join(output, SERVING_DIR, SERVING_FILE)
    rounds = serving_rounds_for(requests)
    key = {"requests": requests, "rounds": rounds,
           "models": {name: os.fspath(model) for name, (model, _, _) in models.items()}}
    cached = _read(os.path.dirname(path), SERVING_FILE)
    if cached is not None and (requests == 0 or cached.get("key") == key):
        if requests:
            print_function(f"serving cost: measured earlier ({requests} requests in "
                           f"{rounds} rounds), kept")
        return cached["figures"]
    if requests == 0 or not models:
        return _legacy_serving(models, output)
    folders = {}
    for name, (model, _, slug) in models.items():
        print_function(f"serving cost of {name}: exporting")
        keras.backend.clear_session()
        folders[name] = export(model, os.path.join(output, SERVING_DIR, slug),
                               formats=("saved_model", "onnx"), overwrite=True,
                               class_names=class_names, image_size=image_size)
    print_function(f"serving cost: {requests} requests per candidate and runtime, in "
                   f"{rounds} interleaved rounds")
    measured = serving_rounds.measure_interleaved(folders, requests=requests,
                                                  rounds=rounds)
    figures = {name: {"seed": models[name][1], "requests": requests,
                      "model": os.fspath(models[name][0]), **measured[name]}
               for name in models}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(path, {"key": key, "figures": figures})
    return figures


def _legacy_serving(models, output):
    """Serving figures a comparison measured before the rounds: one
    serving.json per candidate's folder (measured once each, in sequence)."""
    figures = {}
    for name, (_, _, slug) in models.items():
        found = _read(os.path.join(output, SERVING_DIR, slug), SERVING_FILE)
        if found is not None:
            figures[name] = found
    return figures


def model_file(run_dir):
    return os.path.join(run_dir, MODEL_FILE)
