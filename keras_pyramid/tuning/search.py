"""A search from its settings to its report, each trial a run of the project's one run path.

    settings = SearchSettings(dataset="folder:digits", max_trials=8, epochs=3,
                              space={"depth": "20", "regularization": "sepdrop"})
    outcome = run_search(settings)          # the report's rows and the best values
    result = retrain(settings, outcome)     # the best on the whole training split, tested once

Each trial is `training.experiment.run` in its own run directory,
PROJECT/trial_ID/run: the same data layer, checkpoints, history.csv,
drop-rate schedule and exact resume as train.py, so a trial whose process
was killed resumes from its last checkpoint when the search runs again
(`hypermodel.KilledTrialGuard` stops a trial that kills its process twice).

The objective is the FINAL epoch's accuracy on a seeded, stratified
hold-out of `validation_examples` training images (default: a tenth of the
training split, at most MAX_HOLDOUT). A trial never reads the test split
(`RunConfig.use_test_split=False`): only `retrain` does, once.

Hyperband's trials each train from scratch for the epochs Hyperband gives
them (its successive halving without KerasTuner's weight copying: a run's
learning-rate schedule spans its own epochs, so a copy of a shorter run's
weights would not continue it).

Errors in the settings raise `ConfigError` naming the field (programs map
it to their flags); unreadable data raises `run_data.DataError`.
"""

import dataclasses
import glob
import json
import os

import keras
import keras_tuner as kt

from keras_pyramid import data
from keras_pyramid.training import experiment, interrupts, recipe, run_data, run_layout
from keras_pyramid.training.config import RunConfig
from keras_pyramid.training.run_dir import ConfigError, differences
from keras_pyramid.tuning import distributed, hypermodel
from keras_pyramid.tuning import report as tuning_report
from keras_pyramid.utils.files import atomic_write_json, read_json

OBJECTIVE = "val_accuracy"  # of the final epoch, on the hold-out
MAX_HOLDOUT = 5000
# Settings that define a search: resuming with other values would mix two searches.
SEARCH_DEFINING = ("tuner", "dataset", "epochs", "steps_per_epoch", "validation_examples",
                   "validation_steps", "seed", "space")
TRIAL_RUN = "run"  # a trial's run directory, in KerasTuner's trial folder
RETRAIN_RUN = "retrain"
RETRAIN_FILE = "retrain.json"
TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
          "hyperband": kt.Hyperband}


class StoppedBySignal(kt.errors.FatalError):
    """A trial's run stopped on a signal (its checkpoint kept): KerasTuner
    lets a FatalError end the search with the trial still running, so the
    next search resumes it instead of recording it as failed."""

    def __init__(self, interrupted):
        super().__init__(str(interrupted))
        self.interrupted = interrupted


@dataclasses.dataclass
class SearchSettings:
    """Every knob of a search; `space` maps a hyperparameter to its spec
    (`hypermodel.search_space`: "48", "24:96", "drop,sepdrop")."""

    dataset: str = "cifar10"
    tuner: str = "random"  # one of TUNERS
    max_trials: int = 10  # random and bayesian; Hyperband sizes itself
    epochs: int = 10  # per trial (Hyperband: the most a trial gets)
    steps_per_epoch: int = None  # None: one pass over the training split
    validation_examples: int = None  # the hold-out; None: a tenth, at most MAX_HOLDOUT
    validation_steps: int = None  # limit each evaluation of the hold-out
    space: dict = dataclasses.field(default_factory=dict)
    data_dir: str = None
    download: bool = True
    seed: int = 0
    directory: str = "tuning_runs"
    project_name: str = None  # None: pyramidnet-DATASET
    overwrite: bool = False
    retrain_epochs: int = None  # None: the recipe's (300)
    verbose: int = 2

    @property
    def project_dir(self):
        name = self.project_name or f"pyramidnet-{data.parse_dataset(self.dataset).tag}"
        return os.path.join(self.directory, name)

    def recorded(self):
        """The defining settings as search.json holds them."""
        values = {key: getattr(self, key) for key in SEARCH_DEFINING}
        return {**values, "space": dict(sorted(self.space.items()))}


@dataclasses.dataclass
class SearchOutcome:
    """A finished search: its report rows (best first), the best COMPLETED
    trial's values (None on a worker) and whether the data has a test split."""

    project_dir: str
    rows: list
    best: dict
    has_test: bool
    holdout: int


