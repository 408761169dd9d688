"""A run's history files: history.csv and history.json (one row per
completed epoch) and curves.png, rewritten at the end of every epoch.

    write_history(run_dir, rows)   # atomically: a killed run leaves the old or the new
    plot_curves(run_dir, rows)
"""

import csv
import io
import os

import keras

from keras_pyramid.training.run_layout import CURVES_FILE, HISTORY_CSV, HISTORY_JSON
from keras_pyramid.utils.files import atomic_path, atomic_write_json, atomic_write_text


def write_history(run_dir, history):
    atomic_write_json(os.path.join(run_dir, HISTORY_JSON), history)
    if not history:
        return
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in history for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(os.path.join(run_dir, HISTORY_CSV), buffer.getvalue())


def plot_curves(run_dir, history):
    """curves.png: loss and error (1 - accuracy) per epoch, train and eval."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, error_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for prefix, label in (("", "train"), ("val_", "evaluation")):
        if f"{prefix}loss" in history[0]:
            loss_axes.plot(epochs, [r[f"{prefix}loss"] for r in history], label=label)
        if f"{prefix}accuracy" in history[0]:
            error = [100 * (1 - r[f"{prefix}accuracy"]) for r in history]
            error_axes.plot(epochs, error, label=label)
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    error_axes.set(xlabel="epoch", ylabel="error (%)", title="top-1 error")
    for axes in (loss_axes, error_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path = os.path.join(run_dir, CURVES_FILE)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


class HistoryFiles(keras.callbacks.Callback):
    """Rewrites history.csv/.json and curves.png at the end of every epoch."""

    def __init__(self, run_dir, checkpoint):
        super().__init__()
        self.run_dir = run_dir
        self.checkpoint = checkpoint

    def on_epoch_end(self, epoch, logs=None):
        write_history(self.run_dir, self.checkpoint.history)
        plot_curves(self.run_dir, self.checkpoint.history)
