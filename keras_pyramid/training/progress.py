"""What a run shows while it trains: each step's time (`StepTimes`) and
the progress lines with the time left (`RunProgress`).

    format_duration(7500)   # "2h05m"
"""

import time

import keras
import numpy as np


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


class StepTimes(keras.callbacks.Callback):
    """Each training step's duration, for the epoch's history row: the
    median over the epoch's steps (`median_step_seconds`) and, apart, the
    first step of each fit call (`first_step_seconds`), which traces and
    compiles the step. A step is timed from the previous step's end, so an
    epoch's first step (after the previous epoch's evaluation) is not timed."""

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.clock = clock
        self._compiled = False
        self._last_step_end = None
        self._steps = []
        self._first = None

    def on_train_begin(self, logs=None):
        self._compiled = False

    def on_epoch_begin(self, epoch, logs=None):
        self._steps, self._first = [], None
        self._last_step_end = None if self._compiled else self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last_step_end is not None:
            if self._compiled:
                self._steps.append(now - self._last_step_end)
            else:
                self._first = now - self._last_step_end
        self._compiled = True
        self._last_step_end = now

    def epoch_figures(self):
        """The history row's timing fields of the epoch that just ended."""
        figures = {}
        if self._steps:
            figures["median_step_seconds"] = float(np.median(self._steps))
        if self._first is not None:
            figures["first_step_seconds"] = self._first
        return figures


class RunProgress(keras.callbacks.Callback):
    """Prints the run's estimated remaining time: once early, after
    `early_steps` timed steps (the first step of each fit call compiles and
    is not timed), as the remaining steps times the median step time; then at
    each epoch's end, as the epochs left times the mean epoch time (training
    and evaluation) of the epochs this process has run. On this CPU the main
    job is days long, and its first minutes say so."""

    def __init__(self, epochs, steps_per_epoch=None, print_function=print, early_steps=5,
                 clock=time.perf_counter):
        super().__init__()
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.print_function = print_function
        self.early_steps = early_steps
        self.clock = clock
        self._started = None
        self._epochs_run = 0
        self._epoch = 0
        self._step_times = []
        self._last_step_end = None

    def on_train_begin(self, logs=None):
        self._last_step_end = None  # the next step compiles: not timed

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._started is None:
            self._started = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last_step_end is not None and len(self._step_times) < self.early_steps:
            self._step_times.append(now - self._last_step_end)
            if len(self._step_times) == self.early_steps and self.steps_per_epoch:
                self._print_early_estimate(batch)
        self._last_step_end = now

    def _print_early_estimate(self, batch):
        step_time = sorted(self._step_times)[len(self._step_times) // 2]
        done = self._epoch * self.steps_per_epoch + batch + 1
        left = self.epochs * self.steps_per_epoch - done
        self.print_function(
            f"about {step_time:.2f} s per step (median of {len(self._step_times)} steps): "
            f"the {left:,} remaining training steps take about "
            f"{format_duration(step_time * left)}, evaluations apart")

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_run += 1
        elapsed = self.clock() - self._started
        left = self.epochs - (epoch + 1)
        remaining = elapsed / self._epochs_run * left
        self.print_function(
            f"epoch {epoch + 1}/{self.epochs}: {format_duration(elapsed)} elapsed in this "
            f"process, about {format_duration(remaining)} left for the {left} remaining "
            f"epochs")
