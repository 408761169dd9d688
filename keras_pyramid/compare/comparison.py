"""A comparison from end to end: check, run the cells, measure, report.

    settings = Settings(RunConfig(dataset="folder:photos", epochs=30),
                        candidates=["pyramidnet110_a48_sepdrop", "keras:MobileNetV3Small",
                                    "current.keras"], baseline="current.keras", seeds=5)
    record = compare(settings, "compare_runs/photos")   # comparison.json's dict

Everything that can be refused is refused before anything is written
(`checks.py`). The record (OUTPUT/comparison.json) holds every cell, every
number, the versions, the hardware and the budget; report.md and
report.html are rendered from it alone, and `rebuild(output)` makes all
three again from the run directories without training.
"""

import dataclasses
import os
import platform
import time

import keras
import numpy as np

from keras_pyramid import evaluation
from keras_pyramid.compare import accuracy as accuracy_module
from keras_pyramid.compare import candidates as candidates_module
from keras_pyramid.compare import cells as cells_module
from keras_pyramid.compare import (
    checks,
    convergence,
    cost_summary,
    costs,
    estimate,
    grid,
    report,
)
from keras_pyramid.training import device, recipe, run_data
from keras_pyramid.training.run_dir import ConfigError, read_record
from keras_pyramid.training.run_layout import DATA_FILE, RESULTS_FILE
from keras_pyramid.tuning import distributed
from keras_pyramid.utils.files import atomic_write_json, read_json
from keras_pyramid.utils.versions import installed, versions

RECORD_FILE = "comparison.json"
PER_CLASS_FILE = "per_class.json"
MODELS_DIR = "models"
SPLIT_NOT_VARIED = "the variance of the split: one split (split seed) for every cell"


def compare(settings, output, print_function=print, verbose=1, serving_requests=500,
            command=None, estimate_first=True, dry_run=False):
    """Runs (or resumes, or extends) the comparison in `output`; returns its
    record, or None on a distributed worker (the chief reports). Before the
    first cell it prints an estimate of the time the cells will take
    (`estimate_first`); `dry_run` stops there, writes nothing and returns
    the plan: {"cells", "size", "estimate"}."""
    started = time.perf_counter()
    checks.check_output(output)
    given, facts = checks.check(settings)
    if dry_run:
        return _plan(settings, given, facts, output, print_function)
    checks.make_output(output)
    cells_module.record_settings(settings, output, given)
    _facts(output, facts)  # before the cells: a cell's process reads the comparison's size
    candidates, settings = _recorded_comparison(output, settings)
    settings = dataclasses.replace(settings, image_size=tuple(facts["image_size"]))
    cells = cells_module.cells_of(candidates, settings)
    todo = cells_module.missing(cells, output)
    if estimate_first and todo and distributed.leads():
        print_function(estimate.describe(estimate.estimate(todo, settings, facts)))
    grid.run_grid(cells, settings, output, print_function, verbose)
    if not distributed.leads():
        return None
    for candidate in candidates:
        if not candidate.trained:
            _evaluate_as_is(candidate, settings, output, print_function)
    return rebuild(output, serving_requests, print_function, command,
                   time.perf_counter() - started, facts)


def _plan(settings, candidates, facts, output, print_function):
    """--dry-run: the cells (those a comparison in `output` has finished
    apart), the one input size and the estimate; nothing is written."""
    settings = dataclasses.replace(settings, image_size=tuple(facts["image_size"]))
    cells = cells_module.cells_of(candidates, settings)
    todo = cells_module.missing(cells, output)
    size = f"{facts['image_size'][0]}x{facts['image_size'][1]} ({facts['image_size_from']})"
    print_function(f"plan: {len(cells)} cells ({len(todo)} to train), "
                   f"{len([c for c in candidates if not c.trained])} as-is evaluations; "
                   f"every candidate at {size}")
    for cell in todo:
        print_function(f"  {cell.key}")
    plan = estimate.estimate(todo, settings, facts) if todo else None
    if plan:
        print_function(estimate.describe(plan))
    return {"cells": [cell.key for cell in cells], "to_train": [cell.key for cell in todo],
            "image_size": facts["image_size"], "estimate": plan}


