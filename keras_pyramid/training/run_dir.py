"""Run directories: `prepare_run_dir` creates or checks one, `load_run` is the one reader.

    args.json        the RunConfig (a rerun with other run-defining values is refused)
    data.json        the source, its class names, the split, the image size,
                     the augmentation and the input statistics
    checkpoint/      the last checkpoint (`fit.py`); history.csv history.json curves.png
    model.keras      the final network
    results.json     the final epoch's figures

    run = load_run("runs/pyramidnet110_a48_sepdrop-cifar10")
    run.args["dataset"], run.data["class_names"], run.model_path, run.finished

Directories written by 0.1.0 load: `args.json` keys renamed since are read
under their new names, and fields added since get the value those runs had.
A corrupt record is a ConfigError naming the file (never a traceback).

One process at a time trains in a run directory: `RunLock` holds an
exclusive `flock` on its `.lock` file (the holder's PID inside, for the
message). The operating system releases it when the holder dies, however it
dies, so a stale lock of a dead process is simply taken over.
"""

import dataclasses
import fcntl
import json
import os
import shutil

from keras_pyramid.training import fit, run_layout
from keras_pyramid.training.run_layout import (
    ARGS_FILE,
    DATA_FILE,
    LOCK_FILE,
    MODEL_FILE,
    RESULTS_FILE,
)
from keras_pyramid.utils.files import atomic_write_json, read_json, remove_stale_temporaries

# Fields that define a run: resuming with other values would mix two runs.
RUN_DEFINING = ("model", "architecture", "skip_dropped", "dataset", "image_size", "augment",
                "flip", "validation", "label_noise", "weights", "freeze_backbone_epochs", "recipe",
                "epochs", "batch_size", "learning_rate", "drop_rate", "new_drop_rate",
                "drop_rate_schedule", "weight_decay", "seed", "split_seed", "train_examples",
                "steps_per_epoch", "mixed_precision", "use_test_split", "precise_batch_norm")
# Run-defining fields newer than some run directories, with the value the
# runs written before them had (and the old name of a renamed one).
ADDED_LATER = {"new_drop_rate": None, "drop_rate_schedule": "constant", "architecture": None,
               "image_size": None, "augment": None, "label_noise": 0.0, "weights": None,
               "freeze_backbone_epochs": None, "recipe": "paper", "flip": True,
               "split_seed": None, "train_examples": None, "use_test_split": True,
               "precise_batch_norm": False}
RENAMED = {"lr": "learning_rate", "validation_examples": "validation"}


class ConfigError(ValueError):
    """A RunConfig value that cannot be used; `argument` names its field."""

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


@dataclasses.dataclass(frozen=True)
class Run:
    """What a run directory holds; a field is None when its file is absent.

    `args`: args.json under today's field names (older fields filled in);
    `data`: data.json; `results`: results.json; `model_path`: model.keras;
    `completed_epochs`: the epochs of the last checkpoint (0 without one).
    """

    path: str
    args: dict = None
    data: dict = None
    results: dict = None
    model_path: str = None
    completed_epochs: int = 0

    @property
    def finished(self):
        return self.results is not None


RESTART_WAY_OUT = "run again with `restart` to start the run over, or choose another `run_dir`"


def corrupt(path, reason, way_out=RESTART_WAY_OUT, argument="run_dir"):
    """The ConfigError of an unreadable record: the file, why, and the way out
    (`problem`: the file and why alone, for a program with another way out)."""
    error = ConfigError(argument, f"{path} is corrupt ({reason}): {way_out}")
    error.problem = f"{path} is corrupt ({reason})"
    return error


def unreadable(path):
    """Why the record at `path` (a JSON object) cannot be read, or None."""
    try:
        record = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{type(error).__name__}: {error}"
    return None if isinstance(record, dict) else f"a JSON {type(record).__name__}, not an object"


def read_record(path, way_out=RESTART_WAY_OUT, argument="run_dir"):
    """The JSON object at `path`, None when absent; a ConfigError naming the
    file, and `way_out`, when it is not one (never a traceback)."""
    if not os.path.exists(path):
        return None
    reason = unreadable(path)
    if reason is not None:
        raise corrupt(path, reason, way_out, argument)
    return read_json(path)


def _read(run_dir, name):
    """A record (a JSON object) of `run_dir`, None when absent."""
    return read_record(os.path.join(run_dir, name))


def load_run(run_dir):
    """The `Run` in `run_dir` (every field None or 0 for an empty or missing directory).

    Raises ConfigError naming the file when a record is corrupt, or when
    `checkpoint` is not a folder."""
    run_dir = os.fspath(run_dir)
    args = _read(run_dir, ARGS_FILE)
    if args is not None:
        args = {**ADDED_LATER, **{RENAMED.get(key, key): value for key, value in args.items()}}
    checkpoint = os.path.join(run_dir, fit.CHECKPOINT_DIR)
    if os.path.exists(checkpoint) and not os.path.isdir(checkpoint):
        raise ConfigError("run_dir", f"{checkpoint} is a file, where the run keeps its "
                                     "checkpoint folder: move it away, or run again with "
                                     "`restart` to start over")
    latest = _read(checkpoint, fit.LATEST)  # the checkpoint's record must be readable too
    missing = [key for key in fit.LATEST_KEYS if latest is not None and key not in latest]
    if missing:
        raise corrupt(os.path.join(checkpoint, fit.LATEST), f"no {', '.join(missing)}")
    model_path = os.path.join(run_dir, MODEL_FILE)
    return Run(path=run_dir, args=args, data=_read(run_dir, DATA_FILE),
               results=_read(run_dir, RESULTS_FILE),
               model_path=model_path if os.path.isfile(model_path) else None,
               completed_epochs=fit.completed_epochs(run_dir))


