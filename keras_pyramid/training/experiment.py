"""One training run: every knob in a `RunConfig`, and `run(config, run_dir) -> results`.

    config = RunConfig(model="pyramidnet110_a48_sepdrop", dataset="folder:photos",
                       weights="cifar10", recipe="finetune", freeze_backbone_epochs=2)
    results = run(config, "runs/photos")

`applications/train.py`, a search's `--retrain` and fine-tuning all come
here, so each gets the same data layer, data-parallel plan, skipping,
checkpoints, exact resume and run directory (its files: `run_dir.py`).
`run` reads top to bottom as its stages: check, placement, data, recipe,
run directory, model, fit, results. results.json holds the FINAL epoch's
figures (never the best epoch's); the test split, when the source has
one, is evaluated there and only there.

Errors in the config raise `ConfigError`, whose `argument` names the
RunConfig field (programs turn it into their flag).
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np

import keras_pyramid
from keras_pyramid import applications, data
from keras_pyramid.data import resident
from keras_pyramid.models import hparams, skipping
from keras_pyramid.models.pyramidnet import VARIANTS, minimum_input_size
from keras_pyramid.training import (
    device,
    distribution,
    drop_schedule,
    finetune,
    fit,
    foreign,
    recipe,
)
from keras_pyramid.training.run_dir import (
    DATA_FILE,
    RESULTS_FILE,
    ConfigError,
    Run,
    RunLock,
    check_folder,
    forget_untrained,
    has_checkpoint,
    load_run,
    prepare_run_dir,
    refuse_other_run,
)
from keras_pyramid.utils import checks
from keras_pyramid.utils.files import atomic_write_json
from keras_pyramid.utils.versions import versions

PAPER_STATISTICS_DATASETS = ("cifar10", "cifar100")  # the model's default statistics are theirs
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}
SKIP_DROPPED = {"auto": None, "on": True, "off": False}
# The largest image side a run takes: a batch of 64 float32 images of
# 4096x4096x3 is 12 GiB before the first convolution.
MAX_IMAGE_SIDE = 4096


class DataError(RuntimeError):
    """The data cannot be read (not prepared, no network): nothing to fix in the config."""


@dataclasses.dataclass
class RunConfig:
    """Every knob of a run. None means "the recipe's (or the data's) default"."""

    model: str = "pyramidnet110_a48_sepdrop"  # a registered name, keras:NAME[@TAG] or a .keras
    architecture: dict = None  # or {depth, alpha, regularization} from a search
    dataset: str = "cifar10"  # keras_pyramid.data.spec's grammar (tfds, folder or npz)
    data_dir: str = None  # tfds data dir
    download: bool = True
    image_size: tuple = None  # (height, width); None: the data's own, else the variant's
    augment: str = None  # cifar | imagenet | none; None: by image size
    flip: bool = True  # the augmentation's random horizontal flip
    validation: object = None  # hold-out fraction or count; None: 0.1 without a test split
    split_seed: int = None  # draws the hold-out and train_examples; None: the seed's
    train_examples: int = None  # a stratified subset of the training split; None: all of it
    label_noise: float = 0.0  # training labels replaced by another class with this probability
    skip_bad_images: bool = False
    weights: str = None  # fine-tune from: a preset tag, .keras, .weights.h5, a run directory
    freeze_backbone_epochs: int = None  # head alone first (BatchNorm frozen); None: the recipe's
    recipe: str = "paper"  # paper | finetune (keras_pyramid/training/recipe.py)
    epochs: int = None
    batch_size: int = None
    learning_rate: float = None
    weight_decay: float = None
    drop_rate: float = None  # the last unit's; None: the model's (0.5)
    new_drop_rate: float = None  # sepdrop's gate on the new channels; None: tied
    drop_rate_schedule: str = "constant"
    seed: int = 0
    steps_per_epoch: int = None  # None: one pass over the training data
    eval_steps: int = None  # limit each evaluation (smoke runs)
    mixed_precision: str = "auto"
    jit_compile: str = "auto"
    skip_dropped: str = "auto"
    distribute: str = "auto"
    sync_batch_norm: bool = False
    checkpoint_epochs: int = 1
    checkpoint_steps: int = None
    checkpoint_minutes: float = fit.CHECKPOINT_SECONDS / 60  # of training; 0: not by time
    verbose: int = 1

    def recorded(self):
        """The config as args.json holds it (JSON types)."""
        values = dataclasses.asdict(self)
        if values["image_size"] is not None:
            values["image_size"] = list(values["image_size"])
        return values

    @property
    def model_name(self):
        """The model's name in a directory name: keras-NAME for keras:NAME, a
        .keras file's stem."""
        if self.architecture is not None:
            return hparams.model_name(self.architecture)
        kind = self.model_kind
        if kind == "keras":
            return self.model.replace(":", "-").replace("@", "-")
        if kind == "file":
            return os.path.basename(self.model).removesuffix(foreign.KERAS_FILE_SUFFIX)
        return self.model

    @property
    def model_kind(self):
        """"registered" (ours, by name or by `architecture`), "keras"
        (keras:NAME) or "file" (a .keras classifier): training.foreign's kinds."""
        return "registered" if self.architecture is not None else foreign.kind_of(self.model)

    @property
    def data_split_seed(self):
        """The seed that draws the hold-out and the training subset."""
        return self.seed if self.split_seed is None else self.split_seed


