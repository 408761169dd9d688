"""The drawing the comparison's plots share: a figure, seed dots, a mean with
its interval, candidate names on an axis, points with interval bars on both
axes. matplotlib's object API (`matplotlib.figure.Figure`, no pyplot): no
global state and no backend switch in the caller's process.
"""

DOT_SPREAD = 0.12  # the horizontal half-width seed dots are spread over


def figure(columns, panels=1):
    """A figure and its axes (a list of `panels` side by side, sharing y,
    when panels > 1), wider with more candidates on the x axis."""
    from matplotlib.figure import Figure

    width = max(6.0, 1.3 * columns + 2.5)
    drawing = Figure(figsize=(width if panels == 1 else 4.5 * panels + 1.5, 4.5))
    axes = drawing.subplots(1, panels, sharey=True, squeeze=False)[0]
    for one in axes:
        one.grid(alpha=0.3)
    return drawing, (axes[0] if panels == 1 else list(axes))


def seed_dots(axes, x, values, label=None):
    """One dot per seed (or cell), spread horizontally around `x`."""
    count = len(values)
    offsets = [0.0] if count < 2 else [
        -DOT_SPREAD + 2 * DOT_SPREAD * i / (count - 1) for i in range(count)]
    axes.scatter([x + offset for offset in offsets], values, s=18, alpha=0.7,
                 color="tab:blue", label=label, zorder=3)


def mean_bar(axes, x, mean, low, high, label=None):
    """The mean as a square and its interval as an error bar (none for 1 seed)."""
    error = None if low is None or high is None else [[mean - low], [high - mean]]
    axes.errorbar([x], [mean], yerr=error, fmt="s", color="black", capsize=5,
                  label=label, zorder=4)


def candidate_axis(axes, names):
    """The candidates' names as the x ticks, tilted to fit."""
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    axes.set_xlim(-0.6, len(names) - 0.4)


def scaled(summary, scale=100):
    """A summary's mean, low and high times `scale` (None stays None)."""
    return [None if summary.get(key) is None else scale * summary[key]
            for key in ("mean", "low", "high")]


def bar_lengths(span, scale=1.0):
    """[[below], [above]] of a Span for matplotlib's xerr/yerr (0 where an
    end is missing; never negative)."""
    below = 0.0 if span.low is None else max(span.value - span.low, 0.0)
    above = 0.0 if span.high is None else max(span.high - span.value, 0.0)
    return [[scale * below], [scale * above]]


def colors(names):
    """{name: color}, one per candidate in the record's order, so that a
    candidate has its color in every plot, whichever others it leaves out."""
    return {name: f"C{index % 10}" for index, name in enumerate(names)}


def spans_plot(axes, points, palette, x_scale=1.0, y_scale=100.0):
    """Each named point ({name: (x Span, y Span)}) with its interval bars on
    both axes, in its color from `palette`, and its name beside it."""
    for name, (x, y) in points.items():
        axes.errorbar([x_scale * x.value], [y_scale * y.value], xerr=bar_lengths(x, x_scale),
                      yerr=bar_lengths(y, y_scale), fmt="o", capsize=4, color=palette[name],
                      zorder=3)
        axes.annotate(name, (x_scale * x.value, y_scale * y.value), textcoords="offset points",
                      xytext=(5, 5), fontsize=8)
    axes.margins(x=0.2)  # room for the names beside the points


def time_unit(longest_seconds):
    """(divisor, name) of a unit that keeps the axis' numbers readable."""
    if longest_seconds >= 3 * 3600:
        return 3600.0, "hours"
    if longest_seconds >= 3 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"
