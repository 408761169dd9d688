"""The comparison's plots, drawn from its record (the dict saved as
comparison.json): PNGs written atomically into one folder.

    paths = write_plots(record, "comparisons/x/plots")
    # {"error": ".../error.png", "differences": ..., "pareto": ...,
    #  "training_time": ..., "noise": ...}

A plot the record holds nothing for is not written (and an older copy of it
is removed, so the folder matches the record): `noise` needs 2 label-noise
rates or more, `pareto` a candidate with ONNX Runtime figures, `differences`
a paired comparison, `training_time` a trained cell.

The figures use matplotlib's object API (`matplotlib.figure.Figure`, no
pyplot): no global state and no backend switch in the caller's process; the
PNGs are drawn by Agg. Errors are fractions in the record, percent here.
"""

import os
import statistics as stats

from keras_pyramid.utils.files import atomic_path

SERVING_RUNTIME = "onnxruntime"  # the latency the Pareto plot and the ratios use
DOT_SPREAD = 0.12  # the horizontal half-width seed dots are spread over


# The record, read: shared with report.py.

def candidate_names(record):
    """The candidates' names, in the record's order."""
    return [candidate["name"] for candidate in record["candidates"]]


def accuracy_at(record, noise):
    """The record's accuracy entry at label-noise rate `noise`, or None."""
    return next((entry for entry in record.get("accuracy") or []
                 if entry["noise"] == noise), None)


def first_accuracy(record):
    """The accuracy entry at the first noise rate (usually 0), or None."""
    rates = record.get("noise_rates") or []
    return accuracy_at(record, rates[0]) if rates else None


def serving_figures(record, name, runtime=SERVING_RUNTIME):
    """`name`'s serving figures under `runtime` ({} when not served)."""
    return ((record.get("serving") or {}).get(name) or {}).get(runtime) or {}


def serving_latency(record, name, runtime=SERVING_RUNTIME):
    """`name`'s batch-1 p50 latency (ms) under `runtime`, or None."""
    return (serving_figures(record, name, runtime).get("latency_ms") or {}).get("p50")


def percent_label(noise):
    """0.2 -> "20%"."""
    return f"{100 * noise:g}%"


def pareto_front(points):
    """The names on the Pareto front of `points`, {name: (latency, error)},
    fastest first. A point is off the front when another is at least as good
    in both (no slower, no more error) and better in one; equal points both
    stay on it."""
    front = [name for name, point in points.items()
             if not any(_dominates(other, point) for other in points.values())]
    return sorted(front, key=lambda name: (points[name], name))


def _dominates(a, b):
    """Whether point `a` is no worse than `b` in both and not equal to it."""
    return a[0] <= b[0] and a[1] <= b[1] and a != b


# Drawing helpers.

def _figure(columns):
    """A figure and its axes, wider with more candidates on the x axis."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.3 * columns + 2.5), 4.5))
    axes = figure.subplots()
    axes.grid(alpha=0.3)
    return figure, axes


def _seed_dots(axes, x, values, label=None):
    """One dot per seed (or cell), spread horizontally around `x`."""
    count = len(values)
    offsets = [0.0] if count < 2 else [
        -DOT_SPREAD + 2 * DOT_SPREAD * i / (count - 1) for i in range(count)]
    axes.scatter([x + offset for offset in offsets], values, s=18, alpha=0.7,
                 color="tab:blue", label=label, zorder=3)


def _mean_bar(axes, x, mean, low, high, label=None):
    """The mean as a square and its interval as an error bar (none for 1 seed)."""
    error = None if low is None or high is None else [[mean - low], [high - mean]]
    axes.errorbar([x], [mean], yerr=error, fmt="s", color="black", capsize=5,
                  label=label, zorder=4)


def _candidate_axis(axes, names):
    """The candidates' names as the x ticks, tilted to fit."""
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    axes.set_xlim(-0.6, len(names) - 0.4)


def _scaled(summary, scale=100):
    """A summary's mean, low and high times `scale` (None stays None)."""
    return [None if summary.get(key) is None else scale * summary[key]
            for key in ("mean", "low", "high")]


# The plots: each returns a Figure, or None when the record holds nothing to draw.

