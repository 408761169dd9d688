"""A run's knobs, `RunConfig`, and `check(config)`: every value checked once,
before anything is read or written, into the run's parsed specs.

    config = RunConfig(model="pyramidnet110_a48_sepdrop", dataset="folder:photos",
                       weights="cifar10", recipe="finetune", freeze_backbone_epochs=2)
    specs = check(config)          # RunSpecs(model, dataset, schedule), or ConfigError

Errors raise `ConfigError`, whose `argument` names the RunConfig field
(programs turn it into their flag).
"""

import dataclasses
import os

from keras_pyramid import data
from keras_pyramid.models import drop_rates, hparams
from keras_pyramid.training import device, recipe, specs
from keras_pyramid.training.fit import CHECKPOINT_SECONDS
from keras_pyramid.training.run_dir import ConfigError
from keras_pyramid.utils import checks

JIT_COMPILE = {"auto": "auto", "true": True, "false": False}
SKIP_DROPPED = {"auto": None, "on": True, "off": False}
# The largest image side a run takes: a batch of 64 float32 images of
# 4096x4096x3 is 12 GiB before the first convolution.
MAX_IMAGE_SIDE = 4096


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
    drop_rate_schedule: str = "constant"  # specs.parse_schedule's grammar
    seed: int = 0
    steps_per_epoch: int = None  # None: one pass over the training data
    eval_steps: int = None  # limit each evaluation (smoke runs)
    use_test_split: bool = True  # False (a search's trial): the hold-out is the final evaluation
    precise_batch_norm: bool = False  # re-estimate BatchNorm after training (batch_norm.py)
    mixed_precision: str = "auto"
    jit_compile: str = "auto"
    skip_dropped: str = "auto"
    distribute: str = "auto"
    sync_batch_norm: bool = False
    checkpoint_epochs: int = 1
    checkpoint_steps: int = None
    checkpoint_minutes: float = CHECKPOINT_SECONDS / 60  # of training; 0: not by time
    verbose: int = 1

    def recorded(self):
        """The config as args.json holds it (JSON types)."""
        values = dataclasses.asdict(self)
        if values["image_size"] is not None:
            values["image_size"] = list(values["image_size"])
        return values

    @property
    def data_split_seed(self):
        """The seed that draws the hold-out and the training subset."""
        return self.seed if self.split_seed is None else self.split_seed


def with_hparams(config, values):
    """`config` with a search's best `values` (`hparams.load_hparams`): its
    architecture for the model, and its learning rate, batch size and drop
    rates where the config left them None (explicit values win)."""
    filled = {key: values[key] for key in ("learning_rate", "batch_size", "drop_rate",
                                           "new_drop_rate") if getattr(config, key) is None}
    return dataclasses.replace(
        config, model=hparams.model_name(values),
        architecture={key: values[key] for key in ("depth", "alpha", "regularization")},
        **filled)


@dataclasses.dataclass(frozen=True)
class RunSpecs:
    """The config's grammars, parsed once (`specs`, `data.parse_dataset`)."""

    model: specs.ModelSpec
    dataset: data.DatasetSpec
    schedule: specs.ScheduleSpec


def default_run_dir(config):
    """runs/MODEL-DATA, DATA the dataset's short name (a folder's basename)."""
    parsed = parse_specs(config)
    return os.path.join("runs", f"{parsed.model.name}-{parsed.dataset.tag}")


def _parsed(argument, parse, *arguments):
    """`parse(*arguments)`, its ValueError as a ConfigError naming `argument`."""
    try:
        return parse(*arguments)
    except ValueError as error:
        raise ConfigError(argument, str(error)) from None


def parse_specs(config):
    """The config's `RunSpecs`; ConfigError naming the field that does not parse."""
    return RunSpecs(_parsed("model", specs.parse_model, config.model, config.architecture),
                    _parsed("dataset", data.parse_dataset, config.dataset),
                    _parsed("drop_rate_schedule", specs.parse_schedule,
                            config.drop_rate_schedule))


