"""One training run: every knob in a `RunConfig`, and `run(config, run_dir) -> results`.

    config = RunConfig(model="pyramidnet110_a48_sepdrop", dataset="folder:photos",
                       weights="cifar10", recipe="finetune", freeze_backbone_epochs=2)
    results = run(config, "runs/photos")

`applications/train.py`, a search's `--retrain` and fine-tuning all come
here, so each gets the same data layer, data-parallel plan, skipping,
checkpoints, exact resume and run directory:

    args.json        the config (a rerun with other run-defining values is refused)
    data.json        the source, its class names, the split, the image size,
                     the augmentation and the input statistics: what
                     `evaluate.py RUN_DIR` and `export.py RUN_DIR` need
    checkpoint/ history.csv history.json curves.png tensorboard/  (training.py)
    model.keras      the final network (raw 0-255 RGB in, its normalization inside)
    results.json     the FINAL epoch's figures (never the best epoch's); the
                     test split, when the source has one, is evaluated here
                     and only here

Errors in the config raise `ConfigError`, whose `argument` names the
RunConfig field (programs turn it into their flag).
"""

import dataclasses
import os
import platform
import shutil
import time

from keras_pyramid.training import fit as training

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
PAPER_STATISTICS_DATASETS = ("cifar10", "cifar100")  # the model's default statistics are theirs
DATA_RECORD = "data.json"


class ConfigError(ValueError):
    """A RunConfig value that cannot be used; `argument` names its field."""

    def __init__(self, argument, message):
        super().__init__(message)
        self.argument = argument


class DataError(RuntimeError):
    """The data cannot be read (not prepared, no network): nothing to fix in the config."""


@dataclasses.dataclass
class RunConfig:
    """Every knob of a run. None means "the recipe's (or the data's) default"."""

    model: str = "pyramidnet110_a48_sepdrop"  # a registered name
    architecture: dict = None  # or {depth, alpha, regularization} from a search
    dataset: str = "cifar10"  # cifar10 | cifar100 | svhn | tfds:NAME[:VERSION] | folder:PATH | npz:PATH
    data_dir: str = None  # tfds data dir
    download: bool = True
    image_size: tuple = None  # (height, width); None: the data's own, else the variant's
    augment: str = None  # cifar | imagenet | none; None: by image size
    validation: object = None  # hold-out fraction or count; None: 0.1 without a test split
    label_noise: float = 0.0  # training labels replaced by another class with this probability
    skip_bad_images: bool = False
    weights: str = None  # fine-tune from: a preset tag, .keras, .weights.h5, a run directory
    freeze_backbone_epochs: int = None  # head alone first (BatchNorm frozen); None: the recipe's
    recipe: str = "paper"  # paper | finetune (keras_pyramid/recipe.py)
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
    verbose: int = 1

    def recorded(self):
        """The config as args.json holds it (JSON types)."""
        values = dataclasses.asdict(self)
        if values["image_size"] is not None:
            values["image_size"] = list(values["image_size"])
        return values


def versions():
    import keras
    import numpy

    try:
        import tensorflow as tf

        tensorflow = tf.__version__
    except ImportError:
        tensorflow = None  # the npz path trains without it
    found = {"python": platform.python_version(), "keras": keras.__version__,
             "backend": keras.backend.backend(), "tensorflow": tensorflow,
             "numpy": numpy.__version__}
    if found["backend"] == "jax":
        import jax

        found["jax"] = jax.__version__
        found["devices"] = [str(d) for d in jax.devices()]
    elif found["backend"] == "torch":
        import torch

        found["torch"] = torch.__version__
        found["threads"] = torch.get_num_threads()
    return found


def default_run_dir(config):
    """runs/MODEL-DATA, DATA the dataset's short name (a folder's basename)."""
    dataset = config.dataset
    for prefix in ("folder:", "tfds:", "npz:"):
        dataset = dataset.removeprefix(prefix)
    tag = os.path.basename(os.path.normpath(dataset)).removesuffix(".npz").split(":")[0]
    name = config.model if config.architecture is None else _architecture_name(config)
    return os.path.join("runs", f"{name}-{tag}")


def _architecture_name(config):
    from keras_pyramid.models import hparams

    return hparams.model_name(config.architecture)


