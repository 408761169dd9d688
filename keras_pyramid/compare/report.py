"""The comparison's decision report, rendered from its record (the dict saved
as comparison.json): report.md and a self-contained report.html, same content.

    md_path, html_path = write_report(record, "comparisons/x")
    # comparisons/x/report.md     plots linked as plots/NAME.png
    # comparisons/x/report.html   plots embedded (base64 data URIs), one file
    # comparisons/x/plots/*.png   written by plots.write_plots

The record already holds the statistics (compare/statistics.py computed
them); the report only renders. `blocks(record, plot_paths)` builds the one
intermediate, a list of blocks (Heading, Paragraph, Bullets, Table, Code,
Plot, from compare/render.py); `to_markdown` and `to_html` render it, so the
two files cannot say different things. Sections, in order: the title line;
the verdict (a decision per noise rate and candidate against the baseline)
and its warnings; accuracy with BatchNorm's re-estimation and the learning
curves (report_accuracy.py); training cost and serving cost
(report_costs.py); what this did not measure; and the budget, versions,
hardware and how to rebuild the report.

Numbers are shown as compare/formats.py writes them: errors percent with 2
decimals, differences signed points with 2 decimals; a value the record
lacks (None) is "—", and an interval is never "x to x".
"""

import os

from keras_pyramid.compare import plots
from keras_pyramid.compare.formats import MISSING, count, duration, joined, margin, shown
from keras_pyramid.compare.render import (
    PLOTS_FOLDER,
    Bullets,
    Code,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from keras_pyramid.compare.report_accuracy import accuracy
from keras_pyramid.compare.report_costs import serving_cost, training_cost
from keras_pyramid.compare.report_record import accuracy_at, candidate_names, percent_label
from keras_pyramid.compare.statistics import FEW_SEEDS, few_seeds_warning
from keras_pyramid.utils.files import atomic_write_text
from keras_pyramid.utils.machine_load import SHARED_FRACTION

# Warnings older reports printed on every comparison, which no result of the
# comparison backed (a short-budget anecdote): a record that still carries
# one does not show it.
RETIRED_WARNINGS = ("A short budget can rank stochastic-depth models below plain ones",)


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
    return [*_title(record), *_verdict(record), *accuracy(record, plot_paths),
            *training_cost(record, plot_paths), *serving_cost(record, plot_paths),
            *_not_measured(record), *_provenance(record)]


def _budget_phrase(budget):
    """The budget in words: "15 epochs of 78 steps at batch 64 (paper recipe)"."""
    return (f"{shown(budget.get('epochs'), str)} epochs of "
            f"{shown(budget.get('steps_per_epoch'), str)} steps at batch "
            f"{shown(budget.get('batch_size'), str)} ({budget.get('recipe') or MISSING} recipe)")


# 1. Title.

def _title(record):
    """The title and the one line on what was compared."""
    dataset = record["dataset"]
    title = (f"Comparison on {dataset['spec']}: {len(record['candidates'])} candidates "
             f"against {record['baseline']}")
    line = (f"Compared {joined(candidate_names(record))} on {dataset['spec']}: "
            f"{count(dataset.get('train_examples'))} training examples, final evaluation on "
            f"{dataset.get('final_evaluation') or MISSING} "
            f"({count(dataset.get('evaluated_examples'))} examples), seeds "
            f"{joined(record.get('seeds'))}, label-noise rates "
            f"{joined(record.get('noise_rates'), percent_label)}, budget "
            f"{_budget_phrase(record.get('budget') or {})}. "
            f"{_sentence(dataset.get('resized'))}{_image_size(dataset)}"
            f"Wall time (the runs of the command that trained or measured, added up) "
            f"{duration(record.get('wall_seconds'))}.")
    return [Heading(1, title), Paragraph(line)]


def _sentence(note):
    """`note` as a sentence of its own ("" for none): "Images given at ... 32x32. "."""
    return f"{note[0].upper()}{note[1:]}. " if note else ""


def _image_size(dataset):
    """"Input 32x32 for every candidate (the data's own). " ("" for none)."""
    size = dataset.get("image_size")
    if not size:
        return ""
    source = dataset.get("image_size_from")
    return (f"Input {'x'.join(str(side) for side in size)} for every candidate"
            f"{f' ({source})' if source else ''}. ")


# 2. Verdict and warnings.

def _verdict(record):
    """The decision of each candidate per noise rate, whether the ranking
    holds beyond this budget, then the warnings."""
    found = [Heading(2, "Verdict")]
    several = len(record.get("noise_rates") or []) > 1
    for rate in record.get("noise_rates") or []:
        entry = accuracy_at(record, rate) or {}
        sentences = _verdicts(record, entry)
        if several:
            seeds = len(entry.get("complete_seeds") or [])
            found.append(Paragraph(f"At label noise {percent_label(rate)} "
                                   f"({seeds} seeds complete for every candidate):"))
        if sentences:
            found.append(Bullets(tuple(sentences)))
    improving = [c["name"] for c in record["candidates"] if c.get("still_improving")]
    if improving:
        found.append(Paragraph(f"The ranking holds for this budget only: {joined(improving)} "
                               f"still improved over the last epochs (see the learning "
                               f"curves); a longer budget can rank them otherwise."))
    return found + [Heading(3, "Warnings"), Bullets(tuple(warnings(record)))]


def _verdicts(record, entry):
    """Each candidate's decision against the baseline at one rate, in words."""
    baseline = record["baseline"]
    paired = entry.get("against_baseline") or {}
    return [decision_sentence(name, paired[name], baseline, entry.get("margin"))
            if paired.get(name) else
            f"{name}: no paired comparison with {baseline} (fewer than 2 seeds complete)"
            for name in candidate_names(record) if name != baseline]


def decision_sentence(name, paired, baseline, margin_fraction):
    """"NAME: DECISION against BASELINE (margin ±M points): VERDICT." and, for
    an inconclusive one, what these seeds detect and how many would decide it."""
    decision = paired.get("decision")
    if decision is None:  # an older record: its verdict alone
        return paired.get("verdict") or f"{name}: {MISSING}"
    sentence = (f"{name}: {decision} against {baseline} (margin ±{margin(margin_fraction)} "
                f"points): {paired.get('verdict') or MISSING}.")
    if decision != "inconclusive":
        return sentence
    seeds = len(paired.get("differences") or [])
    detectable = paired.get("detectable_difference")
    needed = paired.get("seeds_to_resolve")
    if detectable is None:
        plan = f"These {seeds} seeds show no spread to plan more seeds from"
    else:
        plan = (f"These {seeds} seeds detect a difference of {100 * detectable:.1f} points "
                f"(80% power)")
    plan += (f"; about {needed} seeds would decide it (in all, if the difference and its "
             f"spread stayed as seen)" if needed is not None else
             "" if detectable is None else
             "; no practical number of seeds would decide it at the difference seen")
    return f"{sentence} {plan}."


def warnings(record):
    """The report's warnings: few seeds, missing cells, a shared machine,
    candidates built for another recipe, then the record's own (less any
    few-seeds warning, which the report words itself, and retired ones)."""
    seeds = [len(entry.get("complete_seeds") or []) for entry in record.get("accuracy") or []]
    found = [few_seeds_warning(min(seeds or [len(record.get("seeds") or [])]))]
    found += [_missing_cells_warning(record), _shared_machine_warning(record)]
    found += [f"{candidate['name']} was built for another recipe: {candidate['built_for']}"
              for candidate in record["candidates"] if candidate.get("built_for")]
    found = [warning for warning in found if warning]
    derived = {few_seeds_warning(n) for n in range(FEW_SEEDS)}
    return found + [warning for warning in record.get("warnings") or []
                    if warning not in found and warning not in derived
                    and not warning.startswith(RETIRED_WARNINGS)]


def _shared_machine_warning(record):
    """Other processes' share of the machine while cells ran, or None."""
    machine = record.get("machine") or {}
    if not machine.get("shared"):
        return None
    return (f"other processes shared the machine during {shown(machine.get('cells_shared'), str)} "
            f"of {shown(machine.get('cells_measured'), str)} cells (they took more than "
            f"{SHARED_FRACTION:.0%} of its CPU): timings may be slower than the machine's own; "
            f"the ratios paired by seed cancel much of it, the medians do not")


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
    return (f"{cell['candidate']} at label noise {percent_label(cell['noise'])}, "
            f"seed {cell['seed']}")


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


