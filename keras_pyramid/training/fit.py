"""Resumable training runs: fit with checkpoints, history, plots and results.

A run directory holds everything a run writes:

    args.json            the resolved arguments (written by the program)
    checkpoint/          the last checkpoint: weights + optimizer state
                         (`step-NNNNNNNN.weights.h5`, by global step) and
                         `latest.json`, the commit record naming it, with the
                         epoch and step reached and the history so far
    history.csv/.json    one row per completed epoch
    curves.png           loss and error curves
    tensorboard/         TensorBoard logs
    model.keras          the final model
    results.json         the FINAL epoch's evaluation (never the best epoch)

Every file is written to a temporary name and renamed into place, so a run
killed at any moment (SIGKILL included) leaves either the old or the new
version, never a torn one. Rerunning resumes from the last checkpoint (an
epoch's end, or a step within an epoch with `checkpoint_steps`): the
optimizer's step counter comes back with its state, so the learning-rate
schedule continues where it was, and a training stream that is a function of
the global step continues with the very batch that came next.
"""

import csv
import io
import math
import os
import time

import keras

from keras_pyramid.utils.files import atomic_path, atomic_write_json, atomic_write_text, read_json

CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"


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
        self.first_step = 0  # steps of the first epoch done before this fit call
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = _step_in_epoch(batch, self.first_step)
            self.where = {"epoch": self._epoch + 1, "step": step,
                          "global_step": self._epoch * self.steps_per_epoch + step,
                          "loss": float(loss)}
            self.model.stop_training = True


def _step_in_epoch(batch, first_step):
    """1-based step within the epoch. `first_step` is non-zero only in the fit
    call that finishes a resumed epoch: that call's batch 0 is step first_step + 1."""
    return batch + 1 + first_step


def _finite(logs):
    return all(math.isfinite(float(v)) for v in (logs or {}).values())


def random_state(model):
    """The model's random generator states (the gates' SeedGenerators), in
    model order. They are variables but not weights, so `save_weights` leaves
    them out; a resumed run needs them to draw the gates it would have drawn."""
    return [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(model)]


def set_random_state(model, states):
    variables = _seed_states(model)
    if len(states) != len(variables):
        raise ValueError(f"the checkpoint has {len(states)} random generator states, the "
                         f"model {len(variables)}")
    for variable, state in zip(variables, states):
        variable.assign(keras.ops.convert_to_tensor(state, dtype=variable.dtype))


def _seed_states(model):
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


