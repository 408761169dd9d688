"""KerasTuner search over PyramidNet's widening and stochastic-depth settings.

    hypermodel = PyramidHyperModel(classes=10, recipe=paper_recipe("cifar10", epochs=10))
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=20)
    tuner.search(train_fn, validation_data=validation_fn, epochs=10)

The search space (every hyperparameter has a default, the papers' setting):

    depth           choice  20, 32, 44, 56, 110 (basic units, 6n + 2)   110
    alpha           int     12 .. 300, step 6 (additive widening)       48
    regularization  choice  none, drop, sepdrop, shakedrop               sepdrop
    drop_rate       float   0 .. 0.9, step 0.05: the LAST unit's rate;  0.5
                            unit l of L gets l / L * drop_rate (unused with none)
    new_drop_rate   float   0 .. 0.9, step 0.05: sepdrop's rate for     tied to drop_rate
                            the new channels; searched only when the
                            space declares it (`--hp new_drop_rate=0:0.9`)
    learning_rate   float   0.01 .. 1, log scale                        the recipe's
    batch_size      choice  64, 128, 256                                 the recipe's

Any of them can be fixed or narrowed before the search (`search_space`), and
the best values go to a JSON file that `applications/train.py --hparams`
reads (`best_hparams`).
"""

import dataclasses
import os

import keras
import keras_tuner as kt

from keras_pyramid.models.hparams import (
    HPARAM_NAMES,
    OPTIONAL_DEFAULTS,
    REGULARIZATIONS,
    build_model,
    effective,
    parse_value,
)
from keras_pyramid.training import recipe as recipes
from keras_pyramid.utils.files import atomic_write_json, read_json_or

TUNERS = ("random", "bayesian", "hyperband")  # KerasTuner's: RandomSearch, ...
DEPTHS = (20, 32, 44, 56, 110)
BATCH_SIZES = (64, 128, 256)
ALPHA_RANGE = (12, 300, 6)
DROP_RATE_RANGE = (0.0, 0.9, 0.05)
LEARNING_RATE_RANGE = (0.01, 1.0)