def check(config):
    """Refuses inconsistent values before anything is read or written; returns
    the config's `RunSpecs`."""
    parsed = parse_specs(config)
    if parsed.model.ours:
        regularization = parsed.model.regularization
        regularization = None if regularization == "none" else regularization
        # The first check can fail only by drop_rate, the second only by new_drop_rate.
        _parsed("drop_rate", drop_rates.check_drop_rates, regularization, config.drop_rate, None)
        _parsed("new_drop_rate", drop_rates.check_drop_rates, regularization, config.drop_rate,
                config.new_drop_rate)
    else:
        _check_foreign(config)
    _check_values(config)
    if parsed.dataset.kind == "npz":
        _check_npz(config, parsed.model)
    return parsed


def _check_values(config):
    """Each value on its own: a range, a choice, a size."""
    _parsed("label_noise", checks.check_rate, "label_noise", config.label_noise)
    for count in ("split_seed", "train_examples", "epochs", "batch_size"):
        if getattr(config, count) is not None:
            _parsed(count, checks.check_int, count, getattr(config, count),
                    0 if count == "split_seed" else 1)
    if config.image_size is not None:
        if len(tuple(config.image_size)) != 2:
            raise ConfigError("image_size", f"must be (height, width). Received: "
                                            f"image_size={config.image_size!r}")
        for side in config.image_size:
            _parsed("image_size", checks.check_int, "image_size", side, 1, MAX_IMAGE_SIDE)
    for field, choices in (("augment", data.REGIMES), ("recipe", recipe.RECIPES),
                           ("mixed_precision", device.MIXED_PRECISION),
                           ("jit_compile", tuple(JIT_COMPILE)),
                           ("skip_dropped", tuple(SKIP_DROPPED))):
        value = getattr(config, field)
        if value is not None or field != "augment":  # augment None: by the image size
            _parsed(field, checks.check_choice, field, value, choices)
    if config.learning_rate is not None:
        _parsed("learning_rate", checks.check_number, "learning_rate", config.learning_rate,
                None, None, True)
    if config.weight_decay is not None:
        _parsed("weight_decay", checks.check_number, "weight_decay", config.weight_decay, 0)
    if config.freeze_backbone_epochs and config.weights is None:
        raise ConfigError("freeze_backbone_epochs", "freezes a trained backbone: give "
                                                    "`weights` to fine-tune from. Received: "
                                                    "freeze_backbone_epochs="
                                                    f"{config.freeze_backbone_epochs}")


def _check_foreign(config):
    """A keras:NAME builder or a .keras classifier takes none of our
    regularizers' rates and no weights source of ours."""
    for field in ("drop_rate", "new_drop_rate", "weights"):
        if getattr(config, field) is not None:
            raise ConfigError(field, f"{config.model} is not one of our models: it takes none "
                                     f"(keras:NAME@imagenet names ImageNet weights; a .keras "
                                     f"file is its own). Received: {getattr(config, field)!r}")


# What an npz dataset does in place of each setting it refuses.
NPZ_FIXED = {"weights": "trains from scratch", "image_size": "keeps its arrays' size",
             "augment": "always trains with the CIFAR augmentation (pad 4, crop, flip)",
             "validation": "holds nothing out: its test arrays are the final evaluation",
             "label_noise": "keeps its labels"}
NPZ = "an npz dataset (device-resident CIFAR-size arrays)"


def _check_npz(config, model):
    """Device-resident arrays train our models only, and take no weights,
    resizing, augmentation choice, hold-out or label noise."""
    if not model.ours:
        raise ConfigError("model", f"npz datasets train our registered models only. Received: "
                                   f"model={config.model!r}")
    for field, fixed in NPZ_FIXED.items():
        if getattr(config, field) not in (None, 0):
            raise ConfigError(field, f"{NPZ} {fixed}: leave this setting out. Received: "
                                     f"{field}={getattr(config, field)!r}")
    if not config.flip:
        raise ConfigError("flip", f"{NPZ} always trains with the CIFAR augmentation, flip "
                                  "included")
