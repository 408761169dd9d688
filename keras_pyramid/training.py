"""Resumable training runs: fit with checkpoints, history, plots and results.

A run directory holds everything a run writes:

    args.json            the resolved arguments (written by the program)
    checkpoint/          the last completed epoch: weights + optimizer state
                         (`epoch-NNNN.weights.h5`) and `latest.json`, the
                         commit record naming it, with the history so far
    history.csv/.json    one row per completed epoch
    curves.png           loss and error curves
    tensorboard/         TensorBoard logs
    model.keras          the final model
    results.json         the FINAL epoch's evaluation (never the best epoch)

Every file is written to a temporary name and renamed into place, so a run
killed at any moment (SIGKILL included) leaves either the old or the new
version, never a torn one. Rerunning resumes after the last completed epoch:
the optimizer's step counter comes back with its state, so the learning-rate
schedule continues where it was.
"""

import json
import math
import os
import time

import keras

CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"


def temporary_path(path):
    """A sibling of `path` to write first and `os.replace` onto `path`.

    Same folder (so the rename is atomic), same suffix (Keras and matplotlib
    choose the format from it).
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f"tmp-{os.getpid()}-{name}")


def atomic_write_text(path, text):
    temporary = temporary_path(path)
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def atomic_write_json(path, data):
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used to resume (corrupt or incompatible)."""


class NonFiniteLoss(RuntimeError):
    """Training stopped on a NaN or infinite loss; the last good checkpoint stays."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Keras' TerminateOnNaN that remembers where: stops training at the first
    step whose loss is NaN or infinite and records the epoch and step. (The
    logged loss is the epoch's running mean, so it turns non-finite exactly at
    the first bad step.)"""

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = {"epoch": self._epoch + 1, "step": batch + 1,
                          "global_step": self._epoch * self.steps_per_epoch + batch + 1,
                          "loss": float(loss)}
            self.model.stop_training = True


def _finite(logs):
    return all(math.isfinite(float(v)) for v in (logs or {}).values())


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and history after every epoch, atomically.

    The weights go to a new `epoch-NNNN.weights.h5` (under a temporary name,
    then renamed); only then is `latest.json` replaced to name it: that rename
    is the commit. Older weight files are removed after the commit.
    """

    def __init__(self, run_dir, history=None):
        super().__init__()
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR)
        self.history = list(history or [])
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        # The epoch's evaluation starts: training time ends here.
        if self._train_seconds is None and self._epoch_start is not None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return  # an epoch cut short by a bad loss is not a checkpoint
        os.makedirs(self.directory, exist_ok=True)
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = time.perf_counter() - self._epoch_start
        row["train_seconds"] = self._train_seconds or row["seconds"]
        self.history.append(row)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        path = os.path.join(self.directory, name)
        temporary = temporary_path(path)
        self.model.save_weights(temporary)
        os.replace(temporary, path)
        atomic_write_json(
            os.path.join(self.directory, LATEST),
            {"epoch": epoch + 1, "weights": name, "history": self.history},
        )
        for stale in os.listdir(self.directory):
            if stale.endswith(".weights.h5") and stale != name:
                os.remove(os.path.join(self.directory, stale))


def restore(model, run_dir):
    """Loads the last completed epoch into a compiled `model`.

    Returns `(completed_epochs, history)`, `(0, [])` when there is nothing to
    resume. Raises CheckpointError for a checkpoint that does not fit `model`.
    """
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    latest = os.path.join(directory, LATEST)
    if not os.path.exists(latest):
        return 0, []
    try:
        record = read_json(latest)
        weights = os.path.join(directory, record["weights"])
        # The optimizer's variables must exist before its state can load.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
    except Exception as error:  # any failure here means: cannot resume
        raise CheckpointError(
            f"Cannot resume from {directory}: {type(error).__name__}: {error}. "
            "Start over with --restart (or use another --output-dir)."
        ) from error
    return int(record["epoch"]), list(record["history"])


def write_history(run_dir, history):
    atomic_write_json(os.path.join(run_dir, "history.json"), history)
    if not history:
        return
    columns = list(dict.fromkeys(key for row in history for key in row))
    lines = [",".join(columns)]
    lines += [",".join(repr(row.get(c, "")) for c in columns) for row in history]
    atomic_write_text(os.path.join(run_dir, "history.csv"), "\n".join(lines) + "\n")


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
    path = os.path.join(run_dir, "curves.png")
    temporary = temporary_path(path)
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)


class HistoryFiles(keras.callbacks.Callback):
    """Rewrites history.csv/.json and curves.png after each checkpoint."""

    def __init__(self, run_dir, checkpoint):
        super().__init__()
        self.run_dir = run_dir
        self.checkpoint = checkpoint

    def on_epoch_end(self, epoch, logs=None):
        write_history(self.run_dir, self.checkpoint.history)
        plot_curves(self.run_dir, self.checkpoint.history)


def fit(
    model,
    train_data,
    evaluation_data,
    *,
    epochs,
    steps_per_epoch,
    run_dir,
    evaluation_steps=None,
    verbose="auto",
    extra_callbacks=(),
):
    """Trains a compiled `model` to `epochs`, resuming from `run_dir` if it can.

    Returns the full history (resumed epochs included), one dict per epoch.
    Raises NonFiniteLoss, naming the epoch and step, when the loss becomes NaN
    or infinite: training stops there and the last checkpoint is kept.
    """
    os.makedirs(run_dir, exist_ok=True)
    completed, history = restore(model, run_dir)
    if completed:
        print(f"Resuming after epoch {completed} of {epochs} from {run_dir}")
    checkpoint = EpochCheckpoint(run_dir, history)
    guard = StopOnNonFiniteLoss(steps_per_epoch)
    callbacks = [
        guard,
        checkpoint,
        HistoryFiles(run_dir, checkpoint),
        # No graph: it is TensorFlow-only, and the run must work on every backend.
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
        *extra_callbacks,
    ]
    if completed < epochs:
        model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=completed,
            steps_per_epoch=steps_per_epoch,
            validation_data=evaluation_data,
            validation_steps=evaluation_steps,
            callbacks=callbacks,
            verbose=verbose,
        )
    if guard.where:
        kept = checkpoint.history[-1]["epoch"] if checkpoint.history else 0
        raise NonFiniteLoss(
            f"the loss became {guard.where['loss']} at epoch {guard.where['epoch']}, step "
            f"{guard.where['step']} (global step {guard.where['global_step']}); training "
            f"stopped. The last good checkpoint (epoch {kept}) is kept in "
            f"{os.path.join(run_dir, CHECKPOINT_DIR)}: lower the learning rate, or check the "
            "data, and run again to resume from it."
        )
    return checkpoint.history


def save_model(model, run_dir):
    path = os.path.join(run_dir, "model.keras")
    temporary = temporary_path(path)
    model.save(temporary)
    os.replace(temporary, path)
    return path