# Not keras.callbacks.BackupAndRestore: it resumes at whole epochs only (or
# at a step count without the gates' random state and the data's position),
# where a run here resumes at the very next batch.
class Checkpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and history, atomically, at an interval.

    Every `every_epochs` epochs (and after the last), and, with `every_steps`,
    every `every_steps` global steps in between: a long epoch then loses at
    most `every_steps` steps to a crash.

    The weights go to a new `step-NNNNNNNN.weights.h5` (under a temporary
    name, then renamed); only then is `latest.json` replaced to name it: that
    rename is the commit. `latest.json` records the completed epochs, the
    steps done in the epoch after them (0 at an epoch's end), the gates'
    random generator states and the history of the completed epochs. Older
    weight files are removed after the commit.
    """

    def __init__(self, run_dir, steps_per_epoch, epochs, history=None, every_epochs=1,
                 every_steps=None):
        super().__init__()
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR)
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.every_epochs = every_epochs
        self.every_steps = every_steps
        self.history = list(history or [])
        self.first_step = 0  # steps of the first epoch done before this fit call
        self._epoch = 0
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        self._train_seconds = None

    def on_train_batch_end(self, batch, logs=None):
        step = _step_in_epoch(batch, self.first_step)
        global_step = self._epoch * self.steps_per_epoch + step
        due = self.every_steps and global_step % self.every_steps == 0
        # An epoch's last step is saved with its evaluation, at the epoch's end.
        if due and step < self.steps_per_epoch and _finite(logs):
            self._commit(completed=self._epoch, step=step)

    def on_test_begin(self, logs=None):
        # The epoch's evaluation starts: training time ends here.
        if self._train_seconds is None and self._epoch_start is not None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return  # an epoch cut short by a bad loss is not a checkpoint
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = time.perf_counter() - self._epoch_start
        row["train_seconds"] = self._train_seconds or row["seconds"]
        if self.first_step:
            # The train metrics cover only the steps after the resume.
            row["resumed_at_step"] = self.first_step
        self.history.append(row)
        if (epoch + 1) % self.every_epochs == 0 or epoch + 1 == self.epochs or self.every_steps:
            self._commit(completed=epoch + 1, step=0)

    def _commit(self, completed, step):
        os.makedirs(self.directory, exist_ok=True)
        global_step = completed * self.steps_per_epoch + step
        name = f"step-{global_step:08d}.weights.h5"
        path = os.path.join(self.directory, name)
        with atomic_path(path) as temporary:
            self.model.save_weights(temporary)
        atomic_write_json(
            os.path.join(self.directory, LATEST),
            {"epoch": completed, "step": step, "global_step": global_step, "weights": name,
             "random_state": random_state(self.model), "history": self.history},
        )
        for stale in os.listdir(self.directory):
            if stale.endswith(".weights.h5") and stale != name:
                os.remove(os.path.join(self.directory, stale))


def completed_epochs(run_dir):
    """The epochs the last checkpoint of `run_dir` completed (0 without one)."""
    latest = os.path.join(run_dir, CHECKPOINT_DIR, LATEST)
    return int(read_json(latest)["epoch"]) if os.path.exists(latest) else 0


def restore(model, run_dir):
    """Loads the last checkpoint into a compiled `model`.

    Returns `(completed_epochs, step, history)`: `step` steps of the next
    epoch were done too; `(0, 0, [])` when there is nothing to resume.
    Raises CheckpointError for a checkpoint that does not fit `model`.
    """
    directory = os.path.join(run_dir, CHECKPOINT_DIR)
    latest = os.path.join(directory, LATEST)
    if not os.path.exists(latest):
        return 0, 0, []
    try:
        record = read_json(latest)
        weights = os.path.join(directory, record["weights"])
        # The optimizer's variables must exist before its state can load.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        set_random_state(model, record.get("random_state", []))
    except Exception as error:  # any failure here means: cannot resume
        raise CheckpointError(
            f"Cannot resume from {directory}: {type(error).__name__}: {error}. "
            "Start over with --restart (or use another --output-dir)."
        ) from error
    return int(record["epoch"]), int(record.get("step", 0)), list(record["history"])


def write_history(run_dir, history):
    atomic_write_json(os.path.join(run_dir, "history.json"), history)
    if not history:
        return
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in history for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(os.path.join(run_dir, "history.csv"), buffer.getvalue())


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


def format_duration(seconds):
    """`95` -> "1m35s", `7500` -> "2h05m", `300000` -> "3d11h" (two units at most)."""
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


class RunProgress(keras.callbacks.Callback):
    """At each epoch's end, prints the run's elapsed time and its estimated
    remaining time: the epochs left times the mean epoch time (training and
    evaluation) of the epochs this process has run. On this CPU the main job
    is days long, and the first epoch says so."""

    def __init__(self, epochs, print_function=print):
        super().__init__()
        self.epochs = epochs
        self.print_function = print_function
        self._started = None
        self._epochs_run = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._started is None:
            self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_run += 1
        elapsed = time.perf_counter() - self._started
        left = self.epochs - (epoch + 1)
        remaining = elapsed / self._epochs_run * left
        self.print_function(
            f"epoch {epoch + 1}/{self.epochs}: {format_duration(elapsed)} elapsed in this "
            f"process, about {format_duration(remaining)} left for the {left} remaining "
            f"epochs")


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
    checkpoint_epochs=1,
    checkpoint_steps=None,
):
    """Trains a compiled `model` to `epochs`, resuming from `run_dir` if it can.

    `train_data` is a repeated training dataset or, for exact resumption, a
    function of the global step returning the stream from that step on
    (`data.training_stream(..., start_step=)`). Checkpoints are written every
    `checkpoint_epochs` epochs and, with `checkpoint_steps`, every that many
    steps; a run resumed from a mid-epoch checkpoint finishes that epoch
    first (its history row notes `resumed_at_step`).

    Returns the full history (resumed epochs included), one dict per epoch.
    Raises NonFiniteLoss, naming the epoch and step, when the loss becomes NaN
    or infinite: training stops there and the last checkpoint is kept.
    """
    os.makedirs(run_dir, exist_ok=True)
    completed, step, history = restore(model, run_dir)
    if completed or step:
        where = f" and {step} steps of epoch {completed + 1}" if step else ""
        print(f"Resuming after epoch {completed}{where} of {epochs} from {run_dir}", flush=True)
    checkpoint = Checkpoint(run_dir, steps_per_epoch, epochs, history,
                            every_epochs=checkpoint_epochs, every_steps=checkpoint_steps)
    guard = StopOnNonFiniteLoss(steps_per_epoch)
    callbacks = [guard, checkpoint, HistoryFiles(run_dir, checkpoint),
                 *([RunProgress(epochs)] if verbose else []), *_tensorboard(run_dir),
                 *extra_callbacks]

    def epochs_from(first_epoch, last_epoch, first_step=0):
        global_step = first_epoch * steps_per_epoch + first_step
        model.fit(
            train_data(global_step) if callable(train_data) else train_data,
            epochs=last_epoch, initial_epoch=first_epoch,
            steps_per_epoch=steps_per_epoch - first_step,
            validation_data=evaluation_data, validation_steps=evaluation_steps,
            callbacks=callbacks, verbose=verbose,
            # The stream is already a seeded, shuffled dataset; Keras ignores
            # (and warns about) its own shuffle for datasets.
            shuffle=False,
        )

    # Keras' fit runs whole epochs: an interrupted epoch is finished by a fit
    # call of its remaining steps, then the other epochs follow.
    if step and completed < epochs:
        checkpoint.first_step = guard.first_step = step
        epochs_from(completed, completed + 1, step)
        checkpoint.first_step = guard.first_step = 0
        completed += 1
    if completed < epochs and not guard.where:
        epochs_from(completed, epochs)
    if guard.where:
        raise _non_finite_loss(guard.where, checkpoint.directory)
    return checkpoint.history


def _non_finite_loss(where, directory):
    latest = os.path.join(directory, LATEST)
    kept = read_json(latest) if os.path.exists(latest) else {"epoch": 0}
    return NonFiniteLoss(
        f"the loss became {where['loss']} at epoch {where['epoch']}, step "
        f"{where['step']} (global step {where['global_step']}); training "
        f"stopped. The last good checkpoint ({_describe(kept)}) is kept in "
        f"{directory}: lower the learning rate, or check the "
        "data, and run again to resume from it."
    )


def _tensorboard(run_dir):
    """TensorBoard logs, where TensorFlow (their writer) can be imported: a
    JAX or torch run from device-resident arrays may have none."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return []
    # No graph: it is TensorFlow-only, and the run must work on every backend.
    return [keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"),
                                        write_graph=False)]


def _describe(record):
    if record.get("step"):
        return f"epoch {record['epoch'] + 1}, step {record['step']}"
    return f"epoch {record['epoch']}"


def save_model(model, run_dir):
    path = os.path.join(run_dir, "model.keras")
    with atomic_path(path) as temporary:
        model.save(temporary)
    return path
