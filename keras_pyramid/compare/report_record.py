"""The comparison's record (the dict saved as comparison.json), read: the
lookups the report's sections and the plots share, so that each fact is
found one way. Errors are fractions here, as in the record.

    entry = first_accuracy(record)                  # the accuracy at the first noise rate
    error_span(entry["per_candidate"]["plain"])     # Span(0.26, 0.24, 0.28)

Records written before a field existed lack it: every lookup answers None
(or an empty list) for what is not there.
"""

import collections

SERVING_RUNTIME = "onnxruntime"  # the latency the Pareto plot uses

# A value and its interval (either end None when not estimable).
Span = collections.namedtuple("Span", "value low high")


def candidate_names(record):
    """The candidates' names, in the record's order."""
    return [candidate["name"] for candidate in record["candidates"]]


def trained(candidate):
    """Whether the candidate was trained here (an as-is one is only evaluated)."""
    return candidate.get("kind") != "as-is" and candidate.get("trained", True)


def accuracy_at(record, noise):
    """The record's accuracy entry at label-noise rate `noise`, or None."""
    return next((entry for entry in record.get("accuracy") or []
                 if entry["noise"] == noise), None)


def first_accuracy(record):
    """The accuracy entry at the first noise rate (usually 0), or None."""
    rates = record.get("noise_rates") or []
    return accuracy_at(record, rates[0]) if rates else None


def comparisons(record):
    """Every paired comparison against the baseline, at every noise rate."""
    return [paired for entry in record.get("accuracy") or []
            for paired in (entry.get("against_baseline") or {}).values() if paired]


def percent_label(noise):
    """0.2 -> "20%"."""
    return f"{100 * noise:g}%"


def finished_cells(record, name, noise=None):
    """`name`'s finished cells, at label-noise rate `noise` (None: every rate)."""
    return [cell for cell in record.get("cells") or []
            if cell["candidate"] == name and cell.get("status") == "finished"
            and (noise is None or cell.get("noise") == noise)]


def learning_curves_at(candidate, noise):
    """The candidate's learning curves at `noise` ({epochs, mean, low, high,
    seeds, fall_over_window, still_improving}), or None (as-is, older record)."""
    return (candidate.get("learning_curves") or {}).get(f"{noise:g}")


def error_span(summary):
    """A per-candidate summary's mean error with its 95% interval over seeds,
    or the test set's own interval where there is none (one evaluation, no
    spread); None for no summary."""
    if not summary:
        return None
    low, high = summary.get("low"), summary.get("high")
    if low is None or high is None:
        test_set = summary.get("test_set") or {}
        low, high = test_set.get("low"), test_set.get("high")
    return Span(summary["mean"], low, high)


def serving_figures(record, name, runtime=SERVING_RUNTIME):
    """`name`'s serving figures under `runtime` ({} when not served)."""
    return ((record.get("serving") or {}).get(name) or {}).get(runtime) or {}


def runtimes(record, name):
    """[(runtime key, figures)] of `name`'s serving entry (its seed aside)."""
    entry = (record.get("serving") or {}).get(name) or {}
    return [(key, value) for key, value in entry.items() if isinstance(value, dict)]


def latency_span(figures):
    """The pooled batch-1 p50 (ms) with the least and greatest round p50 as
    its range (None ends when measured once), or None when not served."""
    p50 = (figures.get("latency_ms") or {}).get("p50")
    if p50 is None:
        return None
    rounds = figures.get("round_p50_ms") or []
    return Span(p50, min(rounds), max(rounds)) if len(rounds) >= 2 else Span(p50, None, None)


def serving_ratio(record, name, runtime):
    """The paired p50 ratio of `name` to the baseline under `runtime`, or None."""
    return ((record.get("serving_ratios") or {}).get(name) or {}).get(runtime)