def _recorded_comparison(output, settings):
    """The comparison compare.json holds (every candidate and noise rate it
    ever had, the latest seeds): (candidates, settings), from the record
    alone."""
    recorded = cells_module.read_settings(output)
    merged = dataclasses.replace(settings, candidates=recorded["candidates"],
                                 seeds=recorded["seeds"],
                                 noise_rates=tuple(recorded["noise_rates"]),
                                 baseline=recorded["baseline"])
    return cells_module.recorded_candidates(recorded), merged


def _evaluate_as_is(candidate, settings, output, print_function):
    """An as-is candidate's evaluation on the comparison's final split, once."""
    folder = os.path.join(output, cells_module.CELLS_DIR, candidate.slug)
    path = os.path.join(folder, cells_module.EVALUATION_FILE)
    if os.path.exists(path):
        return read_json(path)
    print_function(f"evaluating {candidate.name} as it is (not trained)")
    config = cells_module.cell_config(cells_module.Cell(candidate, 0.0, 0), settings)
    figures = evaluation.evaluate_saved(candidate.model, config,
                                        limit=_evaluated_examples(settings, output))
    os.makedirs(folder, exist_ok=True)
    atomic_write_json(path, figures)
    return figures


# ---------------------------------------------------------------- the record


FACTS_FILE = "data.json"


def rebuild(output, serving_requests=500, print_function=print, command=None,
            wall_seconds=None, facts=None):
    """comparison.json, report.md and report.html from the run directories
    (serving figures measured where none are cached, unless
    `serving_requests` is 0); returns the record."""
    rebuilding = time.perf_counter()  # serving is measured here: it counts in the wall time
    facts = _facts(output, facts)
    candidates, settings = _recorded_comparison(
        output, cells_module.recorded_settings(output, facts["image_size"]))
    cells = cells_module.cells_of(candidates, settings)
    plan = recipe.recipe_named(settings.run.recipe, "other")
    rows = [costs.cell_figures(cell, output, plan.epochs * facts["train_available"])
            for cell in cells]
    rows += [_as_is_row(candidate, output) for candidate in candidates if not candidate.trained]
    accuracy = [accuracy_module.accuracy_at(candidates, settings, rows, noise)
                for noise in settings.noise_rates]
    record = {
        # format 2: one input size, curves, decisions, paired costs, serving rounds (issue 32)
        "format": 2, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command,
        "wall_seconds": wall_seconds, "dataset": _dataset(settings, facts, rows, output),
        "budget": _budget(settings, rows, output), "baseline": settings.baseline,
        "seeds": list(range(settings.seeds)), "noise_rates": list(settings.noise_rates),
        "candidates": [_candidate_entry(c, settings, facts, output, rows) for c in candidates],
        "cells": rows, "accuracy": accuracy,
        "per_class": _per_class(candidates, settings, accuracy[0], output, facts),
        "training_cost": {c.name: cost_summary.training_cost(c.name, rows, settings.baseline)
                          for c in candidates},
        "serving": _serving(candidates, settings, accuracy[0], output, facts,
                            serving_requests, print_function),
        "warnings": [],  # the report's own, filled in below
        "not_measured": None,  # below: it depends on the candidates and the hardware
        "versions": {"keras-pyramid": installed("keras-pyramid"), **versions(),
                     "backend": keras.backend.backend()},
        "hardware": _hardware(),
    }
    record["not_measured"] = _not_measured(record)
    record["serving_ratios"] = cost_summary.serving_ratios(record["serving"], settings.baseline)
    record["machine"] = cost_summary.machine_sharing(rows, record["serving"])
    previous = _read_record(output) or {}
    if wall_seconds is None:  # --report-only keeps the comparison's own
        record.update(wall_seconds=previous.get("wall_seconds"),
                      command=previous.get("command"))
    else:  # this command's time, serving included; a resumed or extended one adds its own
        record["wall_seconds"] += (time.perf_counter() - rebuilding
                                   + (previous.get("wall_seconds") or 0))
    report.write_report(record, output)
    record["warnings"] = report.warnings(record)
    atomic_write_json(os.path.join(output, RECORD_FILE), record)
    return record