def prepare_run_dir(config, run_dir, restart=False):
    """Creates or checks the run directory; refuses to resume a different run."""
    args_path = os.path.join(run_dir, "args.json")
    if restart and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise ConfigError("run_dir", f"{run_dir} cannot be created: {error.strerror}") from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError("run_dir", f"{run_dir} is not writable")
    resolved = config.recorded()
    if os.path.exists(args_path):
        previous = dict(ADDED_LATER)
        for key, value in training.read_json(args_path).items():
            previous[RENAMED.get(key, key)] = value
        changed = [k for k in RUN_DEFINING if previous.get(k) != resolved.get(k)]
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {resolved.get(k)!r}"
                                for k in changed)
            raise ConfigError("run_dir", f"{run_dir} holds a run with other arguments "
                                         f"({details}); restart it or choose another directory")
    training.atomic_write_json(args_path, resolved)


def _preset(config):
    """(regularization, variant) of the configured model."""
    from keras_pyramid.applications import PRESETS

    if config.architecture is not None:
        return config.architecture["regularization"], "cifar"
    if config.model not in PRESETS:
        from keras_pyramid.applications import list_models

        raise ConfigError("model", f"unknown model {config.model!r}; valid: "
                                   f"{', '.join(list_models())}")
    preset = PRESETS[config.model]
    return preset["regularization"] or "none", preset["variant"]


def check(config):
    """Refuses inconsistent values before anything is read or written."""
    regularization, _ = _preset(config)
    if config.new_drop_rate is not None and regularization != "sepdrop":
        raise ConfigError("new_drop_rate", f"needs a sepdrop model; {config.model} has "
                                           f"regularization {regularization}. Received: "
                                           f"new_drop_rate={config.new_drop_rate}")
    if not 0 <= config.label_noise < 1:
        raise ConfigError("label_noise", f"must be in [0, 1). Received: {config.label_noise}")
    if config.freeze_backbone_epochs and config.weights is None:
        raise ConfigError("freeze_backbone_epochs", "freezes a trained backbone: give weights "
                                                    "to fine-tune from")
    if config.dataset.startswith("npz:"):
        for field in ("weights", "image_size", "augment", "validation"):
            if getattr(config, field) not in (None, 0):
                raise ConfigError(field, f"npz datasets take none (device-resident CIFAR-size "
                                         f"arrays). Received: {getattr(config, field)!r}")
        if config.label_noise:
            raise ConfigError("label_noise", "npz datasets take none")


# ---------------------------------------------------------------- data


def open_data(config, record=None):
    """(source, splits) of the config; `record` (a run's data.json) fixes the
    split it had. Raises ConfigError or DataError."""
    from keras_pyramid import data

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
        splits = data.split_source(source, config.validation, config.seed)
    except ValueError as error:
        raise ConfigError("validation", str(error)) from None
    if record is not None and len(splits.train) != record["split"]["train"]:
        raise ConfigError("dataset", f"{config.dataset} now has {len(splits.train)} training "
                                     f"examples, the run had {record['split']['train']}")
    return source, splits


def image_size_of(config, source, variant):
    from keras_pyramid.models.pyramidnet import VARIANTS

    if config.image_size is not None:
        return tuple(config.image_size)
    if source.image_size is not None:
        return tuple(source.image_size)
    size = VARIANTS[variant].design_size
    return size, size


def check_image_size(config, image_size, variant):
    """The network divides its input by its variant's downsampling factor."""
    from keras_pyramid.models.pyramidnet import VARIANTS

    factor = VARIANTS[variant].downsampling
    if any(side < factor or side % factor for side in image_size):
        name = config.model if config.architecture is None else _architecture_name(config)
        raise ConfigError("image_size", f"{image_size[0]}x{image_size[1]} cannot enter {name}: "
                                        f"its height and width must be multiples of {factor}. "
                                        f"Received: image_size={tuple(image_size)}")


def data_record(config, source, splits, preprocessing, statistics, noise):
    """data.json: what an evaluation or an export of the run needs to know."""
    def size(subset):
        return None if subset is None else len(subset)

    return {
        "source": source.spec,
        "data_dir": config.data_dir,
        "class_names": list(source.class_names),
        "image_size": list(preprocessing.image_size),
        "augment": preprocessing.augment,
        "split": {"train": len(splits.train), "validation": size(splits.validation),
                  "test": size(splits.test), "validation_rule": config.validation,
                  "seed": config.seed,
                  "validation_from": None if splits.validation is None
                  else splits.validation.description,
                  "final_evaluation": None if splits.final is None
                  else splits.final.description},
        "statistics": statistics,
        "label_noise": noise,
        "skipped_files": source.skipped_files,
    }


