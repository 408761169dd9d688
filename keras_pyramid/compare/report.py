"""The comparison's decision report, rendered from its record (the dict saved
as comparison.json): report.md and a self-contained report.html, same content.

    md_path, html_path = write_report(record, "comparisons/x")
    # comparisons/x/report.md     plots linked as plots/NAME.png
    # comparisons/x/report.html   plots embedded (base64 data URIs), one file
    # comparisons/x/plots/*.png   written by plots.write_plots

The record already holds the statistics (compare/statistics.py computed
them); this module only renders. `blocks(record, plot_paths)` builds the one
intermediate, a list of blocks (Heading, Paragraph, Bullets, Table, Code,
Plot, from compare/render.py); `to_markdown` and `to_html` render it, so
the two files cannot say different things. Sections, in order: the title line, the verdict and its
warnings, accuracy, training cost, serving cost, what this did not measure,
and the budget, versions, hardware and how to rebuild the report.

Numbers are shown as compare/formats.py writes them: errors percent with 2
decimals, differences signed points with 2 decimals; a value the record
lacks (None) is "—".
"""

import os

from keras_pyramid.compare import plots
from keras_pyramid.compare.formats import (
    MISSING,
    count,
    duration,
    images_per_second,
    interval,
    mebibytes,
    milliseconds,
    p_value,
    percent,
    points,
    seconds,
    shown,
)
from keras_pyramid.compare.render import (
    Bullets,
    Code,
    Heading,
    Paragraph,
    Plot,
    Table,
    to_html,
    to_markdown,
)
from keras_pyramid.compare.statistics import FEW_SEEDS, few_seeds_warning
from keras_pyramid.models.regularizers import REGULARIZED
from keras_pyramid.utils.files import atomic_write_text

PLOTS_FOLDER = "plots"
# Regularized PyramidNets and the suffix that names their plain counterpart
# (pyramidnet110_a48_sepdrop -> pyramidnet110_a48, as presets.default_name
# writes them); longest first, since "_drop" ends "_sepdrop" too.
REGULARIZED_SUFFIXES = tuple(sorted((f"_{name}" for name in REGULARIZED), key=len, reverse=True))
SHORT_BUDGET = ("A short budget can rank stochastic-depth models below plain ones when a long "
                "one would not: at 4 epochs on a small folder, SepDrop lost 33 points to plain "
                "PyramidNet-20; this comparison's budget was {budget}")


def write_report(record, folder):
    """Writes the plots (folder/plots), report.md and report.html into
    `folder`, each file atomically; returns (md_path, html_path)."""
    os.makedirs(folder, exist_ok=True)
    plot_paths = plots.write_plots(record, os.path.join(folder, PLOTS_FOLDER))
    content = blocks(record, plot_paths)
    md_path = os.path.join(folder, "report.md")
    html_path = os.path.join(folder, "report.html")
    atomic_write_text(md_path, to_markdown(content))
    atomic_write_text(html_path, to_html(content))
    return md_path, html_path


def blocks(record, plot_paths):
    """The report as a list of blocks; `plot_paths`: write_plots' answer."""
    return [*_title(record), *_verdict(record), *_accuracy(record, plot_paths),
            *_training_cost(record, plot_paths), *_serving_cost(record, plot_paths),
            *_not_measured(record), *_provenance(record)]


def _joined(values, form=str):
    """The values in `form`, comma-separated; MISSING for none."""
    return ", ".join(form(value) for value in values) if values else MISSING


def _budget_phrase(budget):
    """The budget in words: "15 epochs of 78 steps at batch 64 (paper recipe)"."""
    return (f"{shown(budget.get('epochs'), str)} epochs of "
            f"{shown(budget.get('steps_per_epoch'), str)} steps at batch "
            f"{shown(budget.get('batch_size'), str)} ({budget.get('recipe') or MISSING} recipe)")


def _trained(candidate):
    """Whether the candidate was trained here (an as-is one is only evaluated)."""
    return candidate.get("kind") != "as-is" and candidate.get("trained", True)


