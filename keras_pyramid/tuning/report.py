"""The report of a finished search: a trials table (CSV, JSON, printed), a plot
of the objective against drop rate and alpha, and the best hyperparameters.

Files, all in the search's project directory and written atomically:

    results.csv / results.json   one row per trial, best first
    objective.png                objective vs drop_rate and vs alpha
    best_hparams.json            the best values, for `train.py --hparams`
"""

import csv
import io
import os

from keras_pyramid.models.hparams import HPARAM_NAMES, effective
from keras_pyramid.utils.files import atomic_path, atomic_write_json, atomic_write_text

COLUMNS = ("trial", "status", "score", *HPARAM_NAMES)


def trial_rows(oracle):
    """One dict per trial, best score first (unfinished trials last)."""
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append({
            "trial": trial.trial_id,
            "status": str(trial.status),
            "score": None if trial.score is None else float(trial.score),
            **effective({name: values.get(name) for name in HPARAM_NAMES}),
        })
    return sorted(rows, key=lambda row: (row["score"] is None, -(row["score"] or 0.0),
                                         row["trial"]))


def format_table(rows, objective):
    """The trials as aligned text, the score column named after the objective."""
    headers = {column: objective if column == "score" else column for column in COLUMNS}
    widths = {column: max([len(headers[column])] + [len(_cell(row[column])) for row in rows])
              for column in COLUMNS}
    lines = ["  ".join(headers[c].ljust(widths[c]) for c in COLUMNS),
             "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(_cell(row[c]).ljust(widths[c]) for c in COLUMNS) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(project_dir, rows, best, objective):
    """Writes the report files; returns their paths."""
    paths = {name: os.path.join(project_dir, name) for name in
             ("results.csv", "results.json", "objective.png", "best_hparams.json")}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(paths["results.csv"], buffer.getvalue())
    atomic_write_json(paths["results.json"], {"objective": objective, "trials": rows})
    atomic_write_json(paths["best_hparams.json"], best)
    plot_objective(rows, objective, paths["objective.png"])
    return paths


def plot_objective(rows, objective, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [row for row in rows if row["score"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, name in zip(axes, ("drop_rate", "alpha")):
        for regularization in sorted({row["regularization"] for row in scored}):
            chosen = [row for row in scored if row["regularization"] == regularization]
            axis.scatter([row[name] for row in chosen], [row["score"] for row in chosen],
                         label=regularization)
        axis.set(xlabel=name, title=f"{objective} vs {name}")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(objective)
    if scored:
        axes[1].legend(title="regularization")
    figure.suptitle(f"{len(scored)} finished trials (final epoch of each)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
