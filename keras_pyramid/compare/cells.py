"""The grid of a comparison: one cell per (candidate, noise rate, seed), each
one run of `experiment.run` in its own run directory.

    OUTPUT/compare.json                     the settings (fixed) and what is compared
    OUTPUT/cells/SLUG/noise-0.2/seed-3/     a run directory (results.json, cost.json)
    OUTPUT/cells/SLUG/evaluation.json       an as-is candidate's evaluation

Fair and paired: every cell has the same split (drawn by `split_seed`,
never by the training seed), recipe and budget; seed s gives every
candidate the same data order, augmentation and label noise.

Resume is the run directories': a finished cell is kept, an interrupted
one resumes from its checkpoint, a killed one (no checkpoint) starts over.
More seeds, noise rates or candidates extend a comparison; other settings
are refused, with the differences listed.
"""

import dataclasses
import os

import keras

from keras_pyramid.compare.candidates import Candidate, recorded_candidate
from keras_pyramid.training import device, experiment
from keras_pyramid.training.config import RunConfig
from keras_pyramid.training.run_dir import (
    ADDED_LATER,
    MODEL_FILE,
    RESULTS_FILE,
    ConfigError,
    corrupt,
    differences,
    load_run,
    read_record,
    unreadable,
)
from keras_pyramid.utils import machine_load, processes
from keras_pyramid.utils.files import atomic_write_json
from keras_pyramid.weights.files import is_whole_archive

SETTINGS_FILE = "compare.json"
COST_FILE = "cost.json"
EVALUATION_FILE = "evaluation.json"
CELLS_DIR = "cells"
CELL_ADDED_LATER = ("image_size", "precise_batch_norm")
SETTINGS_KEYS = ("fixed", "candidates", "noise_rates", "seeds", "baseline")
SETTINGS_WAY_OUT = ("it holds the comparison's settings: restore it, or start the comparison "
                    "over in another folder")
# The settings every cell shares; another value on an existing comparison is refused.
FIXED = ("dataset", "data_dir", "validation", "split_seed", "train_examples", "image_size",
         "recipe", "epochs", "batch_size", "learning_rate", "weight_decay", "steps_per_epoch",
         "eval_steps")


@dataclasses.dataclass
class Settings:
    """A comparison: `run`, the `RunConfig` every cell shares (its FIXED
    fields hold for the whole comparison; each cell sets the model, its
    weights, the label noise and the seed), and the grid's axes."""

    run: RunConfig
    candidates: list
    baseline: str
    seeds: int = 5
    noise_rates: tuple = (0.0,)
    # The comparison's one input size, resolved by `checks.check` from
    # run.image_size, the data's own or the baseline's; every cell takes it.
    image_size: tuple = None
    margin: float = 0.0  # points (a fraction) within which a difference is no difference
    fresh_process: bool = True  # each cell in its own process: memory without carry-over

    def fixed(self):
        """The FIXED values as compare.json holds them (JSON types)."""
        recorded = self.run.recorded()
        return {key: recorded[key] for key in FIXED}


@dataclasses.dataclass(frozen=True)
class Cell:
    candidate: Candidate
    noise: float
    seed: int

    @property
    def key(self):
        """The cell's path under OUTPUT/cells: SLUG/noise-RATE/seed-SEED."""
        return f"{self.candidate.slug}/noise-{self.noise:g}/seed-{self.seed}"

    def run_dir(self, output):
        return os.path.join(output, CELLS_DIR, *self.key.split("/"))


def cells_of(candidates, settings):
    """Every trained candidate's cells, seed-major: the first seed of every
    candidate runs before the second of any, so an early stop leaves pairs."""
    return [Cell(candidate, noise, seed)
            for seed in range(settings.seeds) for noise in settings.noise_rates
            for candidate in candidates if candidate.trained]


def cell_config(cell, settings, verbose=1):
    """The `RunConfig` of `cell`: the comparison's, with the cell's model,
    weights, label noise and seed, the comparison's one input size, and
    BatchNorm's statistics re-estimated after training (every candidate
    alike: a short budget leaves a high momentum's running averages
    unconverged, which would rank the momentum, not the design)."""
    return dataclasses.replace(settings.run, model=cell.candidate.model,
                               weights=cell.candidate.weights, label_noise=cell.noise,
                               seed=cell.seed, verbose=verbose,
                               image_size=settings.image_size or settings.run.image_size,
                               precise_batch_norm=True)


def as_made(config, run_dir):
    """`config` with the cell settings that are newer than the cell's run
    (CELL_ADDED_LATER) as the run recorded them: a cell trained before a
    comparison fixed its size or re-estimated BatchNorm is kept as it was
    made (its results.json says what it took), not refused as another run."""
    try:
        found = load_run(run_dir)
    except ConfigError:
        return config  # a corrupt record: the cell starts over (`_why_start_over`)
    if found.args is None:
        return config
    kept = {field: ADDED_LATER[field] for field in CELL_ADDED_LATER
            if found.args.get(field) == ADDED_LATER[field]}
    return dataclasses.replace(config, **kept)


# ---------------------------------------------------------------- the settings file