def _plot(plot_paths, name, caption):
    """A Plot block for the plot `name`, or none when it was not written."""
    path = plot_paths.get(name)
    if path is None:
        return []
    return [Plot(f"{PLOTS_FOLDER}/{os.path.basename(path)}", path, caption)]


# 1. Title.

def _title(record):
    """The title and the one line on what was compared."""
    dataset = record["dataset"]
    title = (f"Comparison on {dataset['spec']}: {len(record['candidates'])} candidates "
             f"against {record['baseline']}")
    line = (f"Compared {_joined(plots.candidate_names(record))} on {dataset['spec']}: "
            f"{count(dataset.get('train_examples'))} training examples, final evaluation on "
            f"{dataset.get('final_evaluation') or MISSING} "
            f"({count(dataset.get('evaluated_examples'))} examples), seeds "
            f"{_joined(record.get('seeds'))}, label-noise rates "
            f"{_joined(record.get('noise_rates'), plots.percent_label)}, budget "
            f"{_budget_phrase(record.get('budget') or {})}. "
            f"{_sentence(dataset.get('resized'))}"
            f"Wall time (the runs of the command that trained or measured, added up) "
            f"{duration(record.get('wall_seconds'))}.")
    return [Heading(1, title), Paragraph(line)]


def _sentence(note):
    """`note` as a sentence of its own ("" for none): "Images given at ... 32x32. "."""
    return f"{note[0].upper()}{note[1:]}. " if note else ""


# 2. Verdict and warnings.

def _verdict(record):
    """The verdict sentences, per noise rate, then the warnings."""
    found = [Heading(2, "Verdict")]
    several = len(record.get("noise_rates") or []) > 1
    for rate in record.get("noise_rates") or []:
        entry = plots.accuracy_at(record, rate)
        sentences = _verdicts(record, entry or {})
        if several:
            seeds = len((entry or {}).get("complete_seeds") or [])
            found.append(Paragraph(f"At label noise {plots.percent_label(rate)} "
                                   f"({seeds} seeds complete for every candidate):"))
        if sentences:
            found.append(Bullets(tuple(sentences)))
    return found + [Heading(3, "Warnings"), Bullets(tuple(warnings(record)))]


def _verdicts(record, entry):
    """The verdict sentence of each candidate against the baseline at one rate."""
    baseline = record["baseline"]
    paired = entry.get("against_baseline") or {}
    return [(paired.get(name) or {}).get("verdict")
            or f"{name}: no paired comparison with {baseline} (fewer than 2 seeds complete)"
            for name in plots.candidate_names(record) if name != baseline]


def warnings(record):
    """The report's warnings: few seeds, missing cells, candidates built for
    another recipe, the short budget (always), then the record's own (less
    any few-seeds warning, which the report words itself)."""
    seeds = [len(entry.get("complete_seeds") or []) for entry in record.get("accuracy") or []]
    found = [few_seeds_warning(min(seeds or [len(record.get("seeds") or [])]))]
    found += [_missing_cells_warning(record)]
    found += [f"{candidate['name']} was built for another recipe: {candidate['built_for']}"
              for candidate in record["candidates"] if candidate.get("built_for")]
    found += [SHORT_BUDGET.format(budget=_budget_phrase(record.get("budget") or {}))]
    found = [warning for warning in found if warning]
    derived = {few_seeds_warning(n) for n in range(FEW_SEEDS)}
    return found + [warning for warning in record.get("warnings") or []
                    if warning not in found and warning not in derived]


def _missing_cells_warning(record):
    """The cells that did not run to the end, named; None when all did."""
    missing = [cell for cell in record.get("cells") or [] if cell.get("status") == "missing"]
    if not missing:
        return None
    named = "; ".join(_cell_name(cell) for cell in missing)
    cells = "1 cell" if len(missing) == 1 else f"{len(missing)} cells"
    return (f"{cells} missing (not finished): {named}; the statistics at each rate use only "
            f"the seeds complete for every candidate")