class PyramidHyperModel(kt.HyperModel):
    """PyramidNet on CIFAR-sized images, compiled with the papers' recipe.

    Args:
        classes: number of classes.
        input_shape: image shape in Keras' image data format; None: 32x32 RGB.
        recipe: a `Recipe` (epochs per trial, weight decay, default learning
            rate and batch size); the paper's CIFAR-10 recipe by default.
        train_examples: training images per epoch, which sets the learning
            rate milestones in steps; ignored with `steps_per_epoch`.
        steps_per_epoch: a fixed number of steps per epoch (short trials).
        seed: the model's seed (initial weights aside, which follow Keras'
            global seed: set it with `keras.utils.set_random_seed`).
    """

    def __init__(self, classes=10, input_shape=None, recipe=None,
                 train_examples=45_000, steps_per_epoch=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.input_shape = input_shape
        self.recipe = recipe or recipes.paper_recipe("cifar10")
        self.train_examples = train_examples
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed

    def values(self, hp):
        """Declares every hyperparameter (with its default) and returns the
        values of this trial."""
        batch_sizes = sorted({*BATCH_SIZES, self.recipe.batch_size})
        return effective({
            "depth": hp.Choice("depth", DEPTHS, default=110),
            "alpha": hp.Int("alpha", *ALPHA_RANGE[:2], step=ALPHA_RANGE[2], default=48),
            "regularization": hp.Choice("regularization", REGULARIZATIONS, default="sepdrop"),
            "drop_rate": hp.Float("drop_rate", *DROP_RATE_RANGE[:2], step=DROP_RATE_RANGE[2],
                                  default=0.5),
            # Tied to drop_rate (the paper) unless the search space frees it.
            "new_drop_rate": hp.get("new_drop_rate") if "new_drop_rate" in hp else None,
            "learning_rate": hp.Float("learning_rate", *LEARNING_RATE_RANGE, sampling="log",
                                      default=self.recipe.learning_rate),
            "batch_size": hp.Choice("batch_size", batch_sizes, default=self.recipe.batch_size),
        })

    def steps(self, batch_size):
        return self.steps_per_epoch or max(1, self.train_examples // batch_size)

    def build(self, hp):
        values = self.values(hp)
        model = build_model(values, classes=self.classes, input_shape=self.input_shape,
                            weight_decay=self.recipe.weight_decay, seed=self.seed)
        plan = dataclasses.replace(self.recipe, learning_rate=values["learning_rate"],
                                   batch_size=values["batch_size"])
        model.compile(
            optimizer=recipes.make_optimizer(plan, self.steps(plan.batch_size)),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, x=None, validation_data=None, **kwargs):
        """`x` and `validation_data` may be functions of the batch size that
        return batched datasets: the batch size is a hyperparameter."""
        batch_size = hp.get("batch_size")
        if callable(x):
            x = x(batch_size)
        if callable(validation_data):
            validation_data = validation_data(batch_size)
        kwargs.setdefault("steps_per_epoch", self.steps(batch_size))
        kwargs.setdefault("shuffle", False)  # the datasets are shuffled, by seed, already
        history = model.fit(x, validation_data=validation_data, **kwargs)
        # The FINAL epoch's metrics: given a History, KerasTuner would score
        # the trial by its best epoch.
        return {name: float(values[-1]) for name, values in history.history.items()}


def search_space(overrides):
    """A `kt.HyperParameters` that fixes or narrows some hyperparameters.

    `overrides` maps a name to a spec string: `"48"` fixes it, `"24:96"`
    narrows a numeric one to a range (the default step; learning_rate stays
    log-scaled), `"drop,sepdrop"` or `"20,56"` restricts it to choices.
    Unknown names and bad values raise ValueError naming them.
    """
    hp = kt.HyperParameters()
    for name, spec in overrides.items():
        if name not in HPARAM_NAMES:
            raise ValueError(f"unknown hyperparameter {name!r}; tunable: {', '.join(HPARAM_NAMES)}")
        spec = str(spec).strip()
        if ":" in spec:
            if name not in ("alpha", "drop_rate", "new_drop_rate", "learning_rate"):
                raise ValueError(f"hyperparameter {name!r} takes a value or a comma list, "
                                 f"not a range. Received: {name}={spec!r}")
            low, high = (parse_value(name, part) for part in spec.split(":", 1))
            if not low < high:
                raise ValueError(f"the range of {name!r} must be LOW:HIGH with LOW < HIGH. "
                                 f"Received: {name}={spec!r}")
            if name == "alpha":
                hp.Int(name, low, high, step=ALPHA_RANGE[2])
            elif name in ("drop_rate", "new_drop_rate"):
                hp.Float(name, low, high, step=DROP_RATE_RANGE[2])
            else:
                hp.Float(name, low, high, sampling="log")
        elif "," in spec:
            choices = sorted({parse_value(name, part) for part in spec.split(",")},
                             key=lambda v: (isinstance(v, str), v))
            hp.Choice(name, choices)
        else:
            hp.Fixed(name, parse_value(name, spec))
    return hp


class NoCompletedTrial(RuntimeError):
    """A search none of whose trials completed: it has no best."""


def best_hparams(tuner):
    """The best COMPLETED trial's values, in the `--hparams` file format;
    NoCompletedTrial, with the last failed trial's reason, when none
    completed (KerasTuner would answer a failed trial's values)."""
    trials = list(tuner.oracle.trials.values())
    if not any(trial.status == kt.engine.trial.TrialStatus.COMPLETED for trial in trials):
        reasons = [trial.message.strip().splitlines()[-1] for trial in trials
                   if trial.message and trial.message.strip()]
        raise NoCompletedTrial(f"none of the {len(trials)} trials completed, so there is no "
                               f"best" + (f": the last failed with {reasons[-1]}"
                                          if reasons else ""))
    best = tuner.oracle.get_best_trials(1)[0].hyperparameters  # completed trials come first
    return effective({name: best.get(name) if name in best else OPTIONAL_DEFAULTS[name]
                      for name in HPARAM_NAMES})


STARTS_PER_TRIAL = "starts_per_trial.json"


class KilledTrialGuard:
    """A KerasTuner tuner mixin: a trial that kills its process runs twice at most.

    KerasTuner reloads a trial that was running when its process died (a
    segfault, the OOM killer, SIGKILL) and runs it again, on every restart:
    a trial that always kills its process would do so forever. This mixin
    counts each trial's starts in `PROJECT_DIR/starts_per_trial.json` (written
    atomically before the trial runs). A trial already started twice is
    recorded as failed (`FailedTrialError`, KerasTuner's own way to fail a
    trial) and the search goes on with the next one: the killed trial is
    retried once, never in a loop.
    """

    max_starts = 2

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        path = os.path.join(self.project_dir, STARTS_PER_TRIAL)
        starts = read_json_or(path, {})
        previous = starts.get(trial.trial_id, 0)
        if previous >= self.max_starts:
            raise kt.errors.FailedTrialError(
                f"trial {trial.trial_id} killed its process {previous} times (a crash, the "
                "out-of-memory killer or SIGKILL): recorded as failed")
        if previous:
            print(f"Trial {trial.trial_id} did not finish (its process was killed): "
                  "running it once more")
        starts[trial.trial_id] = previous + 1
        atomic_write_json(path, starts)
        try:
            return super().run_trial(trial, *fit_args, **fit_kwargs)
        except kt.errors.FatalError:
            # Stopped on purpose (a signal), not killed: this start does not count.
            starts[trial.trial_id] = previous
            atomic_write_json(path, starts)
            raise


def guarded(tuner_class):
    """`tuner_class` (e.g. `kt.RandomSearch`) with `KilledTrialGuard`."""
    return type(tuner_class.__name__, (KilledTrialGuard, tuner_class), {})