def _read_record(output):
    return read_record(os.path.join(output, RECORD_FILE),
                       "delete it: the next run rebuilds it from the cells (the wall time it "
                       "recorded is lost)", "output")


def _facts(output, facts):
    """The data's facts (class names, image size, training examples available),
    kept in OUTPUT/data.json for --report-only."""
    path = os.path.join(output, FACTS_FILE)
    if facts is not None:
        atomic_write_json(path, facts)
        return facts
    recorded = read_record(path, "run the comparison's command again: it rewrites it",
                           "output")
    if recorded is None or "image_size" not in recorded:
        raise ConfigError("output", f"{output} holds no comparison's data facts ({FACTS_FILE} "
                                    "missing or of another program): run the comparison first")
    return recorded


def _as_is_row(candidate, output):
    path = os.path.join(output, cells_module.CELLS_DIR, candidate.slug,
                        cells_module.EVALUATION_FILE)
    row = {"candidate": candidate.name, "noise": None, "seed": None, "status": "missing",
           "run_dir": os.path.relpath(os.path.dirname(path), output)}
    if os.path.exists(path):
        figures = read_json(path)
        row.update(status="evaluated", final_error=figures["error"],
                   evaluated_examples=figures["examples"])
    return row


def _dataset(settings, facts, rows, output):
    evaluated = [r for r in rows if r["status"] in ("finished", "evaluated")]
    return {"spec": settings.run.dataset, "class_names": facts["class_names"],
            "image_size": facts["image_size"], "image_size_from": facts.get("image_size_from"),
            "resized": run_data.resizing_note(facts.get("given_sides"), facts["image_size"]),
            "train_examples": settings.run.train_examples or facts["train_available"],
            "train_available": facts["train_available"],
            "final_evaluation": facts["final_evaluation"],
            "final_examples": facts["final_examples"],
            "evaluated_examples": evaluated[0]["evaluated_examples"] if evaluated else None,
            "split_seed": settings.run.split_seed}


def _budget(settings, rows, output):
    """The recipe every cell trained by, as the first finished cell resolved
    it (the recipe's defaults fitted to the data), else as asked."""
    finished = [r for r in rows if r["status"] == "finished"]
    budget = {key: getattr(settings.run, key)
              for key in ("recipe", "epochs", "batch_size", "learning_rate", "weight_decay",
                          "steps_per_epoch", "eval_steps")}
    if finished:
        results = read_json(os.path.join(output, finished[0]["run_dir"], RESULTS_FILE))
        budget.update({key: results[key] for key in ("epochs", "batch_size", "steps_per_epoch",
                                                     "learning_rate", "weight_decay")
                       if key in results})
    return budget


def _first_finished(candidate, settings, accuracy, output):
    """The run directory of the candidate's first complete seed at the first
    noise rate (the as-is candidate's file), or None."""
    if not candidate.trained:
        return None
    for seed in accuracy["complete_seeds"]:
        cell = cells_module.Cell(candidate, accuracy["noise"], seed)
        if cells_module.finished(cell, output):
            return cell
    return None


def _model_path(candidate, settings, accuracy, output):
    if not candidate.trained:
        return candidate.model, None
    cell = _first_finished(candidate, settings, accuracy, output)
    return (None, None) if cell is None else (costs.model_file(cell.run_dir(output)), cell.seed)


def _candidate_entry(candidate, settings, facts, output, rows):
    entry = {"name": candidate.name, "kind": candidate.kind, "trained": candidate.trained,
             "slug": candidate.slug,
             "built_for": candidates_module.built_for(candidate, facts["image_size"],
                                                      settings.run.recipe),
             "parameters": None, "trainable_parameters": None, "multiply_adds": None}
    finished = [r for r in rows if r["candidate"] == candidate.name and r["status"] == "finished"]
    path = candidate.model if not candidate.trained else (
        costs.model_file(os.path.join(output, finished[0]["run_dir"])) if finished else None)
    if path is not None:
        entry.update(costs.model_figures(path, os.path.join(output, MODELS_DIR, candidate.slug),
                                         facts["image_size"]))
    # Convergence at each noise rate; the flag is the first rate's (the clean data's).
    curves = {f"{noise:g}": convergence.learning_curves(
        [r.get("curve") for r in finished if r["noise"] == noise])
        for noise in settings.noise_rates}
    first = curves.get(f"{settings.noise_rates[0]:g}") if candidate.trained else None
    entry.update(learning_curves=curves if candidate.trained else None,
                 still_improving=None if first is None else first["still_improving"])
    return entry