def default_run_dir(config):
    """runs/MODEL-DATA, DATA the dataset's short name (a folder's basename)."""
    try:
        tag = data.parse_dataset(config.dataset).tag
    except ValueError as error:
        raise ConfigError("dataset", str(error)) from None
    return os.path.join("runs", f"{config.model_name}-{tag}")


# ---------------------------------------------------------------- the run, stage by stage


def run(config, run_dir, restart=False, print_function=print):
    """Trains (or resumes) the configured run in `run_dir`; returns results.json's dict.

    A finished run (results.json present) made with the same run-defining
    values is returned as it is; with other values it is refused, listing
    them. One process at a time: a run directory in use is refused.
    """
    # check: every value, before anything is read or written
    variant = check(config)
    # placement: the data-parallel plan, before any op runs
    spread = placement(config)
    config = resolved(config)
    # the folder: another program's, a file, or the user's own files to restart in
    check_folder(run_dir, restart)
    # --restart discards the run's files, corrupt records included: nothing to read.
    found = Run(run_dir) if restart else load_run(run_dir)
    if not restart and found.args is not None:
        refuse_other_run(found, config.recorded())
        if found.finished:
            return {**found.results, "already_finished": True}
    measured_with = {**versions(), "backend": keras.backend.backend()}
    print_function(f"keras-pyramid {keras_pyramid.__version__}, " +
                   ", ".join(f"{k} {v}" for k, v in measured_with.items()))
    # data: any kind of dataset; a resumed run keeps its split and statistics
    run_data = open_run_data(config, variant, None if restart else found.data)
    # recipe: the defaults with the config's overrides, fitted to the data
    plan = run_recipe(config, run_data, spread, print_function)
    with RunLock(run_dir) as lock:
        # run directory: refuses another run's; then the process-global state
        prepare_run_dir(config.recorded(), run_dir, restart)
        if found.args is not None and not restart and not has_checkpoint(run_dir):
            print_function(f"{run_dir} holds no checkpoint of this run (it stopped before its "
                           "first): starting it over from the first step")
        atomic_write_json(os.path.join(run_dir, DATA_FILE), run_data.record)
        set_process_state(config)
        return _build_and_train(config, run_data, plan, spread, run_dir, lock,
                                {**measured_with}, print_function)


def _build_and_train(config, run_data, plan, spread, run_dir, lock, measured_with,
                     print_function):
    # model: built and compiled in the plan's scope
    steps_per_epoch = config.steps_per_epoch or run_data.train_examples // plan.batch_size
    streams = run_data.streams(plan.batch_size, spread, config)
    network = build_network(config, run_data, plan, spread, steps_per_epoch, run_dir, lock)
    if not run_data.resident:
        spread.prepare(network.model, lambda: streams.train(0))
    print_function(describe(config, network, run_data, plan, spread, steps_per_epoch))
    # fit: resumes from the last checkpoint, then the final evaluation
    history, final = train(config, network, streams, plan, steps_per_epoch, run_dir, spread,
                           print_function)
    # results: the final epoch's model and figures
    results = {**results_of(config, network, run_data, plan, spread, streams, history, final,
                            steps_per_epoch), "versions": measured_with}
    with fit.reporting_full_disk(run_dir):
        fit.save_model(network.model, run_dir)
        atomic_write_json(os.path.join(run_dir, RESULTS_FILE), results)
    return results


# ---------------------------------------------------------------- check


def _checked(argument, check_function, *arguments, **keywords):
    """`check_function(argument, ...)` (utils.checks), its ValueError as a ConfigError."""
    try:
        return check_function(argument, *arguments, **keywords)
    except ValueError as error:
        raise ConfigError(argument, str(error)) from None