def record_settings(settings, output, candidates):
    """Writes OUTPUT/compare.json, or refuses other FIXED values than the
    recorded ones (ConfigError listing them), or a file candidate whose
    content changed since it was compared. Candidates and noise rates
    accumulate: a comparison only grows; `seeds` is the latest command's (a
    smaller one reports on the first seeds and trains nothing more)."""
    path = os.path.join(output, SETTINGS_FILE)
    recorded = read_settings(output)
    if recorded is not None:
        changed = differences(recorded["fixed"], settings.fixed(), FIXED)
        if changed:
            raise ConfigError("output", f"{output} holds a comparison with other settings "
                                        f"({changed}); nothing was run. Use another `output`, "
                                        f"or the recorded values")
    previous = recorded or {"candidates": [], "noise_rates": [], "seeds": 0}
    files = dict(previous.get("files", {}))
    for candidate in candidates:
        _refuse_changed_file(candidate, previous, files)
        if candidate.digest and candidate.name not in previous["candidates"]:
            files[candidate.name] = candidate.digest
    atomic_write_json(path, {
        "fixed": settings.fixed(),
        "candidates": list(dict.fromkeys(previous["candidates"] + list(settings.candidates))),
        "files": files,
        "noise_rates": sorted(set(previous["noise_rates"]) | set(settings.noise_rates)),
        "seeds": settings.seeds, "baseline": settings.baseline, "margin": settings.margin,
    })


def _refuse_changed_file(candidate, previous, files):
    """A file candidate is known by its content: the same path with another
    content is another model, which the comparison's cells did not train."""
    recorded = files.get(candidate.name)
    if recorded is not None and candidate.digest is not None and recorded != candidate.digest:
        raise ConfigError("candidates", f"{candidate.model} changed since this comparison "
                                        f"trained it (SHA-256 {recorded}... now "
                                        f"{candidate.digest}...): nothing was run. Compare the "
                                        "new model under another file name, or restore the "
                                        "compared one")


def read_settings(output):
    """compare.json's dict, or None where there is none (ConfigError naming
    the file when it is corrupt)."""
    recorded = read_record(os.path.join(output, SETTINGS_FILE), SETTINGS_WAY_OUT, "output")
    if recorded is not None and not all(key in recorded for key in SETTINGS_KEYS):
        raise corrupt(os.path.join(output, SETTINGS_FILE), "not a comparison's settings",
                      SETTINGS_WAY_OUT, "output")
    return recorded


def recorded_settings(output, image_size=None):
    """The `Settings` compare.json holds, from the record alone (ConfigError
    naming `output` when there is none); `image_size`: the comparison's one
    size, which data.json holds beside it."""
    recorded = read_settings(output)
    if recorded is None:
        raise ConfigError("output", f"{output} holds no comparison (no {SETTINGS_FILE})")
    fixed = dict(recorded["fixed"])
    if fixed["image_size"] is not None:
        fixed["image_size"] = tuple(fixed["image_size"])
    return Settings(RunConfig(download=False, **fixed), candidates=recorded["candidates"],
                    baseline=recorded["baseline"], seeds=recorded["seeds"],
                    noise_rates=tuple(recorded["noise_rates"]),
                    image_size=image_size and tuple(image_size),
                    margin=recorded.get("margin", 0.0))


def recorded_candidates(recorded):
    """The `Candidate`s compare.json names, from the record alone."""
    files = recorded.get("files", {})
    return [recorded_candidate(text, files.get(text)) for text in recorded["candidates"]]


# ---------------------------------------------------------------- running cells


def _broken(cell, output):
    """Why a cell with a results.json cannot count as finished (the record
    unreadable, model.keras missing or not a whole archive), else None."""
    run_dir = cell.run_dir(output)
    reason = unreadable(os.path.join(run_dir, RESULTS_FILE))
    if reason is not None:
        return f"its {RESULTS_FILE} is unreadable ({reason})"
    model = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(model):
        return f"its {MODEL_FILE} is missing"
    if not is_whole_archive(model):
        return f"its {MODEL_FILE} is truncated or corrupt"
    return None


def _why_start_over(cell, output):
    """Why `cell` must be trained again from its first step (a comparison
    owns its cells: it restarts a broken one rather than ask), or None."""
    run_dir = cell.run_dir(output)
    try:
        load_run(run_dir)
    except ConfigError as error:  # a corrupt record of the cell's run
        return getattr(error, "problem", str(error))
    if os.path.exists(os.path.join(run_dir, RESULTS_FILE)):
        reason = _broken(cell, output)
        return reason and f"it was finished but {reason}"
    return None


def finished(cell, output):
    """A cell is finished when its records, its results and its model load."""
    return (os.path.exists(os.path.join(cell.run_dir(output), RESULTS_FILE))
            and _why_start_over(cell, output) is None)


def run_cell(cell, settings, output, print_function=print, verbose=1, label=None):
    """Trains (or resumes, or keeps) `cell` in this process; returns its
    results.json dict. The process's peak memory is counted from the cell's
    start (in a fresh process, `runner.py`, that is all of it), and written
    with the device and the machine's load to the cell's cost.json by the
    process that finishes it."""
    run_dir = cell.run_dir(output)
    keras.backend.clear_session()  # the previous cell's graphs and names go
    peak_from = processes.reset_peak_memory()
    device.reset_accelerator_peak_memory()
    watch = machine_load.LoadWatch()
    print_function(f"cell {label or cell.key}")
    restart = _why_start_over(cell, output)
    if restart:
        print_function(f"cell {cell.key}: {restart}: training it again")
    config = cell_config(cell, settings, verbose)
    results = experiment.run(config if restart else as_made(config, run_dir), run_dir,
                             restart=bool(restart), print_function=print_function)
    if not results.get("already_finished"):
        peak, peak_from = processes.peak_memory()
        load = watch.stop()
        atomic_write_json(os.path.join(run_dir, COST_FILE), {
            "peak_host_memory_bytes": peak, "peak_host_memory_from": peak_from,
            "process": "fresh" if settings.fresh_process else "shared with earlier cells",
            "accelerator_peak_memory_bytes": device.accelerator_peak_memory(),
            "device": device.describe_device(), "backend": keras.backend.backend(),
            "last_process_seconds": load["wall_seconds"], "machine_load": load})
    return results


def missing(cells, output):
    return [cell for cell in cells if not finished(cell, output)]
