"""The report's accuracy section, from the comparison's record: the table at
the first noise rate (the interval over seeds beside the test set's own, the
paired difference with its t interval, p-values and decision), its plots,
BatchNorm's re-estimation, the learning curves, the per-class errors and
the label-noise table. See report.py for the whole report.
"""

import statistics as stats

from keras_pyramid.compare.convergence import STILL_FALLING
from keras_pyramid.compare.formats import (
    MISSING,
    count,
    interval,
    joined,
    margin,
    p_value,
    percent,
    points,
    shown,
)
from keras_pyramid.compare.render import Bullets, Heading, Paragraph, Table, plot_blocks
from keras_pyramid.compare.report_record import (
    accuracy_at,
    candidate_names,
    comparisons,
    finished_cells,
    first_accuracy,
    learning_curves_at,
    percent_label,
    trained,
)
from keras_pyramid.compare.statistics import BCA_MIN_SEEDS

BATCH_NORM_AGREEMENT = 0.01  # errors as trained and re-estimated within 1 point: they agree
NOT_ESTIMABLE = "not estimable"


def accuracy(record, plot_paths):
    """The accuracy section: the table, its notes and plots, then BatchNorm,
    learning curves, per class and label noise."""
    entry = first_accuracy(record)
    found = [Heading(2, "Accuracy")]
    if entry is None:
        return found + [Paragraph("No accuracy was measured.")]
    rate = percent_label(entry["noise"])
    with_bca = any(paired.get("bca_low") is not None for paired in comparisons(record))
    found += [
        Paragraph(f"Final error on {record['dataset'].get('final_evaluation') or MISSING} at "
                  f"label noise {rate}, over the seeds complete for every candidate "
                  f"({joined(entry.get('complete_seeds'))}). Differences pair by seed: "
                  f"candidate minus baseline, in points (below 0: less error than "
                  f"{record['baseline']})."),
        Table(_headers(with_bca), tuple(_row(record, entry, candidate, with_bca)
                                        for candidate in record["candidates"])),
        Paragraph(" ".join(_reading(record, entry, with_bca))),
        *_notes(entry),
        *plot_blocks(plot_paths, "error", f"Final error per seed (dots), mean and 95% CI "
                                          f"(bar), label noise {rate}"),
        *plot_blocks(plot_paths, "differences", f"Paired per-seed differences against "
                                                f"{record['baseline']}, mean and paired t 95% "
                                                f"CI"),
    ]
    return (found + batch_norm(record) + learning_curves(record, plot_paths)
            + _per_class(record) + _noise(record, plot_paths))


def _headers(with_bca):
    return ("candidate", "kind", "seeds", "mean error (%)", "std (points)",
            "95% CI over seeds (%)", "test-set 95% CI (%)", "difference vs baseline (points)",
            "paired t 95% CI (points)", *(("BCa 95% CI (points)",) if with_bca else ()),
            "p (paired t)", "sign-flip p", "decision")


def _row(record, entry, candidate, with_bca):
    """One candidate's row of the accuracy table."""
    name = candidate["name"]
    summary = (entry.get("per_candidate") or {}).get(name) or {}
    test_set = summary.get("test_set") or {}
    seeds_interval = interval(summary.get("low"), summary.get("high"), percent)
    if seeds_interval == MISSING and summary.get("std") == 0:  # every seed alike
        seeds_interval = f"{NOT_ESTIMABLE} (no spread)"
    return (name, candidate.get("kind") or MISSING, shown(summary.get("n"), str),
            percent(summary.get("mean")), shown(summary.get("std"), lambda s: f"{100 * s:.2f}"),
            seeds_interval, interval(test_set.get("low"), test_set.get("high"), percent),
            *_difference_cells(record, entry, name, with_bca))