def _preset(config):
    """(regularization, variant) of the configured model; variant None for a
    keras.applications builder or a .keras file (training.foreign)."""
    if config.architecture is not None:
        return config.architecture["regularization"], "cifar"
    if config.model_kind != "registered":
        _check_foreign(config)
        return "none", None
    try:
        applications.check_model_name(config.model)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
    preset = applications.PRESETS[config.model]
    return preset["regularization"] or "none", preset["variant"]


def check(config):
    """Refuses inconsistent values before anything is read or written; returns
    the model's variant."""
    regularization, variant = _preset(config)
    if config.new_drop_rate is not None and regularization != "sepdrop":
        raise ConfigError("new_drop_rate", f"needs a sepdrop model; {config.model} has "
                                           f"regularization {regularization}. Received: "
                                           f"new_drop_rate={config.new_drop_rate}")
    for rate in ("drop_rate", "new_drop_rate"):
        if getattr(config, rate) is not None:
            _checked(rate, checks.check_rate, getattr(config, rate))
    _checked("label_noise", checks.check_rate, config.label_noise)
    if config.split_seed is not None:
        _checked("split_seed", checks.check_int, config.split_seed, minimum=0)
    if config.train_examples is not None:
        _checked("train_examples", checks.check_int, config.train_examples, minimum=1)
    if config.image_size is not None:
        if len(tuple(config.image_size)) != 2:
            raise ConfigError("image_size", f"must be (height, width). Received: "
                                            f"image_size={config.image_size!r}")
        for side in config.image_size:
            _checked("image_size", checks.check_int, side, minimum=1, maximum=MAX_IMAGE_SIDE)
    if config.augment is not None:
        _checked("augment", checks.check_choice, config.augment, data.REGIMES)
    _checked("recipe", checks.check_choice, config.recipe, recipe.RECIPES)
    _checked("mixed_precision", checks.check_choice, config.mixed_precision,
             device.MIXED_PRECISION)
    _checked("jit_compile", checks.check_choice, config.jit_compile, tuple(JIT_COMPILE))
    _checked("skip_dropped", checks.check_choice, config.skip_dropped, tuple(SKIP_DROPPED))
    for count in ("epochs", "batch_size"):
        if getattr(config, count) is not None:
            _checked(count, checks.check_int, getattr(config, count), minimum=1)
    if config.learning_rate is not None:
        _checked("learning_rate", checks.check_number, config.learning_rate, positive=True)
    if config.weight_decay is not None:
        _checked("weight_decay", checks.check_number, config.weight_decay, minimum=0)
    if config.freeze_backbone_epochs and config.weights is None:
        raise ConfigError("freeze_backbone_epochs", "freezes a trained backbone: give weights "
                                                    "to fine-tune from")
    if config.dataset.startswith("npz:"):
        _check_npz(config)
    return variant


def _check_foreign(config):
    """A keras:NAME builder Keras has, or a .keras image classifier; neither
    takes our regularizers' rates or a weights source of ours."""
    try:
        if foreign.kind_of(config.model) == "keras":
            foreign.parse_keras_name(config.model)
        else:
            foreign.load_classifier_file(config.model)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
    for field in ("drop_rate", "new_drop_rate", "weights"):
        if getattr(config, field) is not None:
            raise ConfigError(field, f"{config.model} is not one of our models: it takes none "
                                     f"(keras:NAME@imagenet names ImageNet weights; a .keras "
                                     f"file is its own). Received: {getattr(config, field)!r}")
    if config.dataset.startswith("npz:"):
        raise ConfigError("model", f"npz datasets train our registered models only. Received: "
                                   f"model={config.model!r}")


# What an npz dataset does in place of each setting it refuses.
NPZ_FIXED = {"weights": "trains from scratch", "image_size": "keeps its arrays' size",
             "augment": "always trains with the CIFAR augmentation (pad 4, crop, flip)",
             "validation": "holds nothing out: its test arrays are the final evaluation"}


def _check_npz(config):
    """Device-resident arrays take no weights, resizing, augmentation choice,
    hold-out or label noise."""
    for field, fixed in NPZ_FIXED.items():
        if getattr(config, field) not in (None, 0):
            raise ConfigError(field, f"an npz dataset (device-resident CIFAR-size arrays) "
                                     f"{fixed}: leave this setting out. Received: "
                                     f"{field}={getattr(config, field)!r}")
    if config.label_noise:
        raise ConfigError("label_noise", "an npz dataset (device-resident CIFAR-size arrays) "
                                         "keeps its labels: leave this setting out. Received: "
                                         f"label_noise={config.label_noise!r}")
    if not config.flip:
        raise ConfigError("flip", "an npz dataset (device-resident CIFAR-size arrays) always "
                                  "trains with the CIFAR augmentation, flip included")


