"""The report's cost sections, from the comparison's record: training cost
(medians per candidate, and ratios against the baseline paired by seed, with
error against cost) and serving cost (latency pooled over interleaved
rounds, cold start, and the p50 ratio against the baseline paired by round,
with the Pareto plot). See report.py for the whole report.

A ratio is said to differ from 1 only when the record `claimed` it (its 95%
interval excludes 1); otherwise its cell says "no difference shown".
"""

from keras_pyramid.compare.formats import (
    MISSING,
    count,
    duration,
    images_per_second,
    interval,
    joined,
    mebibytes,
    milliseconds,
    ratio,
    seconds,
    shown,
)
from keras_pyramid.compare.render import Bullets, Heading, Paragraph, Table, plot_blocks
from keras_pyramid.compare.report_record import (
    candidate_names,
    latency_span,
    runtimes,
    serving_ratio,
    trained,
)

NO_DIFFERENCE = "no difference shown"
PAIRED_COSTS = {"wall_seconds": "wall time", "train_images_per_second": "train images/s",
                "peak_host_memory_bytes": "peak host memory"}
MEMORY_PROCESS = {
    "fresh": "in a fresh process per cell, so each figure is that cell's own",
    "shared with earlier cells": "in a process shared with earlier cells, so a figure can be "
                                 "the most an earlier cell reached"}


def ratio_cell(paired):
    """A paired ratio as a table cell: "1.04x (0.98 to 1.10), no difference
    shown", the interval alone when claimed; MISSING for none."""
    if not paired or paired.get("ratio") is None:
        return MISSING
    if paired.get("low") is None or paired.get("high") is None:
        return f"{ratio(paired['ratio'])}, interval not estimable, {NO_DIFFERENCE}"
    text = f"{ratio(paired['ratio'])} ({interval(paired['low'], paired['high'], _two)})"
    return text if paired.get("claimed") else f"{text}, {NO_DIFFERENCE}"


def _two(value):
    return f"{value:.2f}"


# Training cost.

TRAINING_HEADERS = ("candidate", "parameters", "trainable", "multiply-adds per image (M)",
                    "train images/s (median step, compile apart)", "compile (s)",
                    "wall time per cell (median)", "images seen", "peak host memory (MiB)",
                    "accelerator memory (MiB)", "device")


def training_cost(record, plot_paths):
    """The training cost tables, how memory was measured, the plots."""
    recipe = (record.get("budget") or {}).get("recipe") or "full"
    rows = tuple(_training_row(record, candidate, recipe) for candidate in record["candidates"])
    return [Heading(2, "Training cost"),
            Paragraph(f"Per candidate, medians over its finished cells at this budget; the "
                      f"last column projects the whole {recipe} recipe at the measured speed. "
                      f"Two projections differ beyond the machine's noise only where the paired "
                      f"ratio of wall time below is claimed."),
            Table((*TRAINING_HEADERS, f"{recipe} recipe, projected"), rows),
            *_memory(record),
            *_against_baseline(record),
            *plot_blocks(plot_paths, "training_time",
                         "Training wall time per cell (dots), median (bar)"),
            *_error_against_cost(plot_paths)]


def _training_row(record, candidate, recipe):
    """One candidate's row of the training cost table."""
    name = candidate["name"]
    model = (name, count(candidate.get("parameters")), count(candidate.get("trainable_parameters")),
             shown(candidate.get("multiply_adds"), lambda value: f"{value / 1e6:,.1f}"))
    cost = (record.get("training_cost") or {}).get(name) or {}
    if not trained(candidate) or not cost:  # evaluated as it is: no training to cost
        return (*model, "not trained" if not trained(candidate) else MISSING, *(MISSING,) * 7)
    accelerator = cost.get("accelerator_peak_memory_bytes")
    return (*model, images_per_second(cost.get("train_images_per_second")),
            seconds(cost.get("compile_seconds")), duration(cost.get("wall_seconds")),
            count(cost.get("images_seen")), mebibytes(cost.get("peak_host_memory_bytes")),
            "none" if accelerator is None else mebibytes(accelerator),
            cost.get("device") or MISSING, duration(cost.get("projected_full_recipe_seconds")))


def _memory(record):
    """How peak host memory was measured: per process kind, the candidates."""
    costs = record.get("training_cost") or {}
    by_process = {}
    for name in candidate_names(record):
        if costs.get(name):
            by_process.setdefault(costs[name].get("process"), []).append(name)
    sources = sorted({cell["peak_host_memory_from"] for cell in record.get("cells") or []
                      if cell.get("peak_host_memory_from")})
    source = f", read as {joined(sources)}" if sources else ""
    said = [f"{'every trained candidate' if len(by_process) == 1 else joined(names)}: "
            f"measured {MEMORY_PROCESS[process]}"
            for process, names in by_process.items() if process in MEMORY_PROCESS]
    if not said:
        return []
    return [Paragraph(f"Peak host memory is the training process's high-water mark{source}; "
                      f"{'; '.join(said)}.")]


def _against_baseline(record):
    """The paired ratios of wall time, speed and memory against the baseline."""
    costs = record.get("training_cost") or {}
    rows = []
    for name in candidate_names(record):
        if name == record["baseline"] or not costs.get(name):
            continue
        paired = costs[name].get("against_baseline") or {}
        rows.append((name, *(ratio_cell(paired.get(key)) for key in PAIRED_COSTS)))
    if not rows:
        return []
    return [Paragraph(f"Against {record['baseline']}: each cost over the baseline's, paired by "
                      f"seed and noise rate (a seed's cells ran at about the same time, so a "
                      f"drift of the machine falls on both), the geometric mean of the per-pair "
                      f"ratios with its 95% CI; \"{NO_DIFFERENCE}\" where the interval holds 1."),
            Table(("candidate", *(f"{what} vs baseline" for what in PAIRED_COSTS.values())),
                  tuple(rows))]