def _cell_name(cell):
    """A cell in words, "NAME at label noise 20%, seed 2"; an as-is
    candidate's one evaluation has no noise rate or seed."""
    if cell.get("noise") is None:
        return f"{cell['candidate']} (its evaluation)"
    return (f"{cell['candidate']} at label noise {plots.percent_label(cell['noise'])}, "
            f"seed {cell['seed']}")


# 3. Accuracy: the table, the per-class errors, the noise table.

ACCURACY_HEADERS = ("candidate", "kind", "seeds", "mean error (%)", "std (points)",
                    "95% CI (%)", "difference vs baseline (points)", "paired t 95% CI (points)",
                    "BCa 95% CI (points)", "p (paired t)")


def _accuracy(record, plot_paths):
    """The accuracy table at the first noise rate, its plots, per class, noise."""
    entry = plots.first_accuracy(record)
    found = [Heading(2, "Accuracy")]
    if entry is None:
        return found + [Paragraph("No accuracy was measured.")]
    rate = plots.percent_label(entry["noise"])
    found += [
        Paragraph(f"Final error on {record['dataset'].get('final_evaluation') or MISSING} at "
                  f"label noise {rate}, over the seeds complete for every candidate "
                  f"({_joined(entry.get('complete_seeds'))}). Differences pair by seed: "
                  f"candidate minus baseline, in points (below 0: less error than "
                  f"{record['baseline']})."),
        Table(ACCURACY_HEADERS, tuple(_accuracy_row(record, entry, candidate)
                                      for candidate in record["candidates"])),
        *_plot(plot_paths, "error", f"Final error per seed (dots), mean and 95% CI (bar), "
                                    f"label noise {rate}"),
        *_plot(plot_paths, "differences", f"Paired per-seed differences against "
                                          f"{record['baseline']}, mean and paired t 95% CI"),
    ]
    return found + _per_class(record) + _noise(record, plot_paths)


def _accuracy_row(record, entry, candidate):
    """One candidate's row of the accuracy table."""
    name = candidate["name"]
    summary = (entry.get("per_candidate") or {}).get(name) or {}
    return (name, candidate.get("kind") or MISSING, shown(summary.get("n"), str),
            percent(summary.get("mean")), shown(summary.get("std"), lambda s: f"{100 * s:.2f}"),
            interval(summary.get("low"), summary.get("high"), percent),
            *_difference_cells(record, entry, name))


def _difference_cells(record, entry, name):
    """Mean difference, t interval, BCa interval and p; "baseline" for it."""
    if name == record["baseline"]:
        return ("baseline",) * 4
    paired = (entry.get("against_baseline") or {}).get(name) or {}
    return (points(paired.get("mean")), interval(paired.get("low"), paired.get("high"), points),
            interval(paired.get("bca_low"), paired.get("bca_high"), points),
            p_value(paired.get("p_value")))


def _per_class(record):
    """The per-class errors of the baseline and the best candidate, if recorded."""
    per_class = record.get("per_class")
    if not per_class:
        return []
    baseline, best = per_class["baseline"], per_class["best"]
    headers = ("class", f"{baseline['candidate']} (baseline) error (%)",
               f"{best['candidate']} (least mean error besides the baseline) error (%)")
    rows = tuple((name, percent(one), percent(other)) for name, one, other
                 in zip(per_class["class_names"], baseline["errors"], best["errors"]))
    return [Heading(3, "Per-class error"),
            Paragraph("Error per class of the baseline and of the other candidate with the least "
                      "mean error (mean over the complete seeds), on the final evaluation split."),
            Table(headers, rows)]


