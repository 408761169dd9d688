"""The bad day: Ctrl-C and SIGTERM, time-based checkpoints, a full disk, two
processes on one run directory, corrupt records, and the first hour's
estimate. Each stops with one line and loses nothing.

The fit-level cases touch tensors and run on every backend, in this process
(a signal is raised from a callback, as a scheduler's would arrive between
steps). Records, locks and the estimate are pure Python and run once.
"""

import json
import os
import signal
import sys

import keras
import numpy as np
import pytest
from helpers.models import random_images, tiny_model
from helpers.processes import run_command

from keras_pyramid.training import fit, interrupts, progress, recipe
from keras_pyramid.training.run_dir import ConfigError, RunLock, load_run, prepare_run_dir

PURE_PYTHON = "pure Python: runs once, under tensorflow"


def only_once():
    if keras.backend.backend() != "tensorflow":
        pytest.skip(PURE_PYTHON)


def compiled_tiny():
    model = tiny_model(None, classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def stream(start_step=0):
    """12 images, 3 batches of 4 per epoch, as a function of the global step."""
    import tensorflow as tf

    images, labels = random_images(12), np.arange(12) % 10
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).repeat()
    return data.skip(start_step % 3)


class RaiseSignal(keras.callbacks.Callback):
    """Sends `number` to this process during global step `at` (1-based), as a
    scheduler's signal arrives while a step computes."""

    def __init__(self, number, at, steps_per_epoch=3):
        super().__init__()
        self.number, self.at, self.steps_per_epoch = number, at, steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch * self.steps_per_epoch + batch + 1 == self.at:
            signal.raise_signal(self.number)


def fit_tiny(run_dir, *callbacks, epochs=3, **keywords):
    return fit.fit(compiled_tiny(), stream, stream(), epochs=epochs, steps_per_epoch=3,
                   run_dir=str(run_dir), evaluation_steps=1, verbose=0,
                   extra_callbacks=callbacks, **keywords)


def latest(run_dir):
    return json.loads((run_dir / "checkpoint" / "latest.json").read_text())


def test_sigint_and_sigterm_checkpoint_at_the_step_and_the_run_resumes(tmp_path, capsys):
    # SIGINT during global step 2 (mid epoch 1): noted, the step ends, a
    # checkpoint is written there, then the run stops.
    with pytest.raises(interrupts.Interrupted) as stop:
        fit_tiny(tmp_path, RaiseSignal(signal.SIGINT, at=2))
    assert stop.value.exit_status == 130 and stop.value.signal_name == "SIGINT"
    assert "stopped at epoch 1, step 2" in str(stop.value)
    assert (latest(tmp_path)["epoch"], latest(tmp_path)["step"]) == (0, 2)
    assert "stopping after this step" in capsys.readouterr().out
    # SIGTERM at an epoch's last step (global step 6): the evaluation ends,
    # the epoch is committed with its history, then the run stops.
    with pytest.raises(interrupts.Interrupted) as stop:
        fit_tiny(tmp_path, RaiseSignal(signal.SIGTERM, at=6))
    assert stop.value.exit_status == 143 and "the end of epoch 2" in str(stop.value)
    record = latest(tmp_path)
    assert (record["epoch"], record["step"], len(record["history"])) == (2, 0, 2)
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2
    # The handlers are the process's again, and the run finishes from there.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    history = fit_tiny(tmp_path)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[0]["resumed_at_step"] == 2