def _error_against_cost(plot_paths):
    plotted = [*plot_blocks(plot_paths, "error_vs_time",
                            "Mean error (bar: 95% CI over seeds, or the test set's interval "
                            "where there is none) against the median training wall time per "
                            "cell (bar: least to greatest cell); trained candidates only"),
               *plot_blocks(plot_paths, "error_vs_multiply_adds",
                            "Mean error (bar: 95% CI) against the multiply-adds of one image's "
                            "forward pass, in millions: the compute a candidate asks for, on "
                            "any hardware")]
    return [Heading(3, "Error against cost"), *plotted] if plotted else []


# Serving cost.

SERVING_HEADERS = ("candidate", "runtime", "p50 (ms, pooled)", "round p50 range (ms)",
                   "p90 (ms)", "p99 (ms)", "requests", "cold start (s)",
                   "throughput (images/s)", "size (MiB)", "peak memory (MiB)",
                   "p50 vs baseline", "device")


def serving_cost(record, plot_paths):
    """The serving table, the claimed latency ratios, the Pareto plot."""
    names = candidate_names(record)
    rows = tuple(_serving_row(record, name, runtime, figures) for name in names
                 for runtime, figures in runtimes(record, name))
    found = [Heading(2, "Serving cost")]
    if not rows:
        return found + [Paragraph("Serving was not measured.")]
    found += [Paragraph(" ".join(_serving_reading(record))), Table(SERVING_HEADERS, rows)]
    unserved = [name for name in names if not runtimes(record, name)]
    if unserved:
        found.append(Paragraph(f"Not served (no serving figures): {joined(unserved)}."))
    sentences = serving_ratio_sentences(record)
    found += [Bullets(tuple(sentences))] if sentences else []
    return found + plot_blocks(
        plot_paths, "pareto",
        "Mean error (bar: 95% CI over seeds, or the test set's interval where there is none) "
        "against ONNX Runtime p50 latency (bar: least to greatest round p50); the Pareto front "
        "in red keeps every candidate that no other beats with separated intervals on one axis "
        "while being no worse on the other")


def _serving_reading(record):
    """The sentences that say how the serving table was measured and reads."""
    rounds = any(figures.get("rounds") for name in candidate_names(record)
                 for _, figures in runtimes(record, name))
    sentences = ["Latency of one image per request (batch 1), in ms; throughput at the batch "
                 "size shown; cold start: the runtime's import and the model's load."]
    if rounds:
        sentences.append("Every candidate was measured in interleaved rounds (each round runs "
                         "every candidate in turn, in a fresh process), so that a drift of the "
                         "machine falls on each alike: p50 pools every round's requests, the "
                         "range is the least to greatest round p50, cold start the median over "
                         "the rounds. p50 vs baseline: the p50 over the baseline's, paired by "
                         f"round, geometric mean and 95% CI; \"{NO_DIFFERENCE}\" where the "
                         "interval holds 1.")
    else:
        sentences.append("Each candidate was measured once, one after the other (no rounds): "
                         "no latency ratio between candidates carries an interval, so none "
                         "is claimed.")
    load = (record.get("machine") or {}).get("serving_load_average")
    if load is not None:
        cores = (record.get("hardware") or {}).get("cpu_count")
        sentences.append(f"The 1-minute load average before a measurement reached {load:.2f} "
                         f"(on {shown(cores, str)} cores).")
    return sentences


def _serving_row(record, name, runtime, figures):
    """One (candidate, runtime) row of the serving table."""
    latency = figures.get("latency_ms") or {}
    throughput = figures.get("throughput_images_per_second")
    span = latency_span(figures)
    rounds = figures.get("rounds")
    requests = count(figures.get("requests"))
    return (name, _runtime_label(runtime, figures), milliseconds(latency.get("p50")),
            MISSING if span is None else interval(span.low, span.high, milliseconds),
            milliseconds(latency.get("p90")), milliseconds(latency.get("p99")),
            f"{requests} in {rounds} rounds" if rounds else requests,
            shown(figures.get("load_seconds"), lambda value: f"{value:.2f}"),
            MISSING if throughput is None
            else f"{images_per_second(throughput)} at batch {figures.get('throughput_batch')}",
            mebibytes(figures.get("size_bytes")), mebibytes(figures.get("peak_memory_bytes")),
            "baseline" if name == record["baseline"]
            else ratio_cell(serving_ratio(record, name, runtime)),
            figures.get("device") or MISSING)


def _runtime_label(runtime, figures):
    """"onnxruntime 1.32.0", "saved_model (tensorflow 2.21.0)"."""
    label = figures.get("runtime") or runtime
    return label if label.startswith(runtime) else f"{runtime} ({label})"


def serving_ratio_sentences(record):
    """A sentence per claimed p50 ratio against the baseline (its interval,
    paired by round, excludes 1); none for the others."""
    sentences = []
    for name in candidate_names(record):
        for runtime, figures in runtimes(record, name):
            paired = serving_ratio(record, name, runtime)
            if not paired or not paired.get("claimed"):
                continue
            sentences.append(
                f"{name} serves at {ratio(paired['ratio'])} the "
                f"{_runtime_label(runtime, figures)} p50 latency of "
                f"{record['baseline']} (95% CI {interval(paired['low'], paired['high'], _two)}, "
                f"{len(paired.get('ratios') or [])} rounds paired).")
    return sentences
