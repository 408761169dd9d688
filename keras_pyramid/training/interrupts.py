"""Ctrl-C and SIGTERM stop a run at a step's end, after a checkpoint.

A cluster scheduler or a preempted cloud machine sends SIGTERM; a person
presses Ctrl-C (SIGINT). Either way the run should lose nothing:

    with interrupts.graceful():          # around model.fit: the signal is noted,
        model.fit(..., callbacks=[...])  # the step finishes, a checkpoint is
                                         # written, then `Interrupted` is raised

Outside `graceful()` (building, loading data, saving) nothing is half done
that a checkpoint could keep, so the signal raises `Interrupted` at once. A
second signal while the step finishes also stops at once: the last
checkpoint is intact either way. Programs exit with 128 + the signal's
number (130 for SIGINT, 143 for SIGTERM), as shells do.
"""

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped on a signal. `exit_status` is 128 + its number;
    `where` says what was kept ("" when nothing was in progress)."""

    def __init__(self, signal_number, where=""):
        if not isinstance(signal_number, int):  # rebuilt from its message: see below
            signal_number, where = _from_message(str(signal_number))
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.where = where
        self.exit_status = 128 + signal_number
        # The args are the constructor's: a library that re-raises an error
        # as `type(error)(*error.args)` (TensorFlow's export does) rebuilds
        # this one, not a ValueError about a signal named by a sentence.
        super().__init__(signal_number, where)

    def __str__(self):
        return f"interrupted by {self.signal_name}" + (f": {self.where}" if self.where else "")


def _from_message(message):
    """(signal number, where) of an Interrupted's message, as a library that
    re-raises an error as `type(error)(message)` (TensorFlow's tracing
    during an export) rebuilds it; SIGINT where the message names none."""
    text = message.split("\n", 1)[0]
    number = next((int(s) for s in SIGNALS if signal.Signals(s).name in text), signal.SIGINT)
    _, _, where = text.partition(f"interrupted by {signal.Signals(number).name}")
    return number, where.removeprefix(": ")


class _State:
    """The signal noted during a graceful section (None: none yet)."""

    graceful = False
    requested = None


_state = _State()


def _handle(signal_number, frame):
    if _state.graceful and _state.requested is None:
        _state.requested = signal_number
        print(f"{signal.Signals(signal_number).name} received: stopping after this step, "
              "once a checkpoint is written (send it again to stop at once)", flush=True)
        return
    raise Interrupted(signal_number)


@contextlib.contextmanager
def handling_signals():
    """Installs the handlers for SIGINT and SIGTERM (main thread only: Python
    delivers signals there) and restores the previous ones afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _handle) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def graceful():
    """A section where a signal is only noted (`requested()`), for the
    training loop to stop at the next step's end."""
    _state.graceful, _state.requested = True, None
    try:
        yield
    finally:
        _state.graceful = False


def requested():
    """The signal number noted in the current graceful section, or None."""
    return _state.requested
