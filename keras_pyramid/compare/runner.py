"""Runs a comparison's cells: each in a fresh process of its own (the
default), or all in this one.

    run_cells(cells, settings, output, print)      # the unfinished ones, in order

A fresh process per cell measures each cell's peak memory without what
earlier cells left behind (in one process the peak climbs with run order:
1.8 to 3.9 GiB over the 15 cells of the first committed comparison), and
its accelerator's peak from zero. The child is this module run as
`python -m keras_pyramid.compare.runner OUTPUT KEY ...`: it reads the
comparison from OUTPUT/compare.json, trains the one cell through
`cells.run_cell` and writes its cost.json. Its output comes through the
parent's `print_function`, line by line. A signal to the parent is passed
on to the child, which checkpoints and stops; a killed parent takes the
child with it (Linux: the child asks for SIGTERM when its parent dies).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from keras_pyramid.compare import cells as cells_module
from keras_pyramid.training import interrupts, progress
from keras_pyramid.training.run_layout import RESULTS_FILE
from keras_pyramid.utils.files import read_json

ERROR_PREFIX = "cell failed: "  # the child's last stderr line, for the parent's error
PR_SET_PDEATHSIG = 1  # prctl(2)


class CellFailed(RuntimeError):
    """A cell's process ended with an error; the message is the child's one line."""


def run_cells(cells, settings, output, print_function=print, verbose=1):
    """Runs every unfinished cell in order, saying which of how many and the
    time left at this command's pace so far."""
    todo = cells_module.missing(cells, output)
    started = time.perf_counter()
    for done, cell in enumerate(todo):
        left = ""
        if done:
            pace = (time.perf_counter() - started) / done
            left = f", about {progress.format_duration(pace * (len(todo) - done))} left"
        run_one(cell, settings, output, print_function, verbose,
                label=f"{done + 1} of {len(todo)} to train: {cell.key}{left}")


def run_one(cell, settings, output, print_function=print, verbose=1, label=None):
    """`cells.run_cell`, in a fresh process when `settings.fresh_process`."""
    if not settings.fresh_process:
        return cells_module.run_cell(cell, settings, output, print_function, verbose, label)
    command = [sys.executable, "-m", "keras_pyramid.compare.runner", os.fspath(output),
               cell.key, "--verbose", str(verbose), "--label", label or cell.key]
    if settings.image_size is not None:
        command += ["--image-size", *map(str, settings.image_size)]
    # stderr into a file, not a pipe: the frameworks' warnings would fill a
    # pipe's buffer while the parent reads stdout, and the child would block.
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                 start_new_session=True, preexec_fn=_die_with_parent)
        try:
            for line in child.stdout:
                print_function(line.rstrip("\n"))
            child.wait()
        except interrupts.Interrupted as stop:
            _stop_child(child, stop.signal_number)
            raise
        errors.seek(0)
        _raise_for(child.returncode, errors.read(), cell)
    return read_json(os.path.join(cell.run_dir(output), RESULTS_FILE))


def _die_with_parent():
    """In the child before it starts: SIGTERM when the parent dies (Linux's
    prctl), so that a killed comparison leaves no cell training alone."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the child is only stopped by the signals passed on


def _stop_child(child, signal_number):
    """Passes the parent's signal on and waits while the child checkpoints
    (a second signal to the parent is passed on too: the child stops at once)."""
    child.send_signal(signal_number)
    while True:
        try:
            child.wait()
            return
        except interrupts.Interrupted as again:
            child.send_signal(again.signal_number)


def _raise_for(returncode, errors, cell):
    if returncode == 0:
        return
    if returncode > 128 and returncode - 128 in interrupts.SIGNALS:
        raise interrupts.Interrupted(returncode - 128, f"in cell {cell.key}")
    lines = [line for line in errors.splitlines() if line.strip()]
    reason = next((line[len(ERROR_PREFIX):] for line in reversed(lines)
                   if line.startswith(ERROR_PREFIX)), None)
    if reason is None:
        reason = "its process ended with status {}: {}".format(
            returncode, " / ".join(lines[-5:]) or "no message")
    raise CellFailed(f"cell {cell.key}: {reason}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="trains one cell of a comparison")
    parser.add_argument("output")
    parser.add_argument("key")
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--label", default=None)
    parser.add_argument("--image-size", type=int, nargs=2, default=None)
    args = parser.parse_args(argv)
    settings = cells_module.recorded_settings(args.output, args.image_size)
    recorded = cells_module.read_settings(args.output)
    candidates = cells_module.recorded_candidates(recorded)
    cell = next(c for c in cells_module.cells_of(candidates, settings) if c.key == args.key)
    try:
        with interrupts.handling_signals():
            cells_module.run_cell(cell, settings, args.output,
                                  lambda text: print(text, flush=True), args.verbose,
                                  args.label)
    except interrupts.Interrupted as stop:
        print(f"{ERROR_PREFIX}{stop}", file=sys.stderr)
        return stop.exit_status
    except Exception as error:  # the parent reports it as one line: the last
        traceback.print_exc()
        print(f"{ERROR_PREFIX}{type(error).__name__}: {error}".splitlines()[0],
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