def _difference_cells(record, entry, name, with_bca):
    """Mean difference, t interval, (BCa,) p, sign-flip p, decision; "baseline" for it."""
    width = 6 if with_bca else 5
    if name == record["baseline"]:
        return ("baseline",) * width
    paired = (entry.get("against_baseline") or {}).get(name)
    if not paired:
        return (MISSING,) * width
    t_interval = interval(paired.get("low"), paired.get("high"), points)
    if t_interval == MISSING and paired.get("note"):
        t_interval = NOT_ESTIMABLE
    bca = (interval(paired.get("bca_low"), paired.get("bca_high"), points),) if with_bca else ()
    return (points(paired.get("mean")), t_interval, *bca, p_value(paired.get("p_value")),
            p_value(paired.get("sign_flip_p")), paired.get("decision") or MISSING)


def _reading(record, entry, with_bca):
    """The sentences that say how to read the table's columns."""
    sentences = []
    examples = next((summary["test_set"]["examples"]
                     for summary in (entry.get("per_candidate") or {}).values()
                     if summary.get("test_set")), None)
    if examples:
        sentences.append(f"Test-set 95% CI: the exact (Clopper-Pearson) interval of the mean "
                         f"error on the {count(examples)} examples evaluated, the sampling error "
                         f"of the test set itself, which the interval over seeds leaves out.")
    if any(not trained(candidate) for candidate in record["candidates"]):
        sentences.append("An as-is candidate is one evaluation, not a sample of seeds: it has "
                         "no interval over seeds.")
    paired = [p for p in (entry.get("against_baseline") or {}).values() if p]
    least = next((p["smallest_sign_flip_p"] for p in paired
                  if p.get("smallest_sign_flip_p") is not None), None)
    if least is not None:
        sentences.append(f"Sign-flip p: the exact permutation test, which does not assume "
                         f"normality; with {len(paired[0]['differences'])} seeds it cannot go "
                         f"below {least:.3g}.")
    if not with_bca:
        sentences.append(f"BCa bootstrap intervals are given from {BCA_MIN_SEEDS} seeds on "
                         f"(with fewer they are too narrow); this comparison has "
                         f"{len(entry.get('complete_seeds') or [])}.")
    if entry.get("margin") is not None:
        sentences.append(f"Decision against a margin of ±{margin(entry['margin'])} points (a "
                         f"difference that does not matter): better or worse when the paired "
                         f"t interval excludes 0, equivalent when it lies within the margin, "
                         f"inconclusive otherwise.")
    return sentences


def _notes(entry):
    """Why an interval or p could not be estimated, per candidate."""
    notes = [f"{name}: {paired['note']}"
             for name, paired in (entry.get("against_baseline") or {}).items()
             if paired and paired.get("note")]
    return [Bullets(tuple(notes))] if notes else []


# BatchNorm's statistics: as trained, and re-estimated after training.

def batch_norm(record):
    """How BatchNorm's statistics were re-estimated, and whether the errors
    as trained and after it disagree (first noise rate)."""
    cells = [cell for cell in record.get("cells") or [] if cell.get("status") == "finished"]
    estimated = [cell["batch_norm_reestimated"] for cell in cells
                 if (cell.get("batch_norm_reestimated") or {}).get("layers")]
    found = [Heading(3, "BatchNorm statistics")]
    if not estimated:
        return found + [Paragraph("BatchNorm statistics are as trained: this record holds no "
                                  "re-estimation after training.")]
    images = sorted({one.get("images") for one in estimated if one.get("images")})
    batches = sorted({one.get("batches") for one in estimated if one.get("batches")})
    found.append(Paragraph(
        f"After training, every trained candidate's BatchNorm statistics were re-estimated on "
        f"{joined(images, count)} training images ({joined(batches)} batches; precise "
        f"BatchNorm, Wu and Johnson 2021), for every candidate alike: the errors in this "
        f"report are after it."))
    return found + _batch_norm_comparison(record)