# ---------------------------------------------------------------- placement


def placement(config):
    """The data-parallel plan. First of all: TensorFlow's multi-worker
    strategy must exist before any op runs."""
    try:
        spread = distribution.data_parallel(config.distribute)
        spread.check_batch_size(config.batch_size or 1)
    except distribution.DistributionError as error:
        raise ConfigError("distribute", str(error)) from None
    if config.dataset.startswith("npz:") and spread.replicas > 1:
        raise ConfigError("distribute", "npz datasets train on one device; use none")
    return spread


def resolved(config):
    """The config with "auto" mixed precision resolved for this machine:
    recorded so, a resumed run computes as it began."""
    return dataclasses.replace(
        config, mixed_precision=device.resolve_mixed_precision(config.mixed_precision))


def set_process_state(config):
    """The process-global state a run sets, all of it: Keras' global seed
    (initial weights, Python's and NumPy's generators) and, with mixed
    precision, the global dtype policy every layer built after it takes."""
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{config.mixed_precision}")


# ---------------------------------------------------------------- data


@dataclasses.dataclass
class RunData:
    """The opened data of a run, whatever its kind: what the model and the
    recipe need to know, data.json's `record`, and `streams(batch_size,
    spread, config) -> Streams`."""

    class_names: tuple
    train_examples: int
    image_size: tuple
    record: dict
    streams: object
    resident: bool = False

    @property
    def recipe_dataset(self):
        """The dataset name the paper recipe's learning rate is chosen by."""
        source = self.record["source"]
        if source in PAPER_STATISTICS_DATASETS:
            return source
        return "cifar100" if self.resident and len(self.class_names) > 10 else "other"


@dataclasses.dataclass
class Streams:
    """`train(start_step)`: the training stream from a global step on (a
    resumed run gets the batches it would have got); the per-epoch and the
    final evaluation data."""

    train: object
    evaluation: object
    final: object
    evaluation_steps: int
    final_examples: int


def open_data(config, record=None):
    """(source, splits) of a tfds or folder config; `record` (a run's
    data.json) fixes the split it had. Raises ConfigError or DataError."""
    try:
        source = data.open_source(config.dataset, config.data_dir, config.download,
                                  config.skip_bad_images)
    except data.DataNotFoundError as error:
        raise DataError(str(error)) from None
    except ValueError as error:
        raise ConfigError("dataset", str(error)) from None
    if record is not None and list(source.class_names) != record["class_names"]:
        raise ConfigError("dataset", f"{config.dataset} now has classes "
                                     f"{list(source.class_names)}, the run had "
                                     f"{record['class_names']}")
    try:
        splits = data.split_source(source, config.validation, config.data_split_seed)
    except ValueError as error:
        raise ConfigError("validation", str(error)) from None
    splits = dataclasses.replace(splits, train=data.stratified_subset(
        splits.train, config.train_examples, config.data_split_seed))
    if record is not None and len(splits.train) != record["split"]["train"]:
        raise ConfigError("dataset", f"{config.dataset} now has {len(splits.train)} training "
                                     f"examples, the run had {record['split']['train']}")
    return source, splits


def open_run_data(config, variant, previous=None):
    """The `RunData` of any dataset kind: arrays kept on the device (npz) or
    a tfds/folder source streamed through tf.data. `previous`: the run's
    data.json when resuming (its split and statistics hold)."""
    if config.dataset.startswith("npz:"):
        return _resident_data(config, variant)
    return _streamed_data(config, variant, previous)


def _resident_data(config, variant):
    try:
        x_train, y_train, x_test, y_test, names = resident.load_npz(config.dataset[4:])
    except (OSError, ValueError) as error:
        raise ConfigError("dataset", str(error)) from None  # it names the file
    image_size = tuple(x_train.shape[1:3])
    check_image_size(config, image_size, variant)

    def streams(batch_size, spread, config):
        data_format = keras.config.image_data_format()
        train = resident.ResidentData(x_train, y_train, batch_size, config.seed, data_format)
        test = resident.ResidentData(x_test, y_test, batch_size, config.seed, data_format)
        return Streams(train.training_stream, None, test.evaluation_stream(),
                       min(config.eval_steps or test.evaluation_steps, test.evaluation_steps),
                       len(x_test))  # the evaluation: one pass at most

    record = {"source": config.dataset, "class_names": list(names),
              "image_size": list(image_size), "augment": "cifar",
              "split": {"train": len(x_train), "validation": None, "test": len(x_test),
                        "final_evaluation": "x_test"},
              "statistics": {"mean": None, "std": None, "from": "the model's default"},
              "label_noise": None, "skipped_files": 0, "skipped_folders": []}
    return RunData(names, len(x_train), image_size, record, streams, resident=True)


