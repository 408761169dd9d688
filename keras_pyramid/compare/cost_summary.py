"""What a candidate costs, summarised over its cells, and against the
baseline paired by seed.

    cost = training_cost("pyramidnet20_a48_sepdrop", rows, baseline="pyramidnet20_a48")
    cost["against_baseline"]["wall_seconds"]   # {"ratio": 1.04, "low": 0.98, ..., "claimed": False}

Unpaired medians rank noise: the same plain network ranged 119 to 203
images/s over the seeds of one comparison, as other work on the machine came
and went. Seed s of every candidate ran at about the same time (the grid is
seed-major), so the per-seed ratio candidate / baseline cancels much of that
drift. The ratio reported is the geometric mean of the per-cell ratios, with
the t interval of their mean logarithm (`statistics.paired_ratio`); a ratio
is `claimed` only when its interval excludes 1.
"""

import dataclasses

import numpy as np

from keras_pyramid.compare import serving as serving_module
from keras_pyramid.compare import statistics
from keras_pyramid.utils import machine_load

MEDIANS = ("wall_seconds", "train_images_per_second", "compile_seconds", "images_seen",
           "peak_host_memory_bytes", "accelerator_peak_memory_bytes",
           "projected_full_recipe_seconds")
PAIRED = ("wall_seconds", "train_images_per_second", "peak_host_memory_bytes")


def training_cost(name, rows, baseline):
    """Medians over the candidate's finished cells, and the paired ratios
    against `baseline` (None: not trained)."""
    finished = _finished(rows, name)
    if not finished:
        return None

    def median(key):
        values = [r[key] for r in finished if r.get(key) is not None]
        return float(np.median(values)) if values else None

    processes = {r.get("process") for r in finished}
    return {**{key: median(key) for key in MEDIANS}, "cells": len(finished),
            "device": finished[0].get("device"),
            "process": processes.pop() if len(processes) == 1 else "mixed",
            "shared_machine": machine_load.shared_during(
                [r.get("machine_load") for r in finished]),
            "against_baseline": None if name == baseline else {
                key: paired_cost(finished, _finished(rows, baseline), key) for key in PAIRED}}


def paired_cost(cells, baseline_cells, key):
    """The `statistics.PairedRatio` of `key` over the (noise, seed) pairs both
    finished, as a dict with `claimed`; None with fewer than 2 pairs."""
    theirs = {(r["noise"], r["seed"]): r.get(key) for r in baseline_cells}
    pairs = [(r[key], theirs[(r["noise"], r["seed"])]) for r in cells
             if r.get(key) and theirs.get((r["noise"], r["seed"]))]
    if len(pairs) < 2:
        return None
    ratio = statistics.paired_ratio(*zip(*pairs))
    return {**dataclasses.asdict(ratio), "ratios": list(ratio.ratios), "pairs": len(pairs),
            "claimed": ratio.excludes_one}


def _finished(rows, name):
    return [r for r in rows if r["candidate"] == name and r["status"] == "finished"]


def serving_ratios(serving, baseline):
    """{name: {runtime: paired ratio of p50 latency}} against the baseline,
    paired by round (measured interleaved, `serving.measure_interleaved`);
    candidates measured once (no rounds) get none."""
    ours = serving.get(baseline) or {}
    ratios = {}
    for name, runtimes in serving.items():
        if name == baseline:
            continue
        ratios[name] = {}
        for runtime in serving_module.RUNTIMES:
            figures = runtimes.get(runtime) or {}
            theirs = (ours.get(runtime) or {}).get("round_p50_ms")
            mine = figures.get("round_p50_ms")
            if mine and theirs and len(mine) == len(theirs) and len(mine) >= 2:
                ratio = statistics.paired_ratio(mine, theirs)
                ratios[name][runtime] = {**dataclasses.asdict(ratio),
                                         "ratios": list(ratio.ratios),
                                         "claimed": ratio.excludes_one}
    return ratios


def machine_sharing(rows, serving):
    """Whether other processes shared the machine while the cells trained
    and the serving rounds ran (`utils.machine_load`)."""
    loads = [r.get("machine_load") for r in rows if r.get("machine_load")]
    shared = [load for load in loads if load.get("shared")]
    rounds = [load for runtimes in serving.values() for runtime in serving_module.RUNTIMES
              for load in (runtimes.get(runtime) or {}).get("round_load") or []
              if load is not None]
    return {"cells_measured": len(loads), "cells_shared": len(shared),
            "shared": machine_load.shared_during(loads),
            "serving_load_average": max(rounds) if rounds else None}
