"""Trains a registered PyramidNet on CIFAR, any tfds dataset or a folder of images.

    python applications/train.py --model pyramidnet110_a48_sepdrop --dataset cifar10
    python applications/train.py --model pyramidnet272_a200_sepdrop --dataset cifar100 \\
        --output-dir runs/272-sepdrop-c100
    python applications/train.py --model pyramidnet110_a48_sepdrop --dataset folder:photos \\
        --weights cifar10 --recipe finetune --freeze-backbone-epochs 2
    KERAS_BACKEND=jax python applications/train.py --model pyramidnet20_a48 \\
        --epochs 2 --steps-per-epoch 20 --eval-steps 5 --no-download --data-dir DIR

Defaults are the recipe's (keras_pyramid/training/recipe.py): `--recipe paper`
is docs/architecture.md section 4 (SGD + Nesterov 0.9, batch 128, 300 epochs,
lr 0.1 / 0.5 for CIFAR-100, x0.1 at 50% and 75%, coupled weight decay 1e-4);
`--recipe finetune` is the fine-tuning recipe. Run the same command again to
resume from the last checkpoint with the very next batch; `--restart` starts
over. This program parses, runs `keras_pyramid.training.experiment.run` and
prints; the run directory's files: `keras_pyramid/training/run_layout.py`.
"""

import argparse
import json
import os
import sys

import arguments as cli
import shared_flags

# Keras and the library are imported after parsing: --help answers at once.
# Library arguments named otherwise here -> this program's flags (the rest by name).
RENAMED = {"validation": "--validation-split", "learning_rate": "--lr",
           "run_dir": "--output-dir", "flip": "--no-flip"}
DEFAULT_MODEL = "pyramidnet110_a48_sepdrop"  # RunConfig.model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=cli.HelpFormatter)
    add_model_and_data_arguments(parser)
    add_recipe_arguments(parser)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.hparams:  # a search's best values: the model, and the flags left unset
        from keras_pyramid.models import hparams

        if args.model is not None:
            parser.error("--model and --hparams both name a model: give one of them")
        try:
            args.hparams = hparams.load_hparams(args.hparams)
        except ValueError as error:
            parser.error(f"--hparams: {error}")
    args.model = args.model or DEFAULT_MODEL
    return parser, args


def add_model_and_data_arguments(parser):
    parser.add_argument("--model", type=cli.non_empty, default=None,
                        help=f"a registered name (keras_pyramid.list_models()); "
                             f"default {DEFAULT_MODEL}")
    parser.add_argument("--hparams", default=None, metavar="JSON",
                        help="a search's best_hparams.json: the model (depth, alpha, "
                             "regularization, drop rate), --lr and --batch-size; "
                             "explicit flags win")
    shared_flags.add_data_arguments(parser, npz=True)
    parser.add_argument("--image-size", type=cli.image_size, default=None, metavar="N|H,W",
                        help="default: the dataset's own fixed size, else the variant's "
                             "(32 CIFAR, 224 ImageNet)")
    parser.add_argument("--augment", choices=cli.CHOICES["augment"], default=None,
                        help="default: cifar (pad, crop, flip) up to 64 px, else imagenet "
                             "(random resized crop, flip; centre crop at evaluation)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="the augmentation's random horizontal flip; --no-flip for data "
                             "whose mirror image means something else (digits, text)")
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--validation-split", type=cli.holdout_fraction, default=None,
                         metavar="F", help="a seeded, stratified hold-out of the training "
                         "split for per-epoch evaluation (default: 0.1 when the data has no "
                         "test split, else none: the test split is evaluated once, at the end)")
    holdout.add_argument("--validation-examples", type=cli.positive_int, default=None,
                         metavar="N", help="the hold-out as a count instead of a fraction")
    parser.add_argument("--label-noise", type=cli.drop_probability, default=0.0, metavar="RATE",
                        help="replace each training label by a uniformly drawn OTHER class "
                             "with this probability (seeded, fixed for the run)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="leave undecodable files of a folder out (counted) instead of "
                             "stopping")
    parser.add_argument("--weights", default=None,
                        help="fine-tune from: a trained-weights tag (cifar10, cifar100, svhn, "
                             "imagenet), a .keras or .weights.h5 file, or a run directory; "
                             "the head is replaced when the class count differs")
    parser.add_argument("--freeze-backbone-epochs", type=cli.non_negative_int, default=None,
                        metavar="N", help="with --weights: train only the head for N epochs "
                        "(BatchNorm in inference mode), then everything; default: the "
                        "recipe's (finetune: the first sixth of the epochs)")