def read_data_record(run_dir):
    path = os.path.join(run_dir, DATA_RECORD)
    return training.read_json(path) if os.path.exists(path) else None


def _statistics(config, source, splits, preprocessing, previous):
    """The input normalization: the weights' own when fine-tuning, the
    papers' for CIFAR, else per-channel statistics of the training split
    (computed once: a resumed run reads them back)."""
    from keras_pyramid import data

    if previous is not None:
        return previous["statistics"]
    if config.weights is not None:
        from keras_pyramid.training import finetune

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


# ---------------------------------------------------------------- model


def build_model(config, classes, input_shape, statistics, skip_dropped, weight_decay):
    import keras_pyramid
    from keras_pyramid.models import hparams

    common = {"classes": classes, "weight_decay": weight_decay, "seed": config.seed,
              "skip_dropped": skip_dropped, "input_shape": input_shape}
    if statistics.get("mean") is not None:
        common.update(mean=statistics["mean"], std=statistics["std"])
    try:
        if config.architecture:
            model = hparams.build_model({**config.architecture, "drop_rate": config.drop_rate,
                                         "new_drop_rate": config.new_drop_rate}, **common)
        else:
            model = keras_pyramid.build(config.model, drop_rate=config.drop_rate,
                                        new_drop_rate=config.new_drop_rate, **common)
    except ValueError as error:
        argument = "image_size" if "input_shape" in str(error) else "model"
        raise ConfigError(argument, str(error)) from None
    loaded = None
    if config.weights is not None:
        from keras_pyramid.training import finetune

        try:
            loaded = finetune.load_backbone(
                model, None if config.architecture else config.model, config.weights)
        except (ValueError, OSError, ImportError) as error:
            raise ConfigError("weights", str(error)) from None
    return model, loaded


def _recipe(config, dataset_name):
    from keras_pyramid.training import recipe

    try:
        return recipe.recipe_named(config.recipe, dataset_name, epochs=config.epochs,
                                   batch_size=config.batch_size,
                                   learning_rate=config.learning_rate,
                                   weight_decay=config.weight_decay)
    except ValueError as error:
        argument = str(error).split("`")[1] if "`" in str(error) else "recipe"
        raise ConfigError(argument, str(error)) from None


# ---------------------------------------------------------------- run


