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

from keras_pyramid.training import (
    batch_norm,
    device,
    distribution,
    drop_schedule,
    finetune,
    fit,
    recipe,
)
from keras_pyramid.training.config import check
from keras_pyramid.training.network import build_network
from keras_pyramid.training.run_data import open_run_data, resizing_note
from keras_pyramid.training.run_dir import (
    ConfigError,
    Run,
    RunLock,
    check_folder,
    has_checkpoint,
    load_run,
    prepare_run_dir,
    refuse_other_run,
)
from keras_pyramid.training.run_layout import DATA_FILE, RESULTS_FILE
from keras_pyramid.utils.files import atomic_write_json
from keras_pyramid.utils.versions import installed, versions

# Wu and Johnson (2021) find about 10^4 images enough for precise BatchNorm statistics.
PRECISE_BN_IMAGES = 10_000

# ---------------------------------------------------------------- the run, stage by stage


def run(config, run_dir, restart=False, print_function=print):
    """Trains (or resumes) the configured run in `run_dir`; returns results.json's dict.

    A finished run (results.json present) made with the same run-defining
    values is returned as it is; with other values it is refused, listing
    them. One process at a time: a run directory in use is refused.
    """
    # check: every value, before anything is read or written; the grammars parsed once
    specs = check(config)
    # placement: the data-parallel plan, before any op runs
    spread = placement(config, specs.dataset)
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
    print_function(f"keras-pyramid {installed('keras-pyramid')}, " +
                   ", ".join(f"{k} {v}" for k, v in measured_with.items()))
    # data: any kind of dataset; a resumed run keeps its split and statistics
    run_data = open_run_data(config, specs, None if restart else found.data)
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
        return _build_and_train(config, specs, run_data, plan, spread, run_dir, lock,
                                {**measured_with}, print_function)


def _build_and_train(config, specs, run_data, plan, spread, run_dir, lock, measured_with,
                     print_function):
    # model: built and compiled in the plan's scope
    steps_per_epoch = config.steps_per_epoch or run_data.train_examples // plan.batch_size
    streams = run_data.streams(plan.batch_size, spread, config)
    network = build_network(config, specs.model, run_data, plan, spread, steps_per_epoch,
                            run_dir, lock)
    if not run_data.resident:
        spread.prepare(network.model, lambda: streams.train(0))
    print_function(describe(config, network, run_data, plan, spread, steps_per_epoch))
    # fit: resumes from the last checkpoint, then the final evaluation
    history, final = train(config, specs.schedule, network, streams, plan, steps_per_epoch,
                           run_dir, spread, print_function)
    # results: the final epoch's model and figures
    results = {**results_of(config, network, run_data, plan, spread, streams, history, final,
                            steps_per_epoch), "versions": measured_with}
    with fit.reporting_full_disk(run_dir):
        fit.save_model(network.model, run_dir)
        atomic_write_json(os.path.join(run_dir, RESULTS_FILE), results)
    return results


# ---------------------------------------------------------------- placement


def placement(config, dataset):
    """The data-parallel plan. First of all: TensorFlow's multi-worker
    strategy must exist before any op runs."""
    try:
        spread = distribution.data_parallel(config.distribute)
        spread.check_batch_size(config.batch_size or 1)
    except distribution.DistributionError as error:
        raise ConfigError("distribute", str(error)) from None
    if dataset.kind == "npz" and spread.replicas > 1:
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


def train(config, schedule, network, streams, plan, steps_per_epoch, run_dir, spread,
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
        arguments["extra_callbacks"] = [] if schedule.constant else [
            drop_schedule.DropRateSchedule(drop_schedule.scale_function(
                schedule, plan.epochs * steps_per_epoch))]
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
        if config.precise_batch_norm:
            final = _reestimate_batch_norm(trainer, streams, plan, steps_per_epoch, final,
                                           print_function)
    return history, final


def _reestimate_batch_norm(trainer, streams, plan, steps_per_epoch, as_trained,
                           print_function):
    """Precise BatchNorm (`batch_norm.reestimate`) on at most PRECISE_BN_IMAGES
    training images (an epoch when the split is smaller), then the final
    evaluation again; returns it with the error as trained beside it."""
    batches = min(steps_per_epoch, math.ceil(PRECISE_BN_IMAGES / plan.batch_size))
    done = batch_norm.reestimate(trainer, streams.train(0), max_batches=batches)
    final = trainer.evaluate(streams.final, steps=streams.evaluation_steps, verbose=0,
                             return_dict=True)
    if done["layers"]:
        print_function(f"BatchNorm statistics re-estimated on {done['images']:,} training "
                       f"images ({done['layers']} layers): final error "
                       f"{1 - as_trained['accuracy']:.2%} as trained, "
                       f"{1 - final['accuracy']:.2%} after")
    return {**final, "as_trained": as_trained, "batch_norm": done}


# ---------------------------------------------------------------- results


def _as_trained(final):
    """results.json's record of a BatchNorm re-estimation: the error the
    running statistics as trained gave, and what was re-estimated."""
    if "as_trained" not in final:
        return {}
    return {"error_as_trained": 1.0 - float(final["as_trained"]["accuracy"]),
            "batch_norm_reestimated": final["batch_norm"]}


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
        **_as_trained(final),
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