def _streamed_data(config, variant, previous):
    source, splits = open_data(config, previous)
    image_size = image_size_of(config, source, variant)
    check_image_size(config, image_size, variant)  # before Preprocessing sees it
    preprocessing = data.Preprocessing(image_size,
                                       config.augment or data.default_regime(image_size),
                                       flip=config.flip)
    splits, noise = _with_label_noise(config, source, splits)
    statistics = (previous["statistics"] if previous is not None
                  else _statistics(config, source, splits, preprocessing))

    def streams(batch_size, spread, config):
        data_format = keras.config.image_data_format()

        def train(start_step):
            return spread.shard(data.training_stream(
                source, splits.train, preprocessing, batch_size, config.seed, data_format,
                start_step))

        def held_out(subset):
            return None if subset is None else spread.shard(data.evaluation_stream(
                source, subset, preprocessing, batch_size, data_format,
                full_batches=spread.processes > 1))

        return Streams(train, held_out(splits.validation), held_out(splits.final),
                       config.eval_steps, len(splits.final))

    record = data_record(config, source, splits, preprocessing, statistics, noise)
    return RunData(source.class_names, len(splits.train), image_size, record, streams)


def _with_label_noise(config, source, splits):
    """(splits, data.json's label_noise) with the training labels made noisy."""
    if not config.label_noise:
        return splits, None
    train, changed = data.with_label_noise(splits.train, config.label_noise,
                                           source.num_classes, config.seed)
    noise = {"rate": config.label_noise, "seed": config.seed, "changed": int(changed.sum()),
             "examples": len(changed), "changed_fraction": float(changed.mean()),
             "applies_to": "training labels only"}
    return dataclasses.replace(splits, train=train), noise


def image_size_of(config, source, variant):
    """The configured size, else the data's, else the model's: a .keras
    file's own, ImageNet's 224 for keras:NAME, the variant's design size."""
    if config.image_size is not None:
        return tuple(config.image_size)
    if source.image_size is not None:
        return tuple(source.image_size)
    if variant is None:
        taken = (foreign.input_size_of_file(config.model)
                 if config.model_kind == "file" else (None, None))
        return tuple(side or 224 for side in taken)
    size = VARIANTS[variant].design_size
    return size, size


def check_image_size(config, image_size, variant):
    """The network's stem must be able to reduce the input (any size from its
    variant's minimum on: odd sizes too, the shortcuts pool in ceil mode); a
    model from elsewhere is built on it to see."""
    if variant is None:
        try:
            foreign.build(config.model, _input_shape(image_size), classes=2, mean=(0,) * 3,
                          std=(1,) * 3)
        except ValueError as error:
            raise ConfigError("image_size", f"{error}. Received: "
                                            f"image_size={tuple(image_size)}") from None
        return
    minimum = minimum_input_size(variant)
    if any(side < minimum for side in image_size):
        raise ConfigError("image_size", f"{image_size[0]}x{image_size[1]} cannot enter "
                                        f"{config.model_name}: its height and width must be "
                                        f">= {minimum}. Received: "
                                        f"image_size={tuple(image_size)}")


def data_record(config, source, splits, preprocessing, statistics, noise):
    """data.json: what an evaluation or an export of the run needs to know."""
    def size(subset):
        return None if subset is None else len(subset)

    def description(subset):
        return None if subset is None else subset.description

    return {
        "source": source.spec,
        "data_dir": config.data_dir,
        "class_names": list(source.class_names),
        "image_size": list(preprocessing.image_size),
        "augment": preprocessing.augment,
        "flip": preprocessing.flip,
        "split": {"train": len(splits.train), "validation": size(splits.validation),
                  "test": size(splits.test), "validation_rule": config.validation,
                  "seed": config.data_split_seed, "train_examples": config.train_examples,
                  "train_from": splits.train.description,
                  "validation_from": description(splits.validation),
                  "final_evaluation": description(splits.final)},
        "statistics": statistics,
        "label_noise": noise,
        "skipped_files": source.skipped_files,
        "skipped_folders": list(source.skipped_folders),
        "given_sides": None if source.given_sides is None else list(source.given_sides),
    }


