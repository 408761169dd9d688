"""A run's data, any kind: `open_run_data(config, specs) -> RunData`.

    run_data = open_run_data(config, check(config))
    streams = run_data.streams(batch_size, spread, config)   # Streams: train, evaluation, final

npz arrays stay on the device (`data.resident`); tfds datasets and folders
stream through tf.data (`data.pipeline`). A resumed run passes its data.json
(`previous`): its split and its input statistics hold. data.json's record
is `data_record`. Errors: `ConfigError` naming the field, `DataError` when
the data cannot be read at all.
"""

import dataclasses

import keras

from keras_pyramid import data
from keras_pyramid.data import resident
from keras_pyramid.models.pyramidnet import VARIANTS, minimum_input_size
from keras_pyramid.training import finetune, foreign
from keras_pyramid.training.run_dir import ConfigError

PAPER_STATISTICS_DATASETS = ("cifar10", "cifar100")  # the model's default statistics are theirs


class DataError(RuntimeError):
    """The data cannot be read (not prepared, no network): nothing to fix in the config."""


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
    if not config.use_test_split:  # a search's trial: never read, the hold-out is final
        splits = dataclasses.replace(splits, test=None)
    if record is not None and len(splits.train) != record["split"]["train"]:
        raise ConfigError("dataset", f"{config.dataset} now has {len(splits.train)} training "
                                     f"examples, the run had {record['split']['train']}")
    return source, splits


def open_run_data(config, specs, previous=None):
    """The `RunData` of any dataset kind: arrays kept on the device (npz) or
    a tfds/folder source streamed through tf.data. `specs`: the config's
    `RunSpecs`; `previous`: the run's data.json when resuming (its split and
    statistics hold)."""
    if specs.dataset.kind == "npz":
        return _resident_data(config, specs)
    return _streamed_data(config, specs, previous)


def _resident_data(config, specs):
    try:
        x_train, y_train, x_test, y_test, names = resident.load_npz(specs.dataset.name)
    except (OSError, ValueError) as error:
        raise ConfigError("dataset", str(error)) from None  # it names the file
    image_size = tuple(x_train.shape[1:3])
    check_image_size(specs.model, image_size)

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


def _streamed_data(config, specs, previous):
    source, splits = open_data(config, previous)
    image_size = image_size_of(config, source, specs.model)
    check_image_size(specs.model, image_size)  # before Preprocessing sees it
    preprocessing = data.Preprocessing(image_size,
                                       config.augment or data.default_regime(image_size),
                                       flip=config.flip)
    splits, noise = _with_label_noise(config, source, splits)
    statistics = (previous["statistics"] if previous is not None
                  else _statistics(config, specs.model, source, splits, preprocessing))

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


def image_size_of(config, source, model):
    """The configured size, else the data's, else the model's (a `ModelSpec`):
    a .keras file's own, ImageNet's 224 for keras:NAME, the variant's design size."""
    if config.image_size is not None:
        return tuple(config.image_size)
    if source.image_size is not None:
        return tuple(source.image_size)
    if not model.ours:
        return tuple(side or 224 for side in model.file_input_size or (None, None))
    size = VARIANTS[model.variant].design_size
    return size, size


def check_image_size(model, image_size):
    """The network's stem must be able to reduce the input (any size from its
    variant's minimum on: odd sizes too, the shortcuts pool in ceil mode); a
    .keras file must take that size; a keras.applications builder is built
    on it to see (`foreign.check_input_size`)."""
    if model.ours:
        minimum = minimum_input_size(model.variant)
        problem = (f"{image_size[0]}x{image_size[1]} cannot enter {model.name}: its height "
                   f"and width must be >= {minimum}"
                   if any(side < minimum for side in image_size) else None)
    elif model.kind == "file":
        taken = model.file_input_size
        problem = (f"{tuple(image_size)} cannot enter {model.text}: it takes {taken}"
                   if any(t is not None and t != s for t, s in zip(taken, image_size))
                   else None)
    else:
        problem = foreign.input_size_problem(model.text, tuple(image_size))
    if problem:
        raise ConfigError("image_size", f"{problem}. Received: image_size={tuple(image_size)}")


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


def _statistics(config, model, source, splits, preprocessing):
    """The input normalization: the model's own preprocessing, the weights'
    own when fine-tuning, the papers' for CIFAR, else per-channel statistics
    of the training split (computed once: a resumed run reads them back
    from data.json)."""
    if model.own_preprocessing:
        return {"mean": None, "std": None, "from": "the model's own preprocessing"}
    if config.weights is not None:
        try:
            mean, std = finetune.weights_statistics(model.registered_name, config.weights)
        except ValueError as error:
            raise ConfigError("weights", str(error)) from None
        return {"mean": mean, "std": std, "from": f"the weights ({config.weights})"}
    if source.spec in PAPER_STATISTICS_DATASETS:
        return {"mean": None, "std": None, "from": "the model's default (the papers' CIFAR "
                                                   "statistics)"}
    mean, std, count = data.channel_statistics(source, splits.train, preprocessing,
                                               config.seed)
    return {"mean": mean, "std": std, "from": f"{count} training images"}
