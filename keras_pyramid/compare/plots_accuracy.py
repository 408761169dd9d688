"""The comparison's accuracy plots, drawn from its record: final error per
seed, paired differences, error against label noise, learning curves. Each
returns a matplotlib Figure, or None when the record holds nothing to draw.
Errors are fractions in the record, percent here.
"""

from keras_pyramid.compare import plots_figure as draw
from keras_pyramid.compare.report_record import (
    accuracy_at,
    candidate_names,
    first_accuracy,
    learning_curves_at,
    percent_label,
)


def plot_error(record):
    """Final error (%) per candidate at the first noise rate: every seed a
    dot, the mean and its 95% t interval an error bar beside them."""
    entry = first_accuracy(record)
    summaries = (entry or {}).get("per_candidate") or {}
    shown = [name for name in candidate_names(record) if name in summaries]
    if not shown:
        return None
    figure, axes = draw.figure(len(shown))
    _seeds_and_means(axes, shown, summaries, "errors", "mean, 95% CI")
    axes.set(ylabel="final error (%)",
             title=f"Final error per seed (label noise {percent_label(entry['noise'])})")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _seeds_and_means(axes, shown, summaries, key, label):
    """Per candidate, its per-seed `key` values as dots (points) and their
    mean and interval as a bar beside them."""
    for x, name in enumerate(shown):
        summary = summaries[name]
        draw.seed_dots(axes, x, [100 * value for value in summary[key]],
                       label="seed" if x == 0 else None)
        draw.mean_bar(axes, x + 0.3, *draw.scaled(summary), label=label if x == 0 else None)
    draw.candidate_axis(axes, shown)


def plot_differences(record):
    """Per candidate, the paired per-seed differences against the baseline
    (points; below 0: less error), their mean and paired t interval."""
    entry = first_accuracy(record)
    paired = (entry or {}).get("against_baseline") or {}
    shown = [name for name in candidate_names(record)
             if name in paired and name != record["baseline"]]
    if not shown:
        return None
    figure, axes = draw.figure(len(shown))
    axes.axhline(0, color="grey", linestyle="--", linewidth=1)
    _seeds_and_means(axes, shown, paired, "differences", "mean, 95% paired t CI")
    axes.set(ylabel=f"error - error of {record['baseline']} (points)",
             title=f"Paired differences against the baseline "
                   f"(label noise {percent_label(entry['noise'])})")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_noise(record):
    """Mean error (%) against the label-noise rate, per candidate, with the
    95% interval; None with fewer than 2 rates."""
    rates = record.get("noise_rates") or []
    if len(rates) < 2:
        return None
    figure, axes = draw.figure(3)
    names = candidate_names(record)
    palette = draw.colors(names)
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
                      yerr=spans, fmt="-o", capsize=4, label=name, color=palette[name])
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
            rows.append((100 * rate, *draw.scaled(summary)))
    return rows


def plot_learning_curves(record):
    """The learning curves: one panel per label-noise rate that has any; in
    each, every trained candidate's mean error per epoch over its seeds (a
    line) and the least to greatest seed's (a band)."""
    rates = [rate for rate in record.get("noise_rates") or []
             if any(learning_curves_at(c, rate) for c in record["candidates"])]
    if not rates:
        return None
    from matplotlib.ticker import MaxNLocator

    figure, panels = draw.figure(3, panels=len(rates))
    panels = panels if isinstance(panels, list) else [panels]
    palette = draw.colors(candidate_names(record))
    for axes, rate in zip(panels, rates):
        for candidate in record["candidates"]:
            curves = learning_curves_at(candidate, rate)
            if not curves:
                continue
            color = palette[candidate["name"]]
            epochs = curves["epochs"]
            axes.plot(epochs, [100 * value for value in curves["mean"]], "-o", markersize=3,
                      color=color, label=f"{candidate['name']} ({curves['seeds']} seeds)")
            axes.fill_between(epochs, [100 * value for value in curves["low"]],
                              [100 * value for value in curves["high"]], color=color, alpha=0.2)
        axes.set(xlabel="epoch", title=f"Learning curves, label noise {percent_label(rate)}")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    panels[0].set_ylabel("error (%; band: least to greatest seed)")
    panels[0].legend(fontsize=8)
    figure.tight_layout()
    return figure
