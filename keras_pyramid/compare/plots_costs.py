"""The comparison's cost plots, drawn from its record: training wall time,
error against training time and against multiply-adds, and error against
serving latency with its Pareto front. Each returns a matplotlib Figure, or
None when the record holds nothing to draw.

Every point carries its interval on both axes where the record has one:
error, the 95% interval over seeds (the test set's own interval where there
is none); training time, the least to greatest cell; latency, the least to
greatest round p50. The Pareto front separates only what those intervals
separate (`pareto_front`).
"""

import statistics as stats

from keras_pyramid.compare import plots_figure as draw
from keras_pyramid.compare.report_record import (
    SERVING_RUNTIME,
    Span,
    candidate_names,
    error_span,
    finished_cells,
    first_accuracy,
    latency_span,
    serving_figures,
)


def pareto_front(points):
    """The names on the Pareto front of `points`, {name: (latency Span,
    error Span)} (plain (value, low, high) tuples do), fastest first.

    A point is off the front only when another is at least as good on both
    axes (no slower, no more error) and better on one of them with the two
    intervals apart there (the other's high below its low): a lead inside
    overlapping intervals is not shown to be one. A missing interval end
    counts as the value itself, so points measured once compare as points.
    Equal points both stay on it."""
    points = {name: tuple(Span(*axis) for axis in point) for name, point in points.items()}
    front = [name for name, point in points.items()
             if not any(_dominates(other, point) for other in points.values())]
    return sorted(front, key=lambda name: (points[name][0].value, points[name][1].value, name))


def _dominates(a, b):
    """Whether `a` is no worse than `b` on both axes and separated better on one."""
    return (all(mine.value <= theirs.value for mine, theirs in zip(a, b))
            and any(_separated_below(mine, theirs) for mine, theirs in zip(a, b)))


def _separated_below(a, b):
    """Whether Span `a` is below Span `b`, their intervals apart."""
    a_high = a.value if a.high is None else a.high
    b_low = b.value if b.low is None else b.low
    return a.value < b.value and a_high < b_low


def _error_spans(record):
    """{name: error Span} at the first noise rate, per candidate summarized."""
    summaries = (first_accuracy(record) or {}).get("per_candidate") or {}
    return {name: error_span(summaries[name]) for name in candidate_names(record)
            if name in summaries}


def pareto_points(record):
    """{name: (latency Span in ms, error Span)} of the candidates with ONNX
    Runtime figures and an error."""
    errors = _error_spans(record)
    points = {}
    for name, error in errors.items():
        latency = latency_span(serving_figures(record, name, SERVING_RUNTIME))
        if latency is not None:
            points[name] = (latency, error)
    return points


def plot_pareto(record):
    """Mean error against ONNX Runtime p50 latency, both with their
    intervals; the Pareto front marked and joined."""
    points = pareto_points(record)
    if not points:
        return None
    front = pareto_front(points)
    figure, axes = draw.figure(3)
    draw.spans_plot(axes, points, draw.colors(candidate_names(record)))
    front_x = [points[name][0].value for name in front]
    front_y = [100 * points[name][1].value for name in front]
    axes.plot(front_x, front_y, "-", color="tab:red", linewidth=2, alpha=0.6, zorder=2)
    axes.scatter(front_x, front_y, s=160, facecolors="none", edgecolors="tab:red", linewidths=2,
                 label="Pareto front (separated by the intervals)", zorder=4)
    axes.set(xlabel="ONNX Runtime batch-1 p50 latency (ms; bar: least to greatest round)",
             ylabel="mean final error (%; bar: 95% CI)", title="Error against serving latency")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _cell_times(record, name):
    """The wall seconds of `name`'s finished cells, every noise rate."""
    return [cell["wall_seconds"] for cell in finished_cells(record, name)
            if cell.get("wall_seconds") is not None]


def plot_training_time(record):
    """Training wall time per candidate: its finished cells as dots, the
    median as a bar. Candidates not trained (as-is) are left out."""
    times = {name: _cell_times(record, name) for name in candidate_names(record)}
    shown = [name for name in candidate_names(record) if times[name]]
    if not shown:
        return None
    divisor, unit = draw.time_unit(max(max(times[name]) for name in shown))
    figure, axes = draw.figure(len(shown))
    for x, name in enumerate(shown):
        draw.seed_dots(axes, x, [value / divisor for value in times[name]],
                       label="cell" if x == 0 else None)
        axes.hlines(stats.median(times[name]) / divisor, x - 0.3, x + 0.3, color="black",
                    label="median" if x == 0 else None, zorder=4)
    draw.candidate_axis(axes, shown)
    axes.set(ylabel=f"wall time per cell ({unit})", title="Training wall time")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_error_against_time(record):
    """Mean error (95% CI) against the median training wall time per cell
    (bar: least to greatest cell); trained candidates only."""
    points = {}
    for name, error in _error_spans(record).items():
        times = _cell_times(record, name)
        if times:
            points[name] = (Span(stats.median(times), min(times), max(times)), error)
    if not points:
        return None
    divisor, unit = draw.time_unit(max(time.high for time, _ in points.values()))
    figure, axes = draw.figure(3)
    draw.spans_plot(axes, points, draw.colors(candidate_names(record)), x_scale=1 / divisor)
    axes.set(xlabel=f"training wall time per cell ({unit}; median, bar: least to greatest)",
             ylabel="mean final error (%; bar: 95% CI)", title="Error against training time")
    figure.tight_layout()
    return figure


def plot_error_against_multiply_adds(record):
    """Mean error (95% CI) against the multiply-adds of one image's forward pass."""
    errors = _error_spans(record)
    points = {candidate["name"]: (Span(candidate["multiply_adds"], None, None),
                                  errors[candidate["name"]])
              for candidate in record["candidates"]
              if candidate.get("multiply_adds") and candidate["name"] in errors}
    if not points:
        return None
    figure, axes = draw.figure(3)
    draw.spans_plot(axes, points, draw.colors(candidate_names(record)), x_scale=1e-6)
    axes.set(xlabel="multiply-adds per image (millions)",
             ylabel="mean final error (%; bar: 95% CI)", title="Error against multiply-adds")
    figure.tight_layout()
    return figure
