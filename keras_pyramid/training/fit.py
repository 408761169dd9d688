"""Resumable training runs: fit with checkpoints (history.py writes the
history and its plot, progress.py the progress lines).

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

import contextlib
import errno
import math
import os
import shutil
import time

import keras

from keras_pyramid.training import interrupts
from keras_pyramid.training.history import HistoryFiles
from keras_pyramid.training.progress import RunProgress, StepTimes
from keras_pyramid.training.run_layout import CHECKPOINT_DIR, LATEST, MODEL_FILE, TENSORBOARD_DIR
from keras_pyramid.utils.files import (
    atomic_path,
    atomic_write_json,
    is_full_disk,
    read_json,
    read_json_or,
)

# The keys of checkpoint/latest.json that a resume reads.
LATEST_KEYS = ("epoch", "weights", "history")
# A checkpoint every 10 minutes of training by default: on a CPU an epoch of
# the main job takes about an hour, and a preempted machine gives no notice.
CHECKPOINT_SECONDS = 600
# Room asked for beyond a checkpoint's size before writing it: h5py reports a
# full disk only when the file is closed, and then crashes the process
# (segmentation fault) instead of raising, so the room is checked first.
DISK_MARGIN_BYTES = 1 << 20


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used to resume (corrupt or incompatible)."""


class NonFiniteLoss(RuntimeError):
    """Training stopped on a NaN or infinite loss; the last good checkpoint stays."""