def default_holdout(train_examples):
    """A tenth of the training split, at most MAX_HOLDOUT: CIFAR keeps the
    5,000 images it always had, and small data keeps most of its images."""
    return max(1, min(MAX_HOLDOUT, train_examples // 10))


def run_search(settings, print_function=print):
    """Runs (or resumes) the search; returns its `SearchOutcome`. Raises
    ConfigError or run_data.DataError before any trial, and
    `hypermodel.NoCompletedTrial` when no trial completed."""
    space = _space(settings)
    facts = _open_data(settings, space)
    settings = dataclasses.replace(settings, validation_examples=facts["holdout"])
    project_dir = settings.project_dir
    _check_or_record(settings, project_dir)
    keras.utils.set_random_seed(settings.seed)
    tuner = _tuner(settings, space, facts, print_function)
    if distributed.leads():  # a worker's oracle is a client of the chief's
        finished = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
        if finished:
            print_function(f"Resuming {project_dir}: {len(finished)} finished trials kept")
    try:
        tuner.search()
    except StoppedBySignal as stop:  # KerasTuner's way out; the run's own error goes on
        raise stop.interrupted from None
    if not distributed.leads():
        return SearchOutcome(project_dir, [], None, facts["has_test"], facts["holdout"])
    rows = tuning_report.trial_rows(tuner.oracle)
    print_function(tuning_report.format_table(rows, OBJECTIVE))
    best = hypermodel.best_hparams(tuner)  # NoCompletedTrial: a failed trial is never the best
    return SearchOutcome(project_dir, rows, best, facts["has_test"], facts["holdout"])


def _space(settings):
    """The search space with every hyperparameter declared (its default the papers')."""
    try:
        space = hypermodel.search_space(settings.space)
    except ValueError as error:
        raise ConfigError("space", str(error)) from None
    try:
        kind = data.parse_dataset(settings.dataset).kind
    except ValueError as error:
        raise ConfigError("dataset", str(error)) from None
    if kind == "npz":  # device-resident arrays hold no hold-out to score trials on
        raise ConfigError("dataset", f"a search reads tfds datasets and folders. Received: "
                                     f"dataset={settings.dataset!r}")
    if settings.tuner not in TUNERS:
        raise ConfigError("tuner", f"must be one of {tuple(TUNERS)}. Received: "
                                   f"tuner={settings.tuner!r}")
    _hypermodel(settings, classes=2).values(space)
    return space


def _hypermodel(settings, classes):
    """The hypermodel that declares the space (with the recipe's defaults)."""
    plan = recipe.paper_recipe(settings.dataset, epochs=settings.epochs)
    return hypermodel.PyramidHyperModel(classes=classes, recipe=plan, seed=settings.seed)


def _open_data(settings, space):
    """{classes, train, holdout, has_test}: the hold-out by its default rule,
    checked against the data, and the largest chosen batch against the rest."""
    config = _data_config(settings, validation=None)
    source, _ = run_data.open_data(config)
    available = len(source.parts["train"])
    holdout = settings.validation_examples or default_holdout(available)
    try:
        splits = data.split_source(source, holdout, settings.seed)
    except ValueError as error:
        raise ConfigError("validation_examples", str(error)) from None
    # The batch sizes the user chose (the defaults' too large on small data
    # fail their trial alone, as experiment.run refuses them).
    largest = max((max(getattr(hp, "values", None) or [hp.value]) for hp in space.space
                   if hp.name == "batch_size" and "batch_size" in settings.space), default=0)
    if largest > len(splits.train):
        raise ConfigError("space", f"`batch_size` {largest} exceeds the {len(splits.train):,} "
                                   f"training examples the hold-out of {holdout:,} leaves")
    return {"classes": source.num_classes, "train": len(splits.train), "holdout": holdout,
            "has_test": splits.test is not None}


def _data_config(settings, validation, **fields):
    return RunConfig(model=None, dataset=settings.dataset, data_dir=settings.data_dir,
                     download=settings.download, validation=validation, seed=settings.seed,
                     **fields)


def _check_or_record(settings, project_dir):
    """Refuses another program's folder, damaged search files and other
    defining settings than the recorded ones; records them (the chief)."""
    kind = run_layout.owner(project_dir)
    if kind in (run_layout.RUN, run_layout.COMPARISON):  # its records would be overwritten
        raise ConfigError("project_name", f"{project_dir} holds {kind}, not a search: choose "
                                          "another `directory` or `project_name`")
    others = os.listdir(project_dir) if os.path.isdir(project_dir) and kind is None else []
    if settings.overwrite and others:  # KerasTuner's overwrite deletes the whole folder
        raise ConfigError("overwrite", f"{project_dir} holds no search but other files "
                                       f"({run_layout.describe_entries(project_dir, others)}): "
                                       "`overwrite` would delete them; choose another "
                                       "`project_name`")
    path = os.path.join(project_dir, run_layout.SEARCH_FILE)
    if not settings.overwrite:
        check_readable(project_dir)
        if os.path.exists(path):
            changed = differences(read_json(path), settings.recorded(), SEARCH_DEFINING)
            if changed:
                raise ConfigError("project_name", f"{project_dir} holds a search with other "
                                                  f"settings ({changed}). Pass `overwrite` to "
                                                  "discard it or choose another `project_name`")
    if distributed.leads():
        try:
            os.makedirs(project_dir, exist_ok=True)
        except OSError as error:
            raise ConfigError("directory", f"{project_dir} cannot be created: "
                                           f"{error.strerror}") from None
        atomic_write_json(path, settings.recorded())


# The files a resumed search reads back (ours and KerasTuner's: glob patterns
# under the project directory), with how to recover from a damaged one.
START_AGAIN = "pass `overwrite` to start the search again"
READ_BACK = (
    (run_layout.SEARCH_FILE, f"{START_AGAIN}, or choose another `project_name`"),
    (run_layout.ORACLE_FILE, f"{START_AGAIN}, or choose another `project_name`"),
    ("tuner*.json", f"{START_AGAIN}, or choose another `project_name`"),
    ("trial_*/trial.json", f"delete its trial folder to run that trial again, or {START_AGAIN}"),
    (hypermodel.STARTS_PER_TRIAL,
     f"delete it (the trials' start counts begin again), or {START_AGAIN}"),
)


def check_readable(project_dir):
    """Refuses, in one line naming the file, to resume from a file that is
    not a JSON object (a crash or a full disk truncated it): KerasTuner and
    json would stop with a traceback."""
    for pattern, recovery in READ_BACK:
        for path in sorted(glob.glob(os.path.join(glob.escape(project_dir), pattern))):
            try:
                content = read_json(path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                problem = f"is not readable JSON ({error})"
            else:
                if isinstance(content, dict):
                    continue
                problem = f"holds a JSON {type(content).__name__}, not an object"
            raise ConfigError("project_name", f"{path} {problem}: the search cannot resume "
                                              f"from it; {recovery}")


def _tuner(settings, space, facts, print_function):
    """The KerasTuner tuner whose trials are runs (`trial_config`)."""
    declaring = _hypermodel(settings, facts["classes"])

    def run_trial(trial):
        values = declaring.values(trial.hyperparameters)
        epochs = trial.hyperparameters.values.get("tuner/epochs", settings.epochs)
        run_dir = os.path.join(settings.project_dir, f"trial_{trial.trial_id}", TRIAL_RUN)
        try:
            results = experiment.run(trial_config(settings, values, epochs), run_dir,
                                     print_function=print_function)
        except interrupts.Interrupted as stop:  # KerasTuner would record a failed trial
            raise StoppedBySignal(stop) from None
        return {OBJECTIVE: 1.0 - results["final_error"]}

    return make_tuner(settings, space, run_trial)


def make_tuner(settings, space, run_trial):
    """The settings' KerasTuner tuner over `space` (every hyperparameter
    declared), its trials `run_trial(trial) -> {OBJECTIVE: value}`, guarded
    against a trial that kills its process (`hypermodel.guarded`)."""
    tuner_class = hypermodel.guarded(distributed.trials_through(TUNERS[settings.tuner],
                                                                run_trial))
    size = ({"max_epochs": settings.epochs, "factor": 3} if settings.tuner == "hyperband"
            else {"max_trials": settings.max_trials})
    return tuner_class(hypermodel=None, objective=kt.Objective(OBJECTIVE, direction="max"),
                       hyperparameters=space, tune_new_entries=False,
                       directory=settings.directory,
                       project_name=os.path.basename(settings.project_dir),
                       overwrite=settings.overwrite, seed=settings.seed, **size)


def trial_config(settings, values, epochs):
    """The `RunConfig` of a trial with hyperparameter `values`: trained on
    the training split less the hold-out, scored on the hold-out alone."""
    return _data_config(
        settings, settings.validation_examples, use_test_split=False,
        architecture={k: values[k] for k in ("depth", "alpha", "regularization")},
        epochs=epochs, steps_per_epoch=settings.steps_per_epoch,
        eval_steps=settings.validation_steps, learning_rate=values["learning_rate"],
        batch_size=values["batch_size"], drop_rate=values["drop_rate"],
        new_drop_rate=values.get("new_drop_rate"), distribute="none", verbose=settings.verbose)


def retrain(settings, outcome, print_function=print):
    """The best configuration on the whole training split, in PROJECT/retrain
    (a run like train.py's); the test split evaluated once. A source without
    one trains without the hold-out and is evaluated on it. RETRAIN_FILE
    names the figures by what was evaluated: `test_error` or `holdout_error`."""
    best = outcome.best
    config = _data_config(
        settings, 0 if outcome.has_test else outcome.holdout,
        architecture={k: best[k] for k in ("depth", "alpha", "regularization")},
        epochs=settings.retrain_epochs, learning_rate=best["learning_rate"],
        batch_size=best["batch_size"], drop_rate=best["drop_rate"],
        new_drop_rate=best.get("new_drop_rate"), steps_per_epoch=settings.steps_per_epoch,
        verbose=settings.verbose, distribute="none")
    results = experiment.run(config, os.path.join(outcome.project_dir, RETRAIN_RUN),
                             print_function=print_function)
    evaluated = "test" if outcome.has_test else "holdout"
    result = {"hparams": best, "epochs": results["epochs"], "evaluated": evaluated,
              f"{evaluated}_error": results["final_error"],
              f"{evaluated}_loss": results["final_loss"],
              f"{evaluated}_examples": results["evaluated_examples"],
              "evaluation_split": results["evaluation_split"]}
    atomic_write_json(os.path.join(outcome.project_dir, RETRAIN_FILE), result)
    return result
