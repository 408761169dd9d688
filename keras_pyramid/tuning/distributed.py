"""KerasTuner's distributed mode, shared by a search and a comparison's grid.

Every process runs the same command with KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT set; KERASTUNER_TUNER_ID is `chief` on the process
that serves the oracle (and writes the reports) and `tuner0`, `tuner1`, ...
on the workers, which take trials from it. Without KERASTUNER_TUNER_ID the
whole search runs in this process.

    tuner_class = trials_through(kt.RandomSearch, lambda trial: {"val_accuracy": ...})

A trial here is one of the project's runs (`training.experiment.run`, in a
run directory of its own), so the tuner's `run_trial` is replaced whole:
KerasTuner builds no model and keeps no checkpoint of its own.
"""

import os

TUNER_ID = "KERASTUNER_TUNER_ID"
CHIEF = "chief"


def tuner_id():
    """`chief`, a worker's id, or None outside KerasTuner's distributed mode."""
    return os.environ.get(TUNER_ID)


def leads():
    """Whether this process writes the records: the chief, or a process alone."""
    return tuner_id() in (None, CHIEF)


def trials_through(tuner_class, run_trial):
    """`tuner_class` (a KerasTuner tuner) whose trials call `run_trial(trial)`,
    which returns the trial's metrics ({objective name: value})."""

    def run(self, trial, *args, **kwargs):
        return run_trial(trial)

    return type(tuner_class.__name__, (tuner_class,), {"run_trial": run})
