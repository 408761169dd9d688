"""Trains a registered PyramidNet on CIFAR-10/100 with the papers' recipe.

    python applications/train.py --model pyramidnet110_a48_sepdrop --dataset cifar10
    python applications/train.py --model pyramidnet272_a200_sepdrop --dataset cifar100 \\
        --output-dir runs/272-sepdrop-c100
    KERAS_BACKEND=jax python applications/train.py --model pyramidnet20_a48 \\
        --epochs 2 --steps-per-epoch 20 --eval-steps 5 --no-download --data-dir DIR

Defaults are SPEC section 4: SGD + Nesterov 0.9, batch 128, 300 epochs,
lr 0.1 (CIFAR-10) / 0.5 (CIFAR-100) x0.1 at 50% and 75%, coupled weight
decay 1e-4. Run the same command again to resume from the last checkpoint:
an epoch's end, or with `--checkpoint-steps N` a step within the epoch, from
which the run continues with the very next batch. `--restart` starts over.
The run directory's files are listed in `keras_pyramid/training.py`.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time

from keras_pyramid import cli

# Arguments that define a run: resuming with other values would mix two runs.
RUN_DEFINING = (
    "model",
    "skip_dropped",  # another layer structure: the checkpoints would not load
    "dataset",
    "epochs",
    "batch_size",
    "lr",
    "drop_rate",
    "new_drop_rate",
    "drop_rate_schedule",
    "weight_decay",
    "seed",
    "steps_per_epoch",
    "validation_examples",
    "mixed_precision",
)
# Run-defining arguments newer than some run directories, with the value the
# runs written before them had.
ADDED_LATER = {"new_drop_rate": None, "drop_rate_schedule": "constant"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default=None,
                        help="a registered name (keras_pyramid.list_models()); "
                             "default pyramidnet110_a48_sepdrop")
    parser.add_argument("--hparams", default=None, metavar="JSON",
                        help="a search's best_hparams.json: the model (depth, alpha, "
                             "regularization, drop rate), --lr and --batch-size; "
                             "explicit flags win")
    parser.add_argument("--dataset", type=dataset_argument, default="cifar10",
                        help="cifar10, cifar100 (tfds), or npz:PATH (arrays x_train, y_train, "
                             "x_test, y_test kept on the device and augmented inside the "
                             "training step: no TensorFlow needed)")
    parser.add_argument("--epochs", type=cli.positive_int, default=300)
    parser.add_argument("--batch-size", type=cli.positive_int, default=None, help="default: 128")
    parser.add_argument("--lr", type=cli.positive_float, default=None,
                        help="initial learning rate (default: 0.1 CIFAR-10, 0.5 CIFAR-100)")
    parser.add_argument("--weight-decay", type=cli.non_negative_float, default=1e-4,
                        help="coupled L2 on every parameter")
    parser.add_argument("--drop-rate", type=cli.drop_probability, default=None,
                        help="the last unit's drop probability (default: the model's, 0.5)")
    parser.add_argument("--new-drop-rate", type=cli.drop_probability, default=None,
                        help="sepdrop models: the last unit's drop probability of the gate on "
                             "the new channels (this project's extension; default: tied to "
                             "--drop-rate, the paper)")
    parser.add_argument("--drop-rate-schedule", type=cli.drop_rate_schedule, default="constant",
                        help="the last unit's rate during training: constant (the paper), or "
                             "ramp:FRACTION, linear from 0 to the target over that fraction "
                             "of the steps (this project's extension); inference uses the "
                             "target")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="tfds data dir (default: tfds' own, or TFDS_DATA_DIR)")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                        help="let tfds download the dataset when it is missing")
    parser.add_argument("--output-dir", default=None,
                        help="run directory (default: runs/MODEL-DATASET)")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, default=None,
                        help="limit each epoch (short runs); default: one pass")
    parser.add_argument("--eval-steps", type=cli.positive_int, default=None,
                        help="limit each evaluation to this many batches (smoke runs)")
    parser.add_argument("--validation-examples", type=cli.non_negative_int, default=0,
                        help="evaluate on the last N TRAINING images instead of the test set")
    parser.add_argument("--mixed-precision", nargs="?", const="bfloat16", default="auto",
                        choices=("auto", "off", "bfloat16", "float16"),
                        help="auto: bfloat16 on GPUs that have it, else off "
                             "(keras_pyramid/device.py); bare flag: bfloat16")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--skip-dropped", choices=("auto", "on", "off"), default="auto",
                        help="do not compute a dropped unit's branch (same training, less "
                             "work); auto: on where measured faster (without XLA, one device)")
    parser.add_argument("--distribute", choices=("none", "auto", "data-parallel"), default="auto",
                        help="data-parallel over all visible devices (jax, tensorflow; "
                             "TF_CONFIG for several machines); auto: when there are several")
    parser.add_argument("--sync-batch-norm", action="store_true",
                        help="tensorflow replicas: BatchNorm statistics over the global batch "
                             "(jax always does; default per replica, as the papers' runs)")
    parser.add_argument("--checkpoint-epochs", type=cli.positive_int, default=1, metavar="N",
                        help="checkpoint every N epochs (and after the last); default 1")
    parser.add_argument("--checkpoint-steps", type=cli.positive_int, default=None, metavar="N",
                        help="also checkpoint every N steps within epochs: a crash then loses "
                             "at most N steps, and the run resumes at the very next batch")
    parser.add_argument("--restart", action="store_true", help="discard the run directory")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    args = parser.parse_args(argv)
    args.architecture = None
    if args.hparams:
        if args.model:
            parser.error("--model and --hparams both name a model: give one of them")
        from keras_pyramid import hparams

        try:
            values = hparams.load_hparams(args.hparams)
        except ValueError as error:
            parser.error(f"--hparams: {error}")
        args.architecture = {k: values[k] for k in ("depth", "alpha", "regularization")}
        args.model = hparams.model_name(values)
        args.lr = values["learning_rate"] if args.lr is None else args.lr
        args.batch_size = args.batch_size or values["batch_size"]
        args.drop_rate = values["drop_rate"] if args.drop_rate is None else args.drop_rate
        if args.new_drop_rate is None:
            args.new_drop_rate = values["new_drop_rate"]
    args.model = args.model or "pyramidnet110_a48_sepdrop"
    if args.dataset.startswith("npz:") and args.validation_examples:
        parser.error("--validation-examples takes tfds datasets only; put a validation "
                     "split into the .npz's x_test/y_test instead")
    check_new_drop_rate(parser, args)
    args.batch_size = args.batch_size or 128
    if args.output_dir is None:
        tag = args.dataset if not args.dataset.startswith("npz:") else \
            os.path.basename(args.dataset[4:]).removesuffix(".npz")
        args.output_dir = os.path.join("runs", f"{args.model}-{tag}")
    return parser, args


def dataset_argument(text):
    """An argparse type: cifar10, cifar100, or npz:PATH of an existing file."""
    if text in ("cifar10", "cifar100"):
        return text
    if text.startswith("npz:") and os.path.isfile(text[4:]):
        return text
    raise argparse.ArgumentTypeError(
        f"must be cifar10, cifar100 or npz:PATH of an existing .npz file, got {text!r}")


def versions():
    import keras
    import numpy

    try:
        import tensorflow as tf

        tensorflow = tf.__version__
    except ImportError:
        tensorflow = None  # the npz path trains without it
    found = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "tensorflow": tensorflow,
        "numpy": numpy.__version__,
    }
    if found["backend"] == "jax":
        import jax

        found["jax"] = jax.__version__
        found["devices"] = [str(d) for d in jax.devices()]
    elif found["backend"] == "torch":
        import torch

        found["torch"] = torch.__version__
        found["threads"] = torch.get_num_threads()
    return found


def prepare_run_dir(parser, args):
    """Creates or checks the run directory; refuses to resume a different run."""
    from keras_pyramid.training import atomic_write_json, read_json

    args_path = os.path.join(args.output_dir, "args.json")
    if args.restart and os.path.isdir(args.output_dir):
        shutil.rmtree(args.output_dir)
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as error:
        parser.error(f"--output-dir {args.output_dir} cannot be created: {error.strerror}")
    if not os.access(args.output_dir, os.W_OK):
        parser.error(f"--output-dir {args.output_dir} is not writable")
    resolved = vars(args).copy()
    if os.path.exists(args_path):
        previous = {**ADDED_LATER, **read_json(args_path)}
        changed = [k for k in RUN_DEFINING if previous.get(k) != resolved.get(k)]
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {resolved.get(k)!r}" for k in changed)
            parser.error(
                f"{args.output_dir} holds a run with other arguments ({details}); "
                "pass --restart to discard it or choose another --output-dir"
            )
    atomic_write_json(args_path, resolved)


def check_new_drop_rate(parser, args):
    """--new-drop-rate gates the new channels of PyramidSepDrop: other models have none."""
    if args.new_drop_rate is None:
        return
    from keras_pyramid.applications import PRESETS

    if args.architecture:  # --hparams
        regularization = args.architecture["regularization"]
    elif args.model in PRESETS:
        regularization = PRESETS[args.model]["regularization"]
    else:
        return  # an unknown --model is refused with the list of names
    if regularization != "sepdrop":
        parser.error(f"--new-drop-rate needs a sepdrop model; --model {args.model} has "
                     f"regularization {regularization}. Received: "
                     f"--new-drop-rate {args.new_drop_rate}")


def main(argv=None):
    parser, args = parse_args(argv)
    import keras

    import keras_pyramid
    from keras_pyramid import (data, device, distribution, drop_schedule, hparams, recipe,
                               resident, skipping, training)

    if args.architecture is None and args.model not in keras_pyramid.list_models():
        parser.error(
            f"unknown --model {args.model!r}; valid: {', '.join(keras_pyramid.list_models())}"
        )
    results_path = os.path.join(args.output_dir, "results.json")
    if os.path.exists(results_path) and not args.restart:
        print(f"{args.output_dir} already finished: {results_path} (--restart to redo)")
        return 0

    try:
        # First: TensorFlow's multi-worker strategy must exist before any op runs.
        spread = distribution.data_parallel(args.distribute)
        spread.check_batch_size(args.batch_size)
    except distribution.DistributionError as error:
        print(f"error: --distribute {args.distribute}: {error}", file=sys.stderr)
        return 2
    found = versions()
    print("keras-pyramid " + keras_pyramid.__version__ + ", " +
          ", ".join(f"{k} {v}" for k, v in found.items()))
    arrays = None
    if args.dataset.startswith("npz:"):
        try:
            arrays = resident.load_npz(args.dataset[4:])
        except (OSError, ValueError) as error:
            parser.error(f"--dataset {args.dataset}: {error}")
        x_train, y_train, x_test, y_test, names = arrays
        split = data.Splits("x_train", "x_test", len(x_train), len(x_test), len(names), names)
    else:
        try:
            builder = data.dataset_builder(args.dataset, args.data_dir, args.download)
        except data.DataNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        # Refused before the run directory is touched: a bad flag writes nothing.
        try:
            split = data.splits(builder, args.validation_examples)
        except ValueError as error:
            parser.error(f"--validation-examples: {error}")
    cli.check_batch_fits(parser, args.batch_size, split.train_examples, split.train)
    # Resolved before it is recorded: a resumed run must compute as it began.
    args.mixed_precision = device.resolve_mixed_precision(args.mixed_precision)
    prepare_run_dir(parser, args)

    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{args.mixed_precision}")
    plan = recipe.paper_recipe(
        # An .npz gets the paper's rate for its class count (0.1 for 10, 0.5 for 100).
        args.dataset if arrays is None else ("cifar10" if split.num_classes <= 10
                                             else "cifar100"),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = args.steps_per_epoch or split.train_examples // plan.batch_size
    data_format = keras.config.image_data_format()

    if arrays is not None:
        if spread.replicas > 1:
            parser.error("--dataset npz: trains on one device; use --distribute none")
        resident_train = resident.ResidentData(x_train, y_train, plan.batch_size, args.seed,
                                               data_format)
        resident_test = resident.ResidentData(x_test, y_test, plan.batch_size, args.seed,
                                              data_format)
        train_data = resident_train.training_stream
        evaluation_data = resident_test.evaluation_stream()
        args.eval_steps = min(args.eval_steps or resident_test.evaluation_steps,
                              resident_test.evaluation_steps)  # one pass at most
    else:
        def train_data(start_step):
            # The stream from a global step on: a resumed run gets the batches it
            # would have got without the interruption.
            return spread.shard(data.pipeline(builder, split.train, plan.batch_size,
                                              training=True, seed=args.seed,
                                              data_format=data_format, repeat=True,
                                              start_step=start_step))

        evaluation_data = spread.shard(data.pipeline(
            builder, split.evaluation, plan.batch_size, training=False,
            data_format=data_format, full_batches=spread.processes > 1))

    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    skip_dropped = {"on": True, "off": False}.get(args.skip_dropped)
    if skip_dropped is None:
        skip_dropped = skipping.skip_by_default(jit, spread.replicas)
    elif skip_dropped and spread.replicas > 1:
        parser.error(f"--skip-dropped on is not supported with data-parallel training "
                     f"({spread.engine}); use auto or off")
    common = {"classes": split.num_classes, "weight_decay": plan.weight_decay, "seed": args.seed,
              "skip_dropped": skip_dropped}
    with spread.scope():
        if args.architecture:
            model = hparams.build_model({**args.architecture, "drop_rate": args.drop_rate,
                                         "new_drop_rate": args.new_drop_rate}, **common)
        else:
            model = keras_pyramid.build(args.model, drop_rate=args.drop_rate,
                                        new_drop_rate=args.new_drop_rate, **common)
        if args.sync_batch_norm and spread.strategy is not None:
            model = distribution.synchronized_batch_norm(model)
        distribution.check_gates(model, spread)
        # The .npz path augments on the device, in the step; model.keras stays the bare model.
        trainer = model if arrays is None else resident.with_augmentation(model, args.seed)
        trainer.compile(
            optimizer=recipe.make_optimizer(plan, steps_per_epoch),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
            jit_compile=jit,
        )
    if arrays is None:
        spread.prepare(model, lambda: train_data(0))
    print(f"{model.name}: {model.count_params():,} parameters; {plan}; "
          f"{steps_per_epoch} steps per epoch; evaluating on {split.evaluation}; "
          f"{spread.engine}; skipping dropped branches: {'on' if skip_dropped else 'off'}")

    try:
        with spread.scope():
            # The constant schedule is the layers' initial scale: nothing to write per step.
            schedule_callbacks = [] if args.drop_rate_schedule == "constant" else [
                drop_schedule.DropRateSchedule(drop_schedule.parse_schedule(
                    args.drop_rate_schedule, plan.epochs * steps_per_epoch))]
            history = training.fit(
                trainer, train_data, evaluation_data,
                epochs=plan.epochs,
                steps_per_epoch=steps_per_epoch,
                run_dir=args.output_dir,
                evaluation_steps=args.eval_steps,
                verbose=args.verbose,
                checkpoint_epochs=args.checkpoint_epochs,
                checkpoint_steps=args.checkpoint_steps,
                extra_callbacks=schedule_callbacks,
            )
    except (training.CheckpointError, training.NonFiniteLoss) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    final = history[-1]
    trained_seconds = sum(row["train_seconds"] for row in history)
    images = plan.batch_size * steps_per_epoch * len(history)
    evaluated = split.evaluation_examples
    if spread.processes > 1:  # full batches only (see data.pipeline)
        evaluated -= evaluated % plan.batch_size
    if args.eval_steps:
        evaluated = min(evaluated, args.eval_steps * plan.batch_size)
    results = {
        "model": model.name,
        "dataset": args.dataset,
        "evaluation_split": split.evaluation,
        "evaluated_examples": evaluated,
        "epochs": final["epoch"],
        # The FINAL epoch's figures, never the best epoch's.
        "final_error": 1.0 - final["val_accuracy"],
        "final_loss": final["val_loss"],
        "final_train_error": 1.0 - final["accuracy"],
        "train_images_per_second": images / trained_seconds,
        "skip_dropped": skip_dropped,
        "mixed_precision": args.mixed_precision,
        "data": "tf.data" if arrays is None else "device-resident",
        "versions": found,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    training.save_model(model, args.output_dir)
    training.atomic_write_json(results_path, results)
    print(json.dumps({k: results[k] for k in ("epochs", "final_error", "evaluated_examples",
                                              "train_images_per_second")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
