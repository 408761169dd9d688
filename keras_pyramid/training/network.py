"""A run's network: built from its `ModelSpec`, in the data-parallel plan's
scope, and compiled by the recipe.

    network = build_network(config, specs.model, run_data, plan, spread, steps_per_epoch,
                            run_dir)
    network.model, network.trainer, network.compile(), network.loaded

Our models come from the registry (or a search's architecture) with the
run's rates, seed and input statistics; `keras:NAME` and a `.keras` file
come from `training.foreign`. Fine-tuning loads the backbone
(`training.finetune`).
"""

import dataclasses

import keras

from keras_pyramid import applications
from keras_pyramid.data import resident
from keras_pyramid.models import hparams, skipping
from keras_pyramid.models.pyramidnet import VARIANTS
from keras_pyramid.training import distribution, finetune, foreign, recipe
from keras_pyramid.training.config import JIT_COMPILE, SKIP_DROPPED
from keras_pyramid.training.run_dir import ConfigError, forget_untrained


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


def skip_dropped_of(config, model, spread):
    """Whether dropped branches are skipped: the config's choice, else where
    measured faster (`skipping.skip_by_default`)."""
    if not model.ours:
        return False  # no branch of theirs is ever dropped
    skip_dropped = SKIP_DROPPED[config.skip_dropped]
    if skip_dropped is None:
        return skipping.skip_by_default(JIT_COMPILE[config.jit_compile], spread.replicas)
    if skip_dropped and spread.replicas > 1:
        raise ConfigError("skip_dropped", f"on is not supported with data-parallel training "
                                          f"({spread.engine}); use auto or off")
    return skip_dropped


def build_network(config, spec, run_data, plan, spread, steps_per_epoch, run_dir, lock=None):
    """The compiled `Network` of the `ModelSpec` `spec`, built in the plan's scope."""
    skip_dropped = skip_dropped_of(config, spec, spread)
    input_shape = input_shape_of(run_data.image_size)
    with spread.scope():
        try:
            model, loaded = build_model(config, spec, len(run_data.class_names), input_shape,
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


def input_shape_of(image_size):
    """(height, width) as a model's input shape in Keras' image data format."""
    return ((*image_size, 3) if keras.config.image_data_format() == "channels_last"
            else (3, *image_size))


def build_model(config, spec, classes, input_shape, statistics, skip_dropped, weight_decay):
    """(model, the fine-tuning source's description or None)."""
    if not spec.ours:
        return _foreign_model(spec, classes, input_shape, statistics, weight_decay), None
    common = {"classes": classes, "weight_decay": weight_decay, "seed": config.seed,
              "skip_dropped": skip_dropped, "input_shape": input_shape}
    if statistics.get("mean") is not None:
        common.update(mean=statistics["mean"], std=statistics["std"])
    rates = {"drop_rate": config.drop_rate, "new_drop_rate": config.new_drop_rate}
    try:  # the values are checked (`check`, `check_image_size`): the rest is the model's
        if spec.architecture:
            model = hparams.build_model({**spec.architecture, **rates}, **common)
        else:
            model = applications.build(spec.text, **rates, **common)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
    if config.weights is None:
        return model, None
    try:
        return model, finetune.load_backbone(model, spec.registered_name, config.weights)
    except (ValueError, OSError, ImportError) as error:
        raise ConfigError("weights", str(error)) from None


def _foreign_model(spec, classes, input_shape, statistics, weight_decay):
    """keras:NAME normalizes by the run's statistics (the CIFAR ones the
    papers use, for CIFAR); a .keras file by its own preprocessing."""
    cifar = VARIANTS["cifar"]
    mean = statistics.get("mean") or cifar.mean
    std = statistics.get("std") or cifar.std
    try:
        return foreign.build(spec.text, input_shape, classes, mean, std, weight_decay)
    except ValueError as error:
        raise ConfigError("model", str(error)) from None