def add_recipe_arguments(parser):
    shared_flags.add_budget_arguments(parser,
                                      recipe_help="default: finetune with --weights, else paper")
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


def add_run_arguments(parser):
    parser.add_argument("--output-dir", type=cli.non_empty, default=None,
                        help="run directory (default: runs/MODEL-DATASET)")
    parser.add_argument("--mixed-precision", nargs="?", const="bfloat16", default="auto",
                        choices=cli.CHOICES["mixed_precision"],
                        help="auto: bfloat16 on GPUs that have it, else off "
                             "(keras_pyramid/training/device.py); bare flag: bfloat16")
    parser.add_argument("--jit-compile", choices=cli.CHOICES["jit_compile"], default="auto")
    parser.add_argument("--skip-dropped", choices=cli.CHOICES["skip_dropped"], default="auto",
                        help="do not compute a dropped unit's branch (same training, less "
                             "work); auto: on where measured faster (without XLA, one device)")
    parser.add_argument("--distribute", choices=cli.CHOICES["distribute"], default="auto",
                        help="data-parallel over all visible devices (jax, tensorflow; "
                             "TF_CONFIG for several machines; it needs more than one); "
                             "auto: when there are several")
    parser.add_argument("--sync-batch-norm", action="store_true",
                        help="tensorflow replicas: BatchNorm statistics over the global batch "
                             "(jax always does; default per replica, as the papers' runs)")
    parser.add_argument("--checkpoint-epochs", type=cli.positive_int, default=1, metavar="N",
                        help="checkpoint every N epochs (and after the last); default 1")
    parser.add_argument("--checkpoint-steps", type=cli.positive_int, default=None, metavar="N",
                        help="also checkpoint every N steps within epochs: a crash then loses "
                             "at most N steps, and the run resumes at the very next batch")
    parser.add_argument("--checkpoint-minutes", type=cli.non_negative_float, default=10.0,
                        metavar="M", help="also checkpoint after every M minutes of training "
                        "(0: not by time); Ctrl-C and SIGTERM checkpoint at the current step")
    parser.add_argument("--restart", action="store_true", help="discard the run directory")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)


def run_config(args):
    """The parsed flags as a RunConfig (None falls through to the recipe's
    defaults): each flag fills the field of its name, and these few others."""
    import dataclasses

    from keras_pyramid.training.config import RunConfig, with_hparams

    named = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
             if hasattr(args, f.name)}
    validation = next((v for v in (args.validation_examples, args.validation_split)
                       if v is not None), None)
    config = RunConfig(**{**named, "learning_rate": args.lr, "validation": validation,
                          "recipe": args.recipe or ("finetune" if args.weights else "paper")})
    return with_hparams(config, args.hparams) if args.hparams else config


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid.training import config as run_config_module
    from keras_pyramid.training import experiment, fit, interrupts, run_data, run_layout
    from keras_pyramid.training.run_dir import ConfigError

    flags = shared_flags.flags_of(parser, {**RENAMED, **({"validation": "--validation-examples"}
                                                if args.validation_examples is not None else {})})
    config = run_config(args)
    try:
        run_dir = args.output_dir or run_config_module.default_run_dir(config)
        with interrupts.handling_signals():
            results = experiment.run(
                config, run_dir, restart=args.restart,
                print_function=lambda text: print(shared_flags.with_flags(text, flags), flush=True))
    except ConfigError as error:
        shared_flags.refuse(parser, error, flags)
    except interrupts.Interrupted as stop:
        print(f"error: {stop}. Resume with: {shared_flags.resume_command(__file__, argv)}",
              file=sys.stderr)
        return stop.exit_status
    except (run_data.DataError, fit.CheckpointError, fit.NonFiniteLoss, fit.NoSpace) as error:
        print(f"error: {shared_flags.with_flags(str(error), flags)}", file=sys.stderr)
        return 2
    results_path = os.path.join(run_dir, run_layout.RESULTS_FILE)
    if results.get("already_finished"):
        print(f"{run_dir} already finished: {results_path} (--restart to redo)")
        return 0
    print(json.dumps({k: results[k] for k in ("epochs", "final_error", "evaluated_examples",
                                              "train_images_per_second")}))
    print(f"run directory: {run_dir} ({run_layout.MODEL_FILE}, {run_layout.RESULTS_FILE}, "
          f"{run_layout.HISTORY_CSV}, {run_layout.CURVES_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