def run(config, run_dir, restart=False, print_function=print):
    """Trains (or resumes) the configured run in `run_dir`; returns results.json's dict.

    A finished run (results.json present) is returned as it is.
    """
    import keras

    import keras_pyramid
    from keras_pyramid import data
    from keras_pyramid.training import device
    from keras_pyramid.training import distribution
    from keras_pyramid.training import drop_schedule
    from keras_pyramid.training import recipe
    from keras_pyramid.data import resident
    from keras_pyramid.models import skipping

    results_path = os.path.join(run_dir, "results.json")
    if os.path.exists(results_path) and not restart:
        return {**training.read_json(results_path), "already_finished": True}
    check(config)
    _, variant = _preset(config)
    try:
        # First: TensorFlow's multi-worker strategy must exist before any op runs.
        spread = distribution.data_parallel(config.distribute)
        spread.check_batch_size(config.batch_size or 1)
    except distribution.DistributionError as error:
        raise ConfigError("distribute", str(error)) from None
    found = versions()
    print_function("keras-pyramid " + keras_pyramid.__version__ + ", " +
                   ", ".join(f"{k} {v}" for k, v in found.items()))
    resident_arrays = config.dataset.startswith("npz:")
    previous = None if restart else read_data_record(run_dir)
    if resident_arrays:
        try:
            x_train, y_train, x_test, y_test, names = resident.load_npz(config.dataset[4:])
        except (OSError, ValueError) as error:
            raise ConfigError("dataset", f"{config.dataset}: {error}") from None
        class_names, train_examples = names, len(x_train)
        image_size = tuple(x_train.shape[1:3])
        record = {"source": config.dataset, "class_names": list(names),
                  "image_size": list(image_size), "augment": "cifar",
                  "split": {"train": len(x_train), "validation": None, "test": len(x_test),
                            "final_evaluation": "x_test"},
                  "statistics": {"mean": None, "std": None, "from": "the model's default"},
                  "label_noise": None, "skipped_files": 0}
    else:
        source, splits = open_data(config, previous)
        class_names, train_examples = source.class_names, len(splits.train)
        image_size = image_size_of(config, source, variant)
        check_image_size(config, image_size, variant)
        try:
            preprocessing = data.Preprocessing(
                image_size, config.augment or data.default_regime(image_size))
        except ValueError as error:
            raise ConfigError("augment" if "augment" in str(error) else "image_size",
                              str(error)) from None
        noise = None
        if config.label_noise:
            splits_train, changed = data.with_label_noise(
                splits.train, config.label_noise, source.num_classes, config.seed)
            splits = dataclasses.replace(splits, train=splits_train)
            noise = {"rate": config.label_noise, "seed": config.seed,
                     "changed": int(changed.sum()), "examples": len(changed),
                     "changed_fraction": float(changed.mean()),
                     "applies_to": "training labels only"}
        statistics = _statistics(config, source, splits, preprocessing, previous)
        record = data_record(config, source, splits, preprocessing, statistics, noise)
    plan = _recipe(config, config.dataset if config.dataset in PAPER_STATISTICS_DATASETS
                   else ("cifar100" if resident_arrays and len(class_names) > 10 else "other"))
    if plan.batch_size > train_examples:
        raise ConfigError("batch_size", f"{plan.batch_size} exceeds the {train_examples:,} "
                                        "training examples")
    spread.check_batch_size(plan.batch_size)
    # Resolved before it is recorded: a resumed run must compute as it began.
    config = dataclasses.replace(
        config, mixed_precision=device.resolve_mixed_precision(config.mixed_precision))
    prepare_run_dir(config, run_dir, restart)
    training.atomic_write_json(os.path.join(run_dir, DATA_RECORD), record)

    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{config.mixed_precision}")
    steps_per_epoch = config.steps_per_epoch or train_examples // plan.batch_size
    data_format = keras.config.image_data_format()
    input_shape = ((*image_size, 3) if data_format == "channels_last" else (3, *image_size))

    if resident_arrays:
        if spread.replicas > 1:
            raise ConfigError("distribute", "npz datasets train on one device; use none")
        resident_train = resident.ResidentData(x_train, y_train, plan.batch_size, config.seed,
                                               data_format)
        resident_test = resident.ResidentData(x_test, y_test, plan.batch_size, config.seed,
                                              data_format)
        train_data = resident_train.training_stream
        evaluation_data, final_data = None, resident_test.evaluation_stream()
        evaluation_steps = min(config.eval_steps or resident_test.evaluation_steps,
                               resident_test.evaluation_steps)  # one pass at most
        final_examples = len(x_test)
    else:
        def train_data(start_step):
            # The stream from a global step on: a resumed run gets the batches it
            # would have got without the interruption.
            return spread.shard(data.training_stream(
                source, splits.train, preprocessing, plan.batch_size, config.seed,
                data_format, start_step))

        def held_out(subset):
            return None if subset is None else spread.shard(data.evaluation_stream(
                source, subset, preprocessing, plan.batch_size, data_format,
                full_batches=spread.processes > 1))

        evaluation_data, final_data = held_out(splits.validation), held_out(splits.final)
        evaluation_steps = config.eval_steps
        final_examples = len(splits.final)

    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    skip_dropped = {"on": True, "off": False}.get(config.skip_dropped)
    if skip_dropped is None:
        skip_dropped = skipping.skip_by_default(jit, spread.replicas)
    elif skip_dropped and spread.replicas > 1:
        raise ConfigError("skip_dropped", f"on is not supported with data-parallel training "
                                          f"({spread.engine}); use auto or off")
    with spread.scope():
        try:
            model, loaded = build_model(config, len(class_names), input_shape,
                                        record["statistics"], skip_dropped, plan.weight_decay)
        except ConfigError:
            if not training.completed_epochs(run_dir):  # nothing trained: no run to keep
                for name in ("args.json", DATA_RECORD):
                    os.remove(os.path.join(run_dir, name))
            raise
        if config.sync_batch_norm and spread.strategy is not None:
            model = distribution.synchronized_batch_norm(model)
        distribution.check_gates(model, spread)
        # The .npz path augments on the device, in the step; model.keras stays the bare model.
        trainer = resident.with_augmentation(model, config.seed) if resident_arrays else model
        optimizer = recipe.make_optimizer(plan, steps_per_epoch)

        def compile_trainer():
            trainer.compile(optimizer=optimizer,
                            loss=keras.losses.SparseCategoricalCrossentropy(),
                            metrics=["accuracy"], jit_compile=jit)

        compile_trainer()
    if not resident_arrays:
        spread.prepare(model, lambda: train_data(0))
    print_function(
        f"{model.name}: {model.count_params():,} parameters, {len(class_names)} classes, "
        f"{image_size[0]}x{image_size[1]} images; {plan}; {steps_per_epoch} steps per epoch; "
        f"validation: {record['split'].get('validation_from')}; final evaluation: "
        f"{record['split']['final_evaluation']}; {spread.engine}; skipping dropped branches: "
        f"{'on' if skip_dropped else 'off'}" + (f"; fine-tuning from {config.weights} "
                                                 f"(head {loaded['head']})" if loaded else ""))

    fit_arguments = dict(steps_per_epoch=steps_per_epoch, run_dir=run_dir,
                         evaluation_steps=evaluation_steps, verbose=config.verbose,
                         checkpoint_epochs=config.checkpoint_epochs,
                         checkpoint_steps=config.checkpoint_steps)
    with spread.scope():
        # The constant schedule is the layers' initial scale: nothing to write per step.
        callbacks = [] if config.drop_rate_schedule == "constant" else [
            drop_schedule.DropRateSchedule(drop_schedule.parse_schedule(
                config.drop_rate_schedule, plan.epochs * steps_per_epoch))]
        head_epochs = head_only_epochs(config, plan)
        if head_epochs and training.completed_epochs(run_dir) < head_epochs:
            from keras_pyramid.training import finetune

            # One optimizer over every variable, built before freezing: a
            # checkpoint of either phase restores into either (finetune.py).
            finetune.build_optimizer(trainer, optimizer)
            finetune.set_backbone_trainable(trainer, False)
            compile_trainer()
            training.fit(trainer, train_data, evaluation_data, epochs=head_epochs,
                         extra_callbacks=callbacks, **fit_arguments)
            finetune.set_backbone_trainable(trainer, True)
            compile_trainer()
        history = training.fit(trainer, train_data, evaluation_data, epochs=plan.epochs,
                               extra_callbacks=callbacks, **fit_arguments)
        final = trainer.evaluate(final_data, steps=evaluation_steps, verbose=0,
                                 return_dict=True)

    last = history[-1]
    trained_seconds = sum(row["train_seconds"] for row in history)
    evaluated = final_examples
    if spread.processes > 1:  # full batches only (see data.evaluation_stream)
        evaluated -= evaluated % plan.batch_size
    if evaluation_steps:
        evaluated = min(evaluated, evaluation_steps * plan.batch_size)
    results = {
        "model": model.name,
        "dataset": config.dataset,
        "source": record["source"],
        "classes": len(class_names),
        "image_size": list(image_size),
        "evaluation_split": record["split"]["final_evaluation"],
        "evaluated_examples": evaluated,
        "epochs": last["epoch"],
        # The FINAL epoch's model, never the best epoch's.
        "final_error": 1.0 - float(final["accuracy"]),
        "final_loss": float(final["loss"]),
        "final_train_error": 1.0 - last["accuracy"],
        "train_images_per_second": plan.batch_size * steps_per_epoch * len(history)
        / trained_seconds,
        "recipe": config.recipe,
        "weights": config.weights,
        "head": None if loaded is None else loaded["head"],
        "freeze_backbone_epochs": head_only_epochs(config, plan),
        "label_noise": record["label_noise"],
        "statistics": record["statistics"],
        "skip_dropped": skip_dropped,
        "mixed_precision": config.mixed_precision,
        "data": "device-resident" if resident_arrays else "tf.data",
        "versions": found,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    training.save_model(model, run_dir)
    training.atomic_write_json(results_path, results)
    return results


def head_only_epochs(config, plan):
    """The first epochs that train the new head alone: the flag's, else the
    recipe's share (none for the paper's; fine-tuning's only with weights)."""
    if config.weights is None:
        return 0
    if config.freeze_backbone_epochs is not None:
        return min(config.freeze_backbone_epochs, plan.epochs)
    return plan.frozen_epochs()
