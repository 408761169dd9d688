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
"""

import dataclasses
import os
import shutil

from keras_pyramid.training import fit
from keras_pyramid.utils.files import atomic_write_json, read_json

ARGS_FILE = "args.json"
DATA_FILE = "data.json"
RESULTS_FILE = "results.json"
MODEL_FILE = "model.keras"

# Fields that define a run: resuming with other values would mix two runs.
RUN_DEFINING = ("model", "architecture", "skip_dropped", "dataset", "image_size", "augment",
                "validation", "label_noise", "weights", "freeze_backbone_epochs", "recipe",
                "epochs", "batch_size", "learning_rate", "drop_rate", "new_drop_rate",
                "drop_rate_schedule", "weight_decay", "seed", "steps_per_epoch",
                "mixed_precision")
# Run-defining fields newer than some run directories, with the value the
# runs written before them had (and the old name of a renamed one).
ADDED_LATER = {"new_drop_rate": None, "drop_rate_schedule": "constant", "architecture": None,
               "image_size": None, "augment": None, "label_noise": 0.0, "weights": None,
               "freeze_backbone_epochs": None, "recipe": "paper"}
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


def _read(run_dir, name):
    path = os.path.join(run_dir, name)
    return read_json(path) if os.path.exists(path) else None


def load_run(run_dir):
    """The `Run` in `run_dir` (every field None or 0 for an empty or missing directory)."""
    run_dir = os.fspath(run_dir)
    args = _read(run_dir, ARGS_FILE)
    if args is not None:
        args = {**ADDED_LATER, **{RENAMED.get(key, key): value for key, value in args.items()}}
    model_path = os.path.join(run_dir, MODEL_FILE)
    return Run(path=run_dir, args=args, data=_read(run_dir, DATA_FILE),
               results=_read(run_dir, RESULTS_FILE),
               model_path=model_path if os.path.isfile(model_path) else None,
               completed_epochs=fit.completed_epochs(run_dir))


def prepare_run_dir(recorded, run_dir, restart=False):
    """Creates or checks `run_dir` for the config `recorded` (args.json's dict);
    refuses (ConfigError naming `run_dir`) to resume a different run."""
    if restart and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise ConfigError("run_dir", f"{run_dir} cannot be created: {error.strerror}") from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError("run_dir", f"{run_dir} is not writable")
    previous = load_run(run_dir).args
    if previous is not None:
        changed = [k for k in RUN_DEFINING if previous.get(k) != recorded.get(k)]
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {recorded.get(k)!r}"
                                for k in changed)
            raise ConfigError("run_dir", f"{run_dir} holds a run with other arguments "
                                         f"({details}); restart it or choose another directory")
    atomic_write_json(os.path.join(run_dir, ARGS_FILE), recorded)


def forget_untrained(run_dir):
    """Removes args.json and data.json of a run that trained nothing (its model
    could not be built): no run to keep, and no record to refuse the next one."""
    if not fit.completed_epochs(run_dir):
        for name in (ARGS_FILE, DATA_FILE):
            path = os.path.join(run_dir, name)
            if os.path.exists(path):
                os.remove(path)