def resizing_note(given_sides, image_size):
    """"images given at 25 to 48 px a side, resized to 32x32", or "" when the
    images were given at the size trained on (or their size is unknown)."""
    if not given_sides or set(given_sides) == set(image_size):
        return ""
    low, high = given_sides
    given = f"{low} px" if low == high else f"{low} to {high} px"
    return f"images given at {given} a side, resized to {image_size[0]}x{image_size[1]}"


def _statistics(config, source, splits, preprocessing):
    """The input normalization: the weights' own when fine-tuning, the
    papers' for CIFAR, else per-channel statistics of the training split
    (computed once: a resumed run reads them back from data.json)."""
    kind = config.model_kind
    if kind == "file" or kind == "keras" and "@" in config.model:
        return {"mean": None, "std": None, "from": "the model's own preprocessing"}
    if config.weights is not None:
        try:
            mean, std = finetune.weights_statistics(
                None if config.architecture else config.model, config.weights)
        except ValueError as error:
            raise ConfigError("weights", str(error)) from None
        return {"mean": mean, "std": std, "from": f"the weights ({config.weights})"}
    if source.spec in PAPER_STATISTICS_DATASETS:
        return {"mean": None, "std": None, "from": "the model's default (the papers' CIFAR "
                                                   "statistics)"}
    mean, std, count = data.channel_statistics(source, splits.train, preprocessing,
                                               config.seed)
    return {"mean": mean, "std": std, "from": f"{count} training images"}


# ---------------------------------------------------------------- recipe


def run_recipe(config, run_data, spread, print_function=print):
    """The recipe with the config's overrides (checked in `check`), fitted to
    the data: on a small training split the batch shrinks (`recipe.fitted_to_data`)."""
    try:
        plan = recipe.recipe_named(config.recipe, run_data.recipe_dataset,
                                   epochs=config.epochs, batch_size=config.batch_size,
                                   learning_rate=config.learning_rate,
                                   weight_decay=config.weight_decay)
    except ValueError as error:
        raise ConfigError("recipe", str(error)) from None
    plan, note = recipe.fitted_to_data(plan, run_data.train_examples,
                                       keep_batch_size=config.batch_size is not None,
                                       keep_learning_rate=config.learning_rate is not None)
    if note:
        print_function(note)
    if plan.batch_size > run_data.train_examples:
        # The user's batch size is theirs to change; else a hold-out that
        # left too few training examples is (the recipe's batch already shrank).
        blamed = ("validation" if config.batch_size is None and config.validation
                  else "batch_size")
        left = (f" that validation={config.validation!r} leaves"
                if blamed == "validation" else "")
        raise ConfigError(blamed, f"the batch of {plan.batch_size} exceeds the "
                                  f"{run_data.train_examples:,} training examples{left}. "
                                  f"Received: {blamed}={getattr(config, blamed)!r}")
    try:
        spread.check_batch_size(plan.batch_size)
    except distribution.DistributionError as error:
        raise ConfigError("distribute", str(error)) from None
    return plan


def head_only_epochs(config, plan):
    """The first epochs that train the new head alone: the flag's, else the
    recipe's share (none for the paper's; fine-tuning's only with weights)."""
    if config.weights is None:
        return 0
    if config.freeze_backbone_epochs is not None:
        return min(config.freeze_backbone_epochs, plan.epochs)
    return plan.frozen_epochs()


# ---------------------------------------------------------------- model


@dataclasses.dataclass
class Network:
    """The model (saved at the end), the trainer (the model, behind the
    device-resident augmentation for npz data), how to compile the trainer,
    its optimizer, the fine-tuning source's head (or None) and whether
    dropped branches are skipped."""

    model: object
    trainer: object
    compile: object
    optimizer: object
    loaded: dict
    skip_dropped: bool


def skip_dropped_of(config, spread):
    if config.model_kind != "registered":
        return False  # no branch of theirs is ever dropped
    skip_dropped = SKIP_DROPPED[config.skip_dropped]
    if skip_dropped is None:
        return skipping.skip_by_default(JIT_COMPILE[config.jit_compile], spread.replicas)
    if skip_dropped and spread.replicas > 1:
        raise ConfigError("skip_dropped", f"on is not supported with data-parallel training "
                                          f"({spread.engine}); use auto or off")
    return skip_dropped