def _batch_norm_comparison(record):
    """The table of errors as trained and re-estimated where they disagree
    by more than BATCH_NORM_AGREEMENT, else one sentence."""
    rate = (record.get("noise_rates") or [0.0])[0]
    rows, apart = [], []
    for candidate in record["candidates"]:
        cells = [cell for cell in finished_cells(record, candidate["name"], rate)
                 if cell.get("error_as_trained") is not None
                 and cell.get("final_error") is not None]
        if not cells:
            continue
        before = stats.mean(cell["error_as_trained"] for cell in cells)
        after = stats.mean(cell["final_error"] for cell in cells)
        rows.append((candidate["name"], str(len(cells)), percent(before), percent(after),
                     points(after - before)))
        if abs(after - before) > BATCH_NORM_AGREEMENT:
            apart.append(candidate["name"])
    where = f"means over the finished cells at label noise {percent_label(rate)}"
    if not rows:
        return []
    if not apart:
        return [Paragraph(f"The error as trained (BatchNorm's running statistics from "
                          f"training) and after the re-estimation agree within "
                          f"{margin(BATCH_NORM_AGREEMENT)} point for every candidate "
                          f"({where}).")]
    return [Paragraph(f"The error as trained (BatchNorm's running statistics from training) "
                      f"and after the re-estimation differ by more than "
                      f"{margin(BATCH_NORM_AGREEMENT)} point for {joined(apart)} ({where}):"),
            Table(("candidate", "cells", "error as trained (%)",
                   "error after re-estimation (%)", "change (points)"), tuple(rows))]


# Learning curves.

def learning_curves(record, plot_paths):
    """The learning-curve plot, what the curves were measured on, and per
    candidate and rate whether it was still improving."""
    rows = tuple(_curve_row(candidate, rate) for rate in record.get("noise_rates") or []
                 for candidate in record["candidates"] if learning_curves_at(candidate, rate))
    if not rows:
        return []
    measured_on = sorted({cell["curve_on"] for cell in record.get("cells") or []
                          if cell.get("curve_on")})
    return [Heading(3, "Learning curves"),
            Paragraph(f"Error after each epoch, measured on {joined(measured_on)}, not on the "
                      f"final evaluation split (so the final error chose no epoch). Still "
                      f"improving: the mean curve fell by more than "
                      f"{margin(STILL_FALLING)} points over its last third (2 epochs at "
                      f"least); such a candidate's ranking holds for this budget only."),
            *plot_blocks(plot_paths, "learning_curves",
                         f"Error per epoch (learning curves) on {joined(measured_on)}: each "
                         f"candidate's mean over seeds (line), least to greatest seed (band), "
                         f"per label-noise rate"),
            Table(("candidate", "label noise", "epochs", "seeds",
                   "error at the last epoch (mean, %)", "fall over the last third (points)",
                   "still improving"), rows)]


def _curve_row(candidate, rate):
    curves = learning_curves_at(candidate, rate)
    improving = curves.get("still_improving")
    return (candidate["name"], percent_label(rate), str(len(curves["epochs"])),
            shown(curves.get("seeds"), str), percent(curves["mean"][-1]),
            shown(curves.get("fall_over_window"), lambda fall: f"{100 * fall:.2f}"),
            MISSING if improving is None else ("yes" if improving else "no"))


# Per class and label noise.

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
    headers = ("candidate", *(f"label noise {percent_label(rate)}: mean error (%) "
                              f"[95% CI]" for rate in rates))
    rows = tuple((name, *(_noise_cell(record, rate, name) for rate in rates))
                 for name in candidate_names(record))
    return [Heading(3, "Label noise"),
            Paragraph("Mean final error at each label-noise rate of the training labels, with "
                      "its 95% CI over the seeds complete at that rate."),
            Table(headers, rows),
            *plot_blocks(plot_paths, "noise", "Mean error against the label-noise rate, 95% CI")]


def _noise_cell(record, rate, name):
    """`name`'s mean error at `rate` and its interval: "mean [low to high]"."""
    summary = ((accuracy_at(record, rate) or {}).get("per_candidate") or {}).get(name)
    if summary is None:
        return MISSING
    return (f"{percent(summary.get('mean'))} "
            f"[{interval(summary.get('low'), summary.get('high'), percent)}]")
