"""A small synthetic comparison record for the report's and the plots'
tests (test_report.py, test_plots.py), built as comparison.py builds one:
the statistics, learning curves, serving ratios and machine sharing come
from the library's own functions, the rest is written by hand below.

3 candidates (an as-is baseline, a plain and a SepDrop PyramidNet-20),
3 seeds, 2 noise rates, one cell missing. Also the readers the tests share:
a report section, a table row, a cell by its column's header.
"""

import statistics as stats

from keras_pyramid.compare import convergence, cost_summary, statistics

BASELINE = "current.keras"
PLAIN = "pyramidnet20_a24"
SEPDROP = "pyramidnet20_a24_sepdrop"
SEEDS = [0, 1, 2]
MARGIN = 0.01  # 1 point
EXAMPLES = 10000  # evaluated per final evaluation
# Final errors per noise rate, candidate and seed; None: the cell did not finish.
ERRORS = {
    0.0: {BASELINE: [0.30, 0.30, 0.30], PLAIN: [0.25, 0.27, 0.26], SEPDROP: [0.28, 0.29, 0.31]},
    0.2: {BASELINE: [0.30, 0.30, 0.30], PLAIN: [0.33, 0.35, 0.34], SEPDROP: [0.32, 0.36, None]},
}
# The error before BatchNorm's re-estimation, above the final one: SepDrop's
# by 3 points (they disagree), the plain network's by 0.2 (they agree).
AS_TRAINED_ABOVE = {PLAIN: 0.002, SEPDROP: 0.03}
# The learning curve's errors above the final one, epochs 1 to 3: the plain
# network's flat over its last third, SepDrop's still falling.
CURVE_ABOVE = {PLAIN: [0.10, 0.0, 0.0], SEPDROP: [0.10, 0.05, 0.0]}
BUILT_FOR = "built for <ImageNet> 224 x 224 inputs & a 300-epoch recipe"
# ONNX Runtime (pooled p50 ms, each round's p50 ms, size bytes).
SERVED = {BASELINE: (2.0, [2.0, 2.1, 1.9, 2.0, 2.0], 8_000_000),
          PLAIN: (1.5, [1.5, 1.4, 1.6, 1.5, 1.5], 4_000_000),
          SEPDROP: (1.8, [1.8, 2.2, 1.7, 2.1, 1.9], 4_200_000)}
SHARED_CELLS = {(PLAIN, 0.0, 0), (SEPDROP, 0.0, 0)}  # other work took the machine's CPU
# Paired training-cost ratios against the baseline, written by hand (an
# as-is baseline has no training to pair with): the plain network's wall
# time claimed, SepDrop's not.
WALL_RATIOS = {PLAIN: {"ratio": 1.25, "low": 1.10, "high": 1.42, "claimed": True},
               SEPDROP: {"ratio": 1.04, "low": 0.98, "high": 1.10, "claimed": False}}
RETIRED = ("A short budget can rank stochastic-depth models below plain ones when a long one "
           "would not: at 4 epochs on a small folder, SepDrop lost 33 points to plain "
           "PyramidNet-20; this comparison's budget was 15 epochs")


def accuracy_entry(noise):
    """The record's accuracy entry at `noise`, computed as accuracy.py does."""
    errors = ERRORS[noise]
    complete = [s for s in SEEDS if all(errors[name][s] is not None for name in errors)]
    kept = {name: [values[s] for s in complete] for name, values in errors.items()}
    per_candidate = {}
    for name, values in kept.items():
        summary = statistics.over_seeds(values if name != BASELINE else values[:1])
        test_set = statistics.test_set_interval(summary.mean, EXAMPLES)
        per_candidate[name] = {**vars(summary), "errors": values, "test_set": vars(test_set)}
    return {"noise": noise, "complete_seeds": complete, "per_candidate": per_candidate,
            "margin": MARGIN, "against_baseline": {
                name: against(kept[name], kept[BASELINE], name) for name in (PLAIN, SEPDROP)}}