def _noise(record, plot_paths):
    """The mean error per noise rate; nothing with a single rate."""
    rates = record.get("noise_rates") or []
    if len(rates) < 2:
        return []
    headers = ("candidate", *(f"label noise {plots.percent_label(rate)}: mean error (%) "
                              f"[95% CI]" for rate in rates))
    rows = tuple((name, *(_noise_cell(record, rate, name) for rate in rates))
                 for name in plots.candidate_names(record))
    return [Heading(3, "Label noise"),
            Paragraph("Mean final error at each label-noise rate of the training labels, with "
                      "its 95% CI over the seeds complete at that rate."),
            Table(headers, rows),
            *_plot(plot_paths, "noise", "Mean error against the label-noise rate, 95% CI")]


def _noise_cell(record, rate, name):
    """`name`'s mean error at `rate` and its interval: "mean [low to high]"."""
    summary = ((plots.accuracy_at(record, rate) or {}).get("per_candidate") or {}).get(name)
    if summary is None:
        return MISSING
    return (f"{percent(summary.get('mean'))} "
            f"[{interval(summary.get('low'), summary.get('high'), percent)}]")


# 4. Training cost.

def _training_cost(record, plot_paths):
    """The training cost table and the training-time plot."""
    recipe = (record.get("budget") or {}).get("recipe") or "full"
    headers = ("candidate", "parameters", "trainable", "multiply-adds per image (M)",
               "train images/s (median step, compile apart)", "compile (s)",
               "wall time per cell (median)", "images seen", "peak host memory (MiB)",
               "accelerator memory (MiB)", "device", f"{recipe} recipe, projected")
    rows = tuple(_training_row(record, candidate) for candidate in record["candidates"])
    return [Heading(2, "Training cost"),
            Paragraph("Per candidate, over its finished cells at this budget; the last column "
                      f"projects the whole {recipe} recipe at the measured speed."),
            Table(headers, rows),
            *_plot(plot_paths, "training_time", "Training wall time per cell (dots), median (bar)")]


def _training_row(record, candidate):
    """One candidate's row of the training cost table."""
    name = candidate["name"]
    model = (name, count(candidate.get("parameters")), count(candidate.get("trainable_parameters")),
             shown(candidate.get("multiply_adds"), lambda value: f"{value / 1e6:,.1f}"))
    if not _trained(candidate):  # evaluated as it is: there is no training to cost
        return (*model, "not trained", *(MISSING,) * 7)
    cost = (record.get("training_cost") or {}).get(name) or {}
    accelerator = cost.get("accelerator_peak_memory_bytes")
    return (*model, images_per_second(cost.get("train_images_per_second")),
            seconds(cost.get("compile_seconds")), duration(cost.get("wall_seconds")),
            count(cost.get("images_seen")), mebibytes(cost.get("peak_host_memory_bytes")),
            "none" if accelerator is None else mebibytes(accelerator),
            cost.get("device") or MISSING, duration(cost.get("projected_full_recipe_seconds")))


# 5. Serving cost.

SERVING_HEADERS = ("candidate", "runtime", "p50 (ms)", "p90 (ms)", "p99 (ms)", "requests",
                   "throughput (images/s)", "size (MiB)", "peak memory (MiB)", "device")


def _serving_cost(record, plot_paths):
    """The serving table, the latency ratios of regularized to plain, the Pareto plot."""
    names = plots.candidate_names(record)
    rows = tuple(_serving_row(name, runtime, figures) for name in names
                 for runtime, figures in _runtimes(record, name))
    found = [Heading(2, "Serving cost")]
    if not rows:
        return found + [Paragraph("Serving was not measured.")]
    found += [Paragraph("Latency of one image per request (batch 1), in ms; throughput at the "
                        "batch size shown."),
              Table(SERVING_HEADERS, rows)]
    unserved = [name for name in names if not _runtimes(record, name)]
    if unserved:
        found.append(Paragraph(f"Not served (no serving figures): {_joined(unserved)}."))
    sentences = serving_ratio_sentences(record)
    found += [Bullets(tuple(sentences))] if sentences else []
    return found + _plot(plot_paths, "pareto", "Mean error against ONNX Runtime p50 latency; "
                                               "the Pareto front in red")