def build_network(config, run_data, plan, spread, steps_per_epoch, run_dir, lock=None):
    """The compiled `Network`, built in the plan's scope."""
    skip_dropped = skip_dropped_of(config, spread)
    input_shape = _input_shape(run_data.image_size)
    with spread.scope():
        try:
            model, loaded = build_model(config, len(run_data.class_names), input_shape,
                                        run_data.record["statistics"], skip_dropped,
                                        plan.weight_decay)
        except ConfigError:
            forget_untrained(run_dir, lock)
            raise
        if config.sync_batch_norm and spread.strategy is not None:
            model = distribution.synchronized_batch_norm(model)
        distribution.check_gates(model, spread)
        # The .npz path augments on the device, in the step; model.keras stays the bare model.
        trainer = (resident.with_augmentation(model, config.seed) if run_data.resident
                   else model)
        optimizer = recipe.make_optimizer(plan, steps_per_epoch)

        def compile_trainer():
            trainer.compile(optimizer=optimizer,
                            loss=keras.losses.SparseCategoricalCrossentropy(),
                            metrics=["accuracy"], jit_compile=JIT_COMPILE[config.jit_compile])

        compile_trainer()
    return Network(model, trainer, compile_trainer, optimizer, loaded, skip_dropped)


def _input_shape(image_size):
    return ((*image_size, 3) if keras.config.image_data_format() == "channels_last"
            else (3, *image_size))


def build_model(config, classes, input_shape, statistics, skip_dropped, weight_decay):
    """(model, the fine-tuning source's description or None)."""
    if config.model_kind != "registered":
        return _foreign_model(config, classes, input_shape, statistics, weight_decay), None
    common = {"classes": classes, "weight_decay": weight_decay, "seed": config.seed,
              "skip_dropped": skip_dropped, "input_shape": input_shape}
    if statistics.get("mean") is not None:
        common.update(mean=statistics["mean"], std=statistics["std"])
    rates = {"drop_rate": config.drop_rate, "new_drop_rate": config.new_drop_rate}
    try:  # the values are checked (`check`, `check_image_size`): the rest is the model's
        if config.architecture:
            model = hparams.build_model({**config.architecture, **rates}, **common)
        else:
            model = keras_pyramid.build(config.model, **rates, **common)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
    if config.weights is None:
        return model, None
    try:
        return model, finetune.load_backbone(
            model, None if config.architecture else config.model, config.weights)
    except (ValueError, OSError, ImportError) as error:
        raise ConfigError("weights", str(error)) from None


def _foreign_model(config, classes, input_shape, statistics, weight_decay):
    """keras:NAME normalizes by the run's statistics (the CIFAR ones the
    papers use, for CIFAR); a .keras file by its own preprocessing."""
    cifar = VARIANTS["cifar"]
    mean = statistics.get("mean") or cifar.mean
    std = statistics.get("std") or cifar.std
    try:
        return foreign.build(config.model, input_shape, classes, mean, std, weight_decay)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None


def describe(config, network, run_data, plan, spread, steps_per_epoch):
    """The one line a run prints before it trains."""
    model, split = network.model, run_data.record["split"]
    height, width = run_data.image_size
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    frozen = sum(math.prod(v.shape) for v in model.non_trainable_weights)
    line = (f"{model.name}: {trainable:,} trainable and {frozen:,} non-trainable parameters, "
            f"{len(run_data.class_names)} classes, {height}x{width} images; {plan}; "
            f"{steps_per_epoch} step{'' if steps_per_epoch == 1 else 's'} per epoch; "
            f"validation: {split.get('validation_from')}; "
            f"final evaluation: {split['final_evaluation']}; {spread.engine}; skipping "
            f"dropped branches: {'on' if network.skip_dropped else 'off'}")
    if network.loaded:
        line += f"; fine-tuning from {config.weights} (head {network.loaded['head']})"
    head_epochs = head_only_epochs(config, plan)
    if head_epochs:
        line += f"; the classifier alone for the first {head_epochs} of {plan.epochs} epochs"
    resized = resizing_note(run_data.record.get("given_sides"), run_data.image_size)
    return line + (f"; {resized}" if resized else "")


# ---------------------------------------------------------------- fit