def test_checkpoints_come_by_wall_time_between_epochs(tmp_path):
    """Every 2.5 s of a clock that moves 1 s per reading: commits at the steps
    where 2.5 s have passed since the last commit."""
    ticks = iter(range(1000))
    checkpoint = fit.Checkpoint(str(tmp_path), steps_per_epoch=10, epochs=1,
                                every_seconds=2.5, clock=lambda: next(ticks))
    model = compiled_tiny()
    model.optimizer.build(model.trainable_variables)
    checkpoint.set_model(model)
    commits = []
    checkpoint.on_train_begin()
    checkpoint.on_epoch_begin(0)
    for batch in range(9):
        checkpoint.on_train_batch_end(batch, {"loss": 1.0})
        commits.append(checkpoint.committed)
    steps = sorted({c[1] for c in commits if c is not None})
    assert steps == [3, 6, 9], commits
    assert latest(tmp_path)["step"] == 9


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    class FillTheDisk(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # after epoch 1's checkpoint
            monkeypatch.setattr(fit.shutil, "disk_usage",
                                lambda path: type("Usage", (), {"free": 4096})())

    with pytest.raises(fit.NoSpace, match=r"no space left on the disk of .*: the last "
                                          r"checkpoint \(epoch 1\) is intact"):
        fit_tiny(tmp_path, FillTheDisk())
    assert latest(tmp_path)["epoch"] == 1
    leftovers = [n for n in os.listdir(tmp_path / "checkpoint") if n.startswith("tmp-")]
    assert not leftovers and len(os.listdir(tmp_path / "checkpoint")) == 2
    monkeypatch.undo()  # space again: the run resumes and finishes
    assert [row["epoch"] for row in fit_tiny(tmp_path)] == [1, 2, 3]


def test_the_estimate_comes_after_the_first_timed_steps():
    only_once()
    printed, ticks = [], iter(np.arange(0, 100, 2.0))
    shown = progress.RunProgress(epochs=10, steps_per_epoch=100, print_function=printed.append,
                                 early_steps=3, clock=lambda: next(ticks))
    shown.on_train_begin()
    shown.on_epoch_begin(0)
    for batch in range(4):  # the first step compiles and is not timed
        shown.on_train_batch_end(batch)
    assert printed == ["about 2.00 s per step (median of 3 steps): the 996 remaining "
                       "training steps take about 33m12s, evaluations apart"]


def test_one_process_per_run_directory_and_a_dead_holder_is_taken_over(tmp_path):
    only_once()
    with RunLock(str(tmp_path / "run")):
        with pytest.raises(ConfigError, match=f"is in use by process {os.getpid()}"):
            with RunLock(str(tmp_path / "run")):
                pass
    dead = int(run_command([sys.executable, "-c", "import os; print(os.getpid())"]).stdout)
    (tmp_path / "run" / ".lock").write_text(f"{dead}\n")
    stale = tmp_path / "run" / f"tmp-{dead}-args.json"
    stale.write_text("")  # what a run killed mid-write leaves
    with RunLock(str(tmp_path / "run")) as lock:
        assert (tmp_path / "run" / ".lock").read_text() == f"{os.getpid()}\n"
        assert not lock.created
        prepare_run_dir({"model": "m"}, str(tmp_path / "run"))
    assert not stale.exists()


@pytest.mark.parametrize("name", ["args.json", "data.json", "results.json",
                                  "checkpoint/latest.json"])
def test_a_corrupt_record_is_named_with_the_way_out(tmp_path, name):
    only_once()
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text('{"epoch": 3, "hist')  # torn by hand or by another tool
    with pytest.raises(ConfigError, match=f"{path} is corrupt .*`restart`"):
        load_run(str(tmp_path))
    with RunLock(str(tmp_path)):  # and --restart is the way out
        prepare_run_dir({"model": "m"}, str(tmp_path), restart=True)
    assert load_run(str(tmp_path)).args["model"] == "m"
    assert name == "args.json" or not path.exists()  # args.json: the new run's


def test_a_checkpoint_that_is_a_file_is_refused(tmp_path):
    only_once()
    (tmp_path / "checkpoint").write_text("not a folder")
    with pytest.raises(ConfigError, match="checkpoint is a file"):
        load_run(str(tmp_path))


def test_small_data_gets_a_smaller_batch_and_says_so():
    only_once()
    paper = recipe.paper_recipe("other")
    fitted, note = recipe.fitted_to_data(paper, 200)
    assert (fitted.batch_size, fitted.learning_rate) == (16, pytest.approx(0.1 * 16 / 128))
    assert note.startswith("batch size 16 instead of the recipe's 128: 200 training images "
                           "would give 1 step per epoch")
    assert recipe.fitted_to_data(paper, 50_000) == (paper, None)
    assert recipe.fitted_to_data(paper, 200, keep_batch_size=True) == (paper, None)
    kept, _ = recipe.fitted_to_data(paper, 40, keep_learning_rate=True)
    assert (kept.batch_size, kept.learning_rate) == (8, 0.1)  # never below 8


def test_no_flip_keeps_the_crop_and_never_mirrors():
    only_once()
    import tensorflow as tf

    from keras_pyramid.data.augment import cifar_augment

    image = tf.constant(random_images(1, size=8)[0] * 255)
    mirrored = 0
    for seed in range(8):
        kept = cifar_augment(image, tf.constant([seed, 0]), flip=False).numpy()
        maybe = cifar_augment(image, tf.constant([seed, 0])).numpy()
        same = np.array_equal(kept, maybe)
        assert same or np.array_equal(kept[:, ::-1], maybe)
        mirrored += not same
    assert 0 < mirrored < 8


NEARLY_FULL_DISK = """
import os, sys
sys.path.insert(0, {tests!r})
import keras
import numpy as np
from helpers.models import random_images, tiny_model
from keras_pyramid.training import fit

class FillTheDisk(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):  # after epoch 1's checkpoint: 64 KB left
        free = os.statvfs({disk!r}).f_bavail * os.statvfs({disk!r}).f_frsize
        with open(os.path.join({disk!r}, "filler"), "wb") as f:
            f.write(bytes(free - 65536))

model = tiny_model(None, classes=10)
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
x, y = random_images(12), np.arange(12) % 10
import tensorflow as tf
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
try:
    fit.fit(model, data, None, epochs=3, steps_per_epoch=3, run_dir={run_dir!r}, verbose=0,
            extra_callbacks=[FillTheDisk()])
except fit.NoSpace as error:
    print(sorted(os.listdir(os.path.join({run_dir!r}, "checkpoint"))))
    print(f"error: {{error}}")
    sys.exit(2)
"""


def test_a_really_full_disk_is_one_line_not_a_crash(tmp_path):
    """On a real 8 MB file system filled after the first checkpoint (h5py would
    crash the process writing the second): one line, exit 2, nothing left."""
    only_once()
    disk = tmp_path / "disk"
    disk.mkdir()
    code = NEARLY_FULL_DISK.format(tests=os.path.dirname(os.path.dirname(__file__)),
                                   disk=str(disk), run_dir=str(disk / "run"))
    script = tmp_path / "script.py"
    script.write_text(code)
    mounted = (f"mount -t tmpfs -o size=8m tmpfs {disk} && cd {tmp_path} && "
               f"{sys.executable} {script}")
    result = run_command(["unshare", "-r", "-m", "sh", "-c", mounted], timeout=600)
    if result.returncode != 2 and result.stderr.startswith(("unshare:", "mount:")):
        pytest.skip(f"no user namespace for a small file system here: {result.stderr[:200]}")
    assert result.returncode == 2, result.stderr[-3000:]
    *_, kept, error = result.stdout.strip().splitlines()
    assert error.startswith("error: no space left on the disk of "), result.stdout[-2000:]
    assert kept == "['latest.json', 'step-00000003.weights.h5']"  # no temporary file left
    assert "the last checkpoint (epoch 1) is intact" in result.stdout
    assert "Traceback" not in result.stderr and "HDF5" not in result.stderr