def _per_class(candidates, settings, accuracy, output, facts):
    """Per-class errors (mean over the complete seeds) of the baseline and of
    the candidate with the least mean error, at the first noise rate."""
    means = {name: figures["mean"] for name, figures in accuracy["per_candidate"].items()}
    if not means:
        return None
    best = min((n for n in means if n != settings.baseline), key=means.get, default=None)
    entries = {"class_names": facts["class_names"]}
    for role, name in (("baseline", settings.baseline), ("best", best)):
        if name is not None:
            candidate = next(c for c in candidates if c.name == name)
            entries[role] = {"candidate": name,
                             "errors": _class_errors(candidate, settings, accuracy, output)}
    return entries


def _class_errors(candidate, settings, accuracy, output):
    if not candidate.trained:
        path = os.path.join(output, cells_module.CELLS_DIR, candidate.slug,
                            cells_module.EVALUATION_FILE)
        return _errors_per_class(read_json(path))
    per_seed = []
    for seed in accuracy["complete_seeds"]:
        cell = cells_module.Cell(candidate, accuracy["noise"], seed)
        run_dir = cell.run_dir(output)
        path = os.path.join(run_dir, PER_CLASS_FILE)
        if not os.path.exists(path):
            config = cells_module.cell_config(cell, settings)
            atomic_write_json(path, evaluation.evaluate_saved(
                costs.model_file(run_dir), config, read_json(os.path.join(run_dir, DATA_FILE)),
                limit=_evaluated_examples(settings, output)))
        per_seed.append(_errors_per_class(read_json(path)))
    # A class absent from the evaluation split has no error (None) in any seed.
    return [None if None in column else float(np.mean(column)) for column in zip(*per_seed)]


def _evaluated_examples(settings, output):
    """The examples the trained cells' final evaluations saw, as the first
    finished cell's results.json counts them (all of the split, or the first
    eval_steps batches of whatever batch its recipe chose): an as-is
    candidate and the per-class errors then see the same ones. None: all."""
    candidates = cells_module.recorded_candidates(cells_module.read_settings(output))
    for cell in cells_module.cells_of(candidates, settings):
        if cells_module.finished(cell, output):
            results = read_json(os.path.join(cell.run_dir(output), RESULTS_FILE))
            return results["evaluated_examples"]
    run = settings.run  # no trained cell: the recipe's batch as asked
    if run.eval_steps is None:
        return None
    return run.eval_steps * (run.batch_size or recipe.paper_recipe("other").batch_size)


def _errors_per_class(summary):
    return [None if accuracy is None else 1.0 - accuracy
            for accuracy in summary["per_class_accuracy"].values()]


def _serving(candidates, settings, accuracy, output, facts, requests, print_function):
    """Every candidate's serving cost, from one seed's final model, measured
    in interleaved rounds (cached; `costs.serving_measurements`)."""
    models = {}
    for candidate in candidates:
        path, seed = _model_path(candidate, settings, accuracy, output)
        if path is not None:
            models[candidate.name] = (path, seed, candidate.slug)
    return costs.serving_measurements(models, output, facts["class_names"], requests,
                                      facts["image_size"], print_function)


def _not_measured(record):
    """What this comparison did not measure, said only where it applies."""
    items = []
    if record["hardware"]["device"].startswith("CPU"):
        items.append("on an accelerator: every figure here is this machine's CPU's")
    improving = [c["name"] for c in record["candidates"] if c.get("still_improving")]
    if improving:
        items.append(f"at a longer budget: {', '.join(improving)} still improved over the last "
                     f"epochs, so the ranking holds for this budget only")
    return [*items, SPLIT_NOT_VARIED]


def _hardware():
    return {"device": device.describe_device(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version()}