def has_checkpoint(run_dir):
    return os.path.exists(os.path.join(run_dir, fit.CHECKPOINT_DIR, fit.LATEST))


def differences(previous, recorded, fields=RUN_DEFINING):
    """"field: old -> new" of the `fields` (the run-defining ones) that differ ('' when none)."""
    changed = [k for k in fields if previous.get(k) != recorded.get(k)]
    return ", ".join(f"{k}: {previous.get(k)!r} -> {recorded.get(k)!r}" for k in changed)


def refuse_other_run(run, recorded):
    """Raises ConfigError when `run` (a `Run`) was made with other run-defining
    values than `recorded`: resuming would mix two runs, and a finished run
    answering "already finished" would hide that nothing trained."""
    details = differences(run.args, recorded) if run.args is not None else ""
    if details:
        state = "a finished run" if run.finished else "a run"
        raise ConfigError("run_dir", f"{run.path} holds {state} with other arguments "
                                     f"({details}); nothing was trained. Run again with "
                                     "`restart` to start over, or choose another `run_dir`")


class RunLock:
    """An exclusive lock on a run directory, held while a process trains in it.

        with RunLock("runs/x"):   # ConfigError naming the holder's PID if taken
            ...

    Creates the directory if needed; `created` says whether it did."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.created = not os.path.isdir(run_dir)
        self._file = None

    def __enter__(self):
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            self._file = open(os.path.join(self.run_dir, LOCK_FILE), "a+", encoding="utf-8")
        except OSError as error:
            raise ConfigError("run_dir", f"{self.run_dir} cannot be created: "
                                         f"{error.strerror}") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown"
            self._file.close()
            raise ConfigError("run_dir", f"{self.run_dir} is in use by process {holder}, "
                                         "which is training in it: wait for it to finish, "
                                         "stop it, or choose another directory") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def check_folder(run_dir, restart=False):
    """Refuses (ConfigError naming `run_dir`) a file, a folder that belongs to
    another program (its records would be overwritten), and `restart` of a
    folder that is not a run directory: restarting deletes a run's files
    (run_layout.RUN_WRITES) only where a run is, never the user's own."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError("run_dir", f"{run_dir} is a file, not a folder: choose another "
                                     "directory")
    kind = run_layout.owner(run_dir)
    if kind not in (None, run_layout.RUN):
        raise ConfigError("run_dir", f"{run_dir} holds {kind}, not a training run; nothing was "
                                     "trained or removed: choose another directory")
    others = run_layout.other_entries(run_dir)
    if restart and kind is None and others:
        raise ConfigError("run_dir", f"{run_dir} is not a run directory (it holds "
                                     f"{run_layout.describe_entries(run_dir, others)}); "
                                     "restarting deletes a run's files only in a run "
                                     "directory, so nothing was removed: choose another "
                                     "directory")


def prepare_run_dir(recorded, run_dir, restart=False):
    """Checks the locked `run_dir` for the config `recorded` (args.json's
    dict) and writes args.json; refuses (ConfigError naming `run_dir`) to
    resume a different run. `restart` empties it first (the lock stays).
    Temporary files of dead processes are removed."""
    if restart:
        _empty(run_dir)
    if not os.access(run_dir, os.W_OK):
        raise ConfigError("run_dir", f"{run_dir} is not writable")
    for folder in (run_dir, os.path.join(run_dir, fit.CHECKPOINT_DIR)):
        remove_stale_temporaries(folder)
    refuse_other_run(load_run(run_dir), recorded)
    atomic_write_json(os.path.join(run_dir, ARGS_FILE), recorded)


def _empty(run_dir):
    """Removes what a run wrote in `run_dir` (run_layout.RUN_WRITES) but the
    lock this process holds; the user's own files stay."""
    for name in run_layout.run_entries(run_dir):
        path = os.path.join(run_dir, name)
        if name == LOCK_FILE:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def forget_untrained(run_dir, lock=None):
    """Removes args.json and data.json of a run that trained nothing (its model
    could not be built, its weights could not be fetched): no run to keep, and
    no record to refuse the next one. With the `RunLock` of a directory this
    run created, the directory goes too: a failed start leaves nothing."""
    if fit.completed_epochs(run_dir) or has_checkpoint(run_dir):
        return
    for name in (ARGS_FILE, DATA_FILE):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            os.remove(path)
    if lock is not None and lock.created and os.listdir(run_dir) == [LOCK_FILE]:
        shutil.rmtree(run_dir)