def against(errors, baseline_errors, name):
    """One paired comparison with its decision and plan, as accuracy.py has it."""
    paired = statistics.paired_difference(errors, baseline_errors)
    entry = {**vars(paired), "differences": list(paired.differences),
             "verdict": statistics.verdict(paired, name, BASELINE),
             "decision": statistics.decision(paired, MARGIN),
             "smallest_sign_flip_p": statistics.smallest_sign_flip_p(paired.n),
             "detectable_difference": None, "seeds_to_resolve": None}
    if paired.note is None:
        spread = stats.stdev(paired.differences)
        entry["detectable_difference"] = statistics.detectable_difference(spread, paired.n)
    if entry["decision"] == "inconclusive":
        entry["seeds_to_resolve"] = statistics.seeds_to_resolve(paired.differences, MARGIN)
    return entry


def cell(name, noise, seed):
    """One trained cell of the grid."""
    error = ERRORS[noise][name][seed]
    row = {"candidate": name, "noise": noise, "seed": seed, "run_dir": f"cells/{name}",
           "status": "missing" if error is None else "finished", "final_error": error,
           "wall_seconds": None if error is None else 100.0 + 10 * seed,
           "train_images_per_second": None if error is None else 640.0}
    if error is not None:
        row.update(
            error_as_trained=error + AS_TRAINED_ABOVE[name], image_size=[32, 32],
            batch_norm_reestimated={"layers": 19, "batches": 16, "images": 4096},
            curve=[{"epoch": epoch + 1, "error": error + above}
                   for epoch, above in enumerate(CURVE_ABOVE[name])],
            curve_on="hold-out of train (1000 of 50000)", process="fresh",
            peak_host_memory_from="VmHWM since its reset (Linux)",
            machine_load={"shared": (name, noise, seed) in SHARED_CELLS,
                          "other_cpu_fraction": 0.3, "load_average_1m": [1.0, 2.0],
                          "wall_seconds": 100.0, "cores": 2})
    return row


def serving(name):
    """ONNX Runtime and SavedModel figures of `name`, measured in 5 rounds
    (the SavedModel twice the size, three times the latency)."""
    latency, rounds, size = SERVED[name]
    onnx = {"runtime": "onnxruntime 1.32.0", "requests": 500, "warmup": 50, "rounds": 5,
            "latency_ms": {"p50": latency, "p90": 1.2 * latency, "p99": 2 * latency},
            "round_p50_ms": rounds, "load_seconds": 0.25, "round_load": [0.5] * 5,
            "throughput_batch": 32, "throughput_images_per_second": 900.0,
            "size_bytes": size, "peak_memory_bytes": 200 * 2 ** 20, "device": "CPU"}
    return {"seed": 0, "onnxruntime": onnx,
            "saved_model": {**onnx, "runtime": "tensorflow 2.21.0", "size_bytes": 2 * size,
                            "latency_ms": {key: 3 * value
                                           for key, value in onnx["latency_ms"].items()},
                            "round_p50_ms": [3 * value for value in rounds]}}


def training_cost(name):
    """One trained candidate's training cost, its paired ratios by hand."""
    paired = {**WALL_RATIOS[name], "ratios": [], "pairs": 3, "note": None}
    return {"wall_seconds": 110.0, "train_images_per_second": 640.0, "compile_seconds": 5.0,
            "images_seen": 75000, "peak_host_memory_bytes": 512 * 2 ** 20,
            "accelerator_peak_memory_bytes": None, "device": "CPU (2 cores)",
            "projected_full_recipe_seconds": 300000.0, "process": "fresh",
            "shared_machine": True, "cells": 6,
            "against_baseline": {"wall_seconds": paired, "train_images_per_second": None,
                                 "peak_host_memory_bytes": None}}