def train(config, network, streams, plan, steps_per_epoch, run_dir, spread,
          print_function=print):
    """Trains to the recipe's last epoch (the head alone first, when
    fine-tuning asks for it); returns (history, the final evaluation)."""
    trainer = network.trainer
    arguments = dict(steps_per_epoch=steps_per_epoch, run_dir=run_dir,
                     evaluation_steps=streams.evaluation_steps, verbose=config.verbose,
                     checkpoint_epochs=config.checkpoint_epochs,
                     checkpoint_steps=config.checkpoint_steps,
                     checkpoint_seconds=60 * config.checkpoint_minutes or None,
                     print_function=print_function)
    with spread.scope():
        # The constant schedule is the layers' initial scale: nothing to write per step.
        arguments["extra_callbacks"] = [] if config.drop_rate_schedule == "constant" else [
            drop_schedule.DropRateSchedule(drop_schedule.parse_schedule(
                config.drop_rate_schedule, plan.epochs * steps_per_epoch))]
        head_epochs = head_only_epochs(config, plan)
        if head_epochs and fit.completed_epochs(run_dir) < head_epochs:
            # One optimizer over every variable, built before freezing: a
            # checkpoint of either phase restores into either (finetune.py).
            finetune.build_optimizer(trainer, network.optimizer)
            finetune.set_backbone_trainable(trainer, False)
            network.compile()
            print_function(f"fine-tuning, phase 1: the new head alone for {head_epochs} of "
                           f"{plan.epochs} epochs (the backbone frozen)")
            fit.fit(trainer, streams.train, streams.evaluation, epochs=head_epochs, **arguments)
            finetune.set_backbone_trainable(trainer, True)
            network.compile()
            print_function(f"fine-tuning, phase 2: head trained; now the whole network, "
                           f"epochs {head_epochs + 1} to {plan.epochs}")
            arguments["announce_resume"] = False  # the same process goes on
        history = fit.fit(trainer, streams.train, streams.evaluation, epochs=plan.epochs,
                          **arguments)
        final = trainer.evaluate(streams.final, steps=streams.evaluation_steps, verbose=0,
                                 return_dict=True)
    return history, final


# ---------------------------------------------------------------- results


def training_speed(history, batch_size, steps_per_epoch):
    """Images/s of training: `train_images_per_second` from the median step
    (the median of the epochs' median step times), the first step of each
    process apart (`compile_seconds`: its time above the median step), and
    the old whole-epoch figure, compilation included. History rows written
    before steps were timed give the whole-epoch figure alone."""
    trained_seconds = sum(row["train_seconds"] for row in history)
    with_compilation = batch_size * steps_per_epoch * len(history) / trained_seconds
    speed = {"train_images_per_second": with_compilation, "train_seconds": trained_seconds,
             "train_images_per_second_with_compilation": with_compilation}
    medians = [row["median_step_seconds"] for row in history if "median_step_seconds" in row]
    if medians:
        step = float(np.median(medians))
        firsts = [row["first_step_seconds"] for row in history if "first_step_seconds" in row]
        speed.update(train_images_per_second=batch_size / step, median_step_seconds=step,
                     compile_seconds=sum(max(first - step, 0.0) for first in firsts))
    return speed


def results_of(config, network, run_data, plan, spread, streams, history, final,
               steps_per_epoch):
    """results.json (less the versions): the FINAL epoch's model, never the best epoch's."""
    last, record = history[-1], run_data.record
    evaluated = streams.final_examples
    if spread.processes > 1:  # full batches only (see data.evaluation_stream)
        evaluated -= evaluated % plan.batch_size
    if streams.evaluation_steps:
        evaluated = min(evaluated, streams.evaluation_steps * plan.batch_size)
    return {
        "model": network.model.name, "dataset": config.dataset, "source": record["source"],
        "classes": len(run_data.class_names), "image_size": list(run_data.image_size),
        "evaluation_split": record["split"]["final_evaluation"],
        "evaluated_examples": evaluated, "epochs": last["epoch"],
        "final_error": 1.0 - float(final["accuracy"]), "final_loss": float(final["loss"]),
        "final_train_error": 1.0 - last["accuracy"],
        "batch_size": plan.batch_size, "steps_per_epoch": steps_per_epoch,
        "learning_rate": plan.learning_rate, "weight_decay": plan.weight_decay,
        "images_seen": plan.batch_size * steps_per_epoch * last["epoch"],
        **training_speed(history, plan.batch_size, steps_per_epoch),
        "recipe": config.recipe, "weights": config.weights,
        "head": None if network.loaded is None else network.loaded["head"],
        "freeze_backbone_epochs": head_only_epochs(config, plan),
        "label_noise": record["label_noise"], "statistics": record["statistics"],
        "skip_dropped": network.skip_dropped, "mixed_precision": config.mixed_precision,
        "data": "device-resident" if run_data.resident else "tf.data",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