def plot_error(record):
    """Final error (%) per candidate at the first noise rate: every seed a
    dot, the mean and its 95% t interval an error bar beside them."""
    entry = first_accuracy(record)
    summaries = (entry or {}).get("per_candidate") or {}
    shown = [name for name in candidate_names(record) if name in summaries]
    if not shown:
        return None
    figure, axes = _figure(len(shown))
    for x, name in enumerate(shown):
        summary = summaries[name]
        _seed_dots(axes, x, [100 * error for error in summary["errors"]],
                   label="seed" if x == 0 else None)
        _mean_bar(axes, x + 0.3, *_scaled(summary), label="mean, 95% CI" if x == 0 else None)
    _candidate_axis(axes, shown)
    axes.set(ylabel="final error (%)",
             title=f"Final error per seed (label noise {percent_label(entry['noise'])})")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_differences(record):
    """Per candidate, the paired per-seed differences against the baseline
    (points; below 0: less error), their mean and paired t interval."""
    entry = first_accuracy(record)
    paired = (entry or {}).get("against_baseline") or {}
    shown = [name for name in candidate_names(record)
             if name in paired and name != record["baseline"]]
    if not shown:
        return None
    figure, axes = _figure(len(shown))
    axes.axhline(0, color="grey", linestyle="--", linewidth=1)
    for x, name in enumerate(shown):
        difference = paired[name]
        _seed_dots(axes, x, [100 * value for value in difference["differences"]],
                   label="seed" if x == 0 else None)
        _mean_bar(axes, x + 0.3, *_scaled(difference),
                  label="mean, 95% paired t CI" if x == 0 else None)
    _candidate_axis(axes, shown)
    axes.set(ylabel=f"error - error of {record['baseline']} (points)",
             title=f"Paired differences against the baseline "
                   f"(label noise {percent_label(entry['noise'])})")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_pareto(record):
    """Mean error against ONNX Runtime p50 latency; the Pareto front marked
    and joined. Candidates without serving figures are left out."""
    summaries = (first_accuracy(record) or {}).get("per_candidate") or {}
    points = {name: (serving_latency(record, name), 100 * summaries[name]["mean"])
              for name in candidate_names(record)
              if name in summaries and serving_latency(record, name) is not None}
    if not points:
        return None
    front = pareto_front(points)
    figure, axes = _figure(3)
    axes.scatter(*zip(*points.values()), color="tab:blue", zorder=3)
    axes.plot(*zip(*(points[name] for name in front)), "-o", color="tab:red",
              label="Pareto front", zorder=4)
    for name, point in points.items():
        axes.annotate(name, point, textcoords="offset points", xytext=(5, 5), fontsize=8)
    axes.set(xlabel="ONNX Runtime batch-1 p50 latency (ms)", ylabel="mean final error (%)",
             title="Error against serving latency")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_training_time(record):
    """Training wall time per candidate: its finished cells as dots, the
    median as a bar. Candidates not trained (as-is) are left out."""
    times = {}
    for cell in record.get("cells") or []:
        if cell.get("status") == "finished" and cell.get("wall_seconds") is not None:
            times.setdefault(cell["candidate"], []).append(cell["wall_seconds"])
    shown = [name for name in candidate_names(record) if name in times]
    if not shown:
        return None
    divisor, unit = _time_unit(max(max(values) for values in times.values()))
    figure, axes = _figure(len(shown))
    for x, name in enumerate(shown):
        _seed_dots(axes, x, [value / divisor for value in times[name]],
                   label="cell" if x == 0 else None)
        axes.hlines(stats.median(times[name]) / divisor, x - 0.3, x + 0.3, color="black",
                    label="median" if x == 0 else None, zorder=4)
    _candidate_axis(axes, shown)
    axes.set(ylabel=f"wall time per cell ({unit})", title="Training wall time")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _time_unit(longest_seconds):
    """(divisor, name) of a unit that keeps the axis' numbers readable."""
    if longest_seconds >= 3 * 3600:
        return 3600.0, "hours"
    if longest_seconds >= 3 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"


def plot_noise(record):
    """Mean error (%) against the label-noise rate, per candidate, with the
    95% interval; None with fewer than 2 rates."""
    rates = record.get("noise_rates") or []
    if len(rates) < 2:
        return None
    figure, axes = _figure(3)
    names = candidate_names(record)
    # A small shift per candidate keeps equal means' bars apart.
    step = 1.5 * (max(rates) - min(rates))
    for index, name in enumerate(names):
        rows = _noise_rows(record, name, rates)
        if not rows:
            continue
        shift = step * (index - (len(names) - 1) / 2)
        spans = [[0 if low is None else mean - low for _, mean, low, _ in rows],
                 [0 if high is None else high - mean for _, mean, _, high in rows]]
        axes.errorbar([x + shift for x, *_ in rows], [mean for _, mean, *_ in rows],
                      yerr=spans, fmt="-o", capsize=4, label=name)
    axes.set(xlabel="label-noise rate (%)", ylabel="mean final error (%)",
             title="Error against label noise (mean, 95% CI)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _noise_rows(record, name, rates):
    """(rate %, mean %, low %, high %) of `name` at each rate it was summarized at."""
    rows = []
    for rate in rates:
        summary = ((accuracy_at(record, rate) or {}).get("per_candidate") or {}).get(name)
        if summary is not None:
            rows.append((100 * rate, *_scaled(summary)))
    return rows


PLOTS = {"error": plot_error, "differences": plot_differences, "pareto": plot_pareto,
         "training_time": plot_training_time, "noise": plot_noise}


def write_plots(record, folder):
    """Writes the plots the record holds data for into `folder` (created),
    each as NAME.png, atomically; returns {name: path} of those written.
    A plot not drawn from this record is removed if an older run left it."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name, draw in PLOTS.items():
        path = os.path.join(folder, f"{name}.png")
        figure = draw(record)
        if figure is None:
            if os.path.exists(path):
                os.remove(path)
            continue
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        written[name] = path
    return written