def candidate(name, kind, parameters, multiply_adds, cells):
    """A candidate's entry with its learning curves, as comparison.py has it."""
    entry = {"name": name, "kind": kind, "trained": kind != "as-is",
             "built_for": BUILT_FOR if name == SEPDROP else None, "parameters": parameters,
             "trainable_parameters": parameters - 2_000, "multiply_adds": multiply_adds,
             "learning_curves": None, "still_improving": None}
    if entry["trained"]:
        entry["learning_curves"] = {f"{noise:g}": convergence.learning_curves(
            [c["curve"] for c in cells if c["candidate"] == name and c["noise"] == noise
             and c["status"] == "finished"]) for noise in ERRORS}
        entry["still_improving"] = entry["learning_curves"]["0"]["still_improving"]
    return entry


def make_record():
    """The record (see the module doc)."""
    cells = [{"candidate": BASELINE, "noise": None, "seed": None, "run_dir": "cells/x",
              "status": "evaluated", "final_error": 0.30}]
    cells += [cell(n, noise, s) for n in (PLAIN, SEPDROP) for noise in ERRORS for s in SEEDS]
    candidates = [candidate(BASELINE, "as-is", 1_000_000, 56_000_000, cells),
                  candidate(PLAIN, "registered", 200_000, 40_000_000, cells),
                  candidate(SEPDROP, "registered", 210_000, 41_000_000, cells)]
    served = {c["name"]: serving(c["name"]) for c in candidates}
    return {
        "format": 1, "written": "2026-12-03T05:00:00",
        "command": "python applications/compare.py out --seeds 3", "wall_seconds": 1234.5,
        "dataset": {"spec": "cifar10", "class_names": ["cat", "dog", "ship"],
                    "image_size": [32, 32], "image_size_from": "the data's own",
                    "train_examples": 5000, "final_evaluation": "test",
                    "evaluated_examples": EXAMPLES, "split_seed": 0},
        "budget": {"recipe": "paper", "epochs": 15, "batch_size": 64, "learning_rate": 0.1,
                   "weight_decay": 0.0001, "steps_per_epoch": 78},
        "baseline": BASELINE, "seeds": SEEDS, "noise_rates": list(ERRORS),
        "candidates": candidates, "cells": cells,
        "accuracy": [accuracy_entry(noise) for noise in ERRORS],
        "per_class": {"class_names": ["cat", "dog", "ship"],
                      "baseline": {"candidate": BASELINE, "errors": [0.5, 0.3, 0.1]},
                      "best": {"candidate": PLAIN, "errors": [0.4, 0.25, 0.125]}},
        "training_cost": {BASELINE: None, PLAIN: training_cost(PLAIN),
                          SEPDROP: training_cost(SEPDROP)},
        "serving": served, "serving_ratios": cost_summary.serving_ratios(served, BASELINE),
        "machine": cost_summary.machine_sharing(cells, served),
        # The few-seeds warning again (the report words it too): shown once;
        # the retired short-budget one: not shown.
        "warnings": ["a warning of the record's own", statistics.few_seeds_warning(2), RETIRED],
        "not_measured": ["no GPU on this machine: accelerator costs were not measured"],
        "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"},
        "hardware": {"device": "CPU", "cpu_count": 2, "platform": "Linux-x86_64"}}


def section(md, heading, level=2):
    """The text of the `heading` section of report.md (to the next one of its level)."""
    marks = "#" * level
    return md.split(f"\n{marks} {heading}\n", 1)[1].split(f"\n{marks} ", 1)[0]


def table_row(text, name):
    """The cells of the first table row of `text` that starts with `name`."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return line.strip("| ").split(" | ")


def column(text, name, header):
    """The cell of `name`'s row under `header`, in the first table of `text`
    that has that header."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines)
                 if line.startswith("| ") and f"| {header} |" in line)
    headers = lines[index].strip("| ").split(" | ")
    rows = []
    for line in lines[index + 2:]:
        if not line.startswith("| "):
            break
        rows.append(line.strip("| ").split(" | "))
    return next(row for row in rows if row[0] == name)[headers.index(header)]