class NoSpace(RuntimeError):
    """The disk is full: nothing was half written, the last checkpoint stays."""


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

    Every `every_epochs` epochs (and after the last); with `every_steps`,
    every `every_steps` global steps in between; with `every_seconds`, at
    the first step's end after that much time since the last checkpoint (or
    since training began). A crash then loses at most that many steps or
    seconds. A signal (`interrupts`) commits at the current step's end.

    The weights go to a new `step-NNNNNNNN.weights.h5` (under a temporary
    name, then renamed); only then is `latest.json` replaced to name it: that
    rename is the commit. `latest.json` records the completed epochs, the
    steps done in the epoch after them (0 at an epoch's end), the gates'
    random generator states and the history of the completed epochs. Older
    weight files are removed after the commit.
    """

    def __init__(self, run_dir, steps_per_epoch, epochs, history=None, every_epochs=1,
                 every_steps=None, every_seconds=None, clock=time.monotonic):
        super().__init__()
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR)
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.every_epochs = every_epochs
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.clock = clock
        self.history = list(history or [])
        self.step_times = None  # a StepTimes whose figures go into each row
        self.first_step = 0  # steps of the first epoch done before this fit call
        self.committed = None  # (completed epochs, step) of the last commit
        self._epoch = 0
        self._epoch_start = None
        self._last_commit_time = None

    def on_train_begin(self, logs=None):
        self._last_commit_time = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()
        self._train_seconds = None

    def on_train_batch_end(self, batch, logs=None):
        step = _step_in_epoch(batch, self.first_step)
        # An epoch's last step is saved with its evaluation, at the epoch's end.
        if step < self.steps_per_epoch and _finite(logs) and self._due(step):
            self._commit(completed=self._epoch, step=step)
        signal_number = interrupts.requested()
        if signal_number is not None and step < self.steps_per_epoch:
            raise self._interrupted(signal_number)

    def _due(self, step):
        global_step = self._epoch * self.steps_per_epoch + step
        by_steps = self.every_steps and global_step % self.every_steps == 0
        by_time = self.every_seconds and (
            self.clock() - self._last_commit_time >= self.every_seconds)
        return by_steps or by_time or interrupts.requested() is not None

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
        if self.step_times is not None:
            row.update(self.step_times.epoch_figures())
        if self.first_step:
            # The train metrics cover only the steps after the resume.
            row["resumed_at_step"] = self.first_step
        self.history.append(row)
        if ((epoch + 1) % self.every_epochs == 0 or epoch + 1 == self.epochs
                or self.every_steps or self.every_seconds or interrupts.requested()):
            self._commit(completed=epoch + 1, step=0)

    def _interrupted(self, signal_number):
        completed, step = self.committed
        where = f"epoch {completed + 1}, step {step}" if step else f"the end of epoch {completed}"
        return interrupts.Interrupted(
            signal_number, f"stopped at {where}; the checkpoint is in {self.directory}")

    def _commit(self, completed, step):
        os.makedirs(self.directory, exist_ok=True)
        global_step = completed * self.steps_per_epoch + step
        name = f"step-{global_step:08d}.weights.h5"
        path = os.path.join(self.directory, name)
        check_room(self.directory, self._expected_bytes())
        with atomic_path(path) as temporary:
            self.model.save_weights(temporary)
        atomic_write_json(
            os.path.join(self.directory, LATEST),
            {"epoch": completed, "step": step, "global_step": global_step, "weights": name,
             "random_state": random_state(self.model), "history": self.history},
        )
        self.committed = (completed, step)
        self._last_commit_time = self.clock()
        for stale in os.listdir(self.directory):
            if stale.endswith(".weights.h5") and stale != name:
                os.remove(os.path.join(self.directory, stale))

    def _expected_bytes(self):
        """The size of the checkpoint about to be written: the last one's, else
        4 bytes per element of the model's and the optimizer's variables
        (float32: mixed precision keeps its variables so)."""
        files = [os.path.join(self.directory, f) for f in os.listdir(self.directory)
                 if f.endswith(".weights.h5")]
        if files:
            return max(os.path.getsize(f) for f in files)
        variables = list(self.model.variables) + list(self.model.optimizer.variables)
        return 4 * sum(math.prod(v.shape) for v in variables)


def check_room(directory, expected_bytes):
    """Raises NoSpace unless `directory`'s disk has room for `expected_bytes`
    (x1.25, plus DISK_MARGIN_BYTES): a file half written by h5py on a full
    disk crashes the process instead of raising."""
    needed = int(expected_bytes * 1.25) + DISK_MARGIN_BYTES
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {free:,} bytes free, a "
                                    f"checkpoint needs about {needed:,}", directory)


def completed_epochs(run_dir):
    """The epochs the last checkpoint of `run_dir` completed (0 without one)."""
    latest = os.path.join(run_dir, CHECKPOINT_DIR, LATEST)
    return int(read_json_or(latest, {"epoch": 0})["epoch"])


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
            "Start over with `restart` (or use another `run_dir`)."
        ) from error
    return int(record["epoch"]), int(record.get("step", 0)), list(record["history"])


class StopOnSignal(keras.callbacks.Callback):
    """Last of the callbacks: a signal noted during an epoch's last step or
    its evaluation stops the run once that epoch is committed and its history
    written (a signal mid-epoch is handled by `Checkpoint` at the step's end)."""

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint = checkpoint

    def on_epoch_end(self, epoch, logs=None):
        signal_number = interrupts.requested()
        if signal_number is not None and self.checkpoint.committed == (epoch + 1, 0):
            raise self.checkpoint._interrupted(signal_number)


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
    checkpoint_seconds=CHECKPOINT_SECONDS,
    print_function=print,
    announce_resume=True,
):
    """Trains a compiled `model` to `epochs`, resuming from `run_dir` if it can.

    `train_data` is a repeated training dataset or, for exact resumption, a
    function of the global step returning the stream from that step on
    (`data.training_stream(..., start_step=)`). Checkpoints are written every
    `checkpoint_epochs` epochs and, with `checkpoint_steps`, every that many
    steps, and every `checkpoint_seconds` of training (None: never by time);
    a run resumed from a mid-epoch checkpoint finishes that epoch first (its
    history row notes `resumed_at_step`).

    Returns the full history (resumed epochs included), one dict per epoch.
    Raises NonFiniteLoss, naming the epoch and step, when the loss becomes NaN
    or infinite: training stops there and the last checkpoint is kept.
    Raises `interrupts.Interrupted` on SIGINT or SIGTERM, after a checkpoint
    at the current step's end, and NoSpace when the disk is full (the last
    checkpoint is intact). `announce_resume`: print where it resumes.
    """
    os.makedirs(run_dir, exist_ok=True)
    completed, step, history = restore(model, run_dir)
    if (completed or step) and announce_resume:
        where = f" and {step} steps of epoch {completed + 1}" if step else ""
        print_function(f"Resuming after epoch {completed}{where} of {epochs} from {run_dir}")
    checkpoint = Checkpoint(run_dir, steps_per_epoch, epochs, history,
                            every_epochs=checkpoint_epochs, every_steps=checkpoint_steps,
                            every_seconds=checkpoint_seconds)
    checkpoint.committed = (completed, step)
    checkpoint.step_times = StepTimes()
    guard = StopOnNonFiniteLoss(steps_per_epoch)
    progress = [RunProgress(epochs, steps_per_epoch, print_function)] if verbose else []
    callbacks = [guard, checkpoint.step_times, checkpoint, HistoryFiles(run_dir, checkpoint),
                 *progress, *_tensorboard(run_dir), *extra_callbacks, StopOnSignal(checkpoint)]

    def epochs_from(first_epoch, last_epoch, first_step=0):
        global_step = first_epoch * steps_per_epoch + first_step
        with interrupts.handling_signals(), interrupts.graceful(), reporting_full_disk(
                run_dir):
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


@contextlib.contextmanager
def reporting_full_disk(run_dir):
    """Turns a full disk's OSError into NoSpace naming the folder and the
    checkpoint that is kept (the write that failed was to a temporary name,
    already removed)."""
    try:
        yield
    except OSError as error:
        if not is_full_disk(error):
            raise
        directory = os.path.join(run_dir, CHECKPOINT_DIR)
        kept = _last_checkpoint(directory)
        kept = (f"the last checkpoint ({_describe(kept)}) is intact" if kept["epoch"]
                or kept.get("step") else "no checkpoint was written yet")
        raise NoSpace(f"no space left on the disk of {run_dir}: {kept}. Free space and run "
                      "the same command again to resume") from None


def _last_checkpoint(directory):
    """latest.json's record in `directory` ({"epoch": 0} without one)."""
    latest = os.path.join(directory, LATEST)
    return read_json_or(latest, {"epoch": 0})


def _non_finite_loss(where, directory):
    kept = _last_checkpoint(directory)
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
    return [keras.callbacks.TensorBoard(os.path.join(run_dir, TENSORBOARD_DIR),
                                        write_graph=False)]


def _describe(record):
    if record.get("step"):
        return f"epoch {record['epoch'] + 1}, step {record['step']}"
    return f"epoch {record['epoch']}"


def save_model(model, run_dir):
    path = os.path.join(run_dir, MODEL_FILE)
    with atomic_path(path) as temporary:
        model.save(temporary)
    return path