def _runtimes(record, name):
    """[(runtime key, figures)] of `name`'s serving entry (its seed aside)."""
    entry = (record.get("serving") or {}).get(name) or {}
    return [(key, value) for key, value in entry.items() if isinstance(value, dict)]


def _serving_row(name, runtime, figures):
    """One (candidate, runtime) row of the serving table."""
    latency = figures.get("latency_ms") or {}
    label = figures.get("runtime") or runtime
    if not label.startswith(runtime):  # "saved_model (tensorflow 2.21.0)"
        label = f"{runtime} ({label})"
    throughput = figures.get("throughput_images_per_second")
    batch = figures.get("throughput_batch")
    return (name, label, milliseconds(latency.get("p50")), milliseconds(latency.get("p90")),
            milliseconds(latency.get("p99")), count(figures.get("requests")),
            MISSING if throughput is None else f"{images_per_second(throughput)} at batch {batch}",
            mebibytes(figures.get("size_bytes")), mebibytes(figures.get("peak_memory_bytes")),
            figures.get("device") or MISSING)


def plain_counterpart(name):
    """pyramidnet110_a48_sepdrop -> pyramidnet110_a48; None for a plain name."""
    for suffix in REGULARIZED_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return None


def serving_ratio_sentences(record):
    """For each regularized PyramidNet whose plain counterpart is also a
    candidate, both served: its ONNX Runtime p50 latency (and size) as a
    multiple of the plain one's."""
    names = plots.candidate_names(record)
    sentences = []
    for name in names:
        plain = plain_counterpart(name)
        latencies = [plots.serving_latency(record, one) for one in (name, plain)]
        if plain not in names or None in latencies or not latencies[1]:
            continue
        sizes = [plots.serving_figures(record, one).get("size_bytes") for one in (name, plain)]
        size = ("" if None in sizes or not sizes[1]
                else f" (and {sizes[0] / sizes[1]:.2f} times its size)")
        sentences.append(f"{name} serves at {latencies[0] / latencies[1]:.2f} times the ONNX "
                         f"Runtime p50 latency of {plain}{size}.")
    return sentences


# 6. What this did not measure; 7. budget, versions, hardware, rebuilding.

def _not_measured(record):
    """The record's list of what was not measured, and the hardware it holds for."""
    items = [*(record.get("not_measured") or []),
             f"other hardware: everything above was measured on "
             f"{_hardware_phrase(record.get('hardware') or {})} only; costs, and their "
             f"ranking, can differ elsewhere"]
    return [Heading(2, "What this did not measure"), Bullets(tuple(items))]


def _hardware_phrase(hardware):
    """The hardware in words: device, CPU cores, platform."""
    cores = hardware.get("cpu_count")
    return (f"{hardware.get('device') or MISSING}, {shown(cores, str)} CPU cores, "
            f"{hardware.get('platform') or MISSING}")


def _provenance(record):
    """Budget, versions, hardware, the command, and how to rebuild the report."""
    budget = {**(record.get("budget") or {}),
              "split_seed": record["dataset"].get("split_seed")}
    versions = sorted((record.get("versions") or {}).items())
    return [Heading(2, "Budget, versions, hardware and rebuilding"),
            Table(("budget", "value"), tuple((key, shown(value, str))
                                             for key, value in budget.items())),
            Table(("package", "version"), tuple((key, shown(value, str))
                                                for key, value in versions)),
            Paragraph(f"Hardware: {_hardware_phrase(record.get('hardware') or {})}. Record "
                      f"written {record.get('written') or MISSING} (format "
                      f"{shown(record.get('format'), str)}) by:"),
            Code(record.get("command") or MISSING),
            Paragraph("Rebuild this report and its plots from comparison.json, training nothing:"),
            Code(rebuild_command(record))]


def rebuild_command(record):
    """The record's command with --report-only (added once)."""
    command = record.get("command") or "python applications/compare.py --output OUTPUT"
    return command if "--report-only" in command.split() else f"{command} --report-only"


