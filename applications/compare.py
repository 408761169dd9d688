"""Compares candidates against your current model on your data: over seeds,
with training and serving cost, in one report.

    python applications/compare.py --dataset folder:~/photos \\
        --candidates pyramidnet110_a48_sepdrop pyramidnet110_a48 keras:MobileNetV3Small \\
        current.keras --baseline current.keras --seeds 5 --epochs 30 \\
        --output compare_runs/photos
    python applications/compare.py --output compare_runs/photos --report-only

Candidates: a registered name (NAME@TAG: fine-tuned from its trained
weights), keras:NAME (a keras.applications builder; keras:NAME@imagenet),
a .keras file (trained from its weights, head replaced when the class count
differs), as-is:FILE.keras (evaluated and costed, not trained). Every cell
(candidate, noise rate, seed) is one run directory under OUTPUT/cells; run
the same command again to resume; more seeds, rates or candidates extend
it; other settings are refused. Distributed: KerasTuner's environment
variables (KERASTUNER_TUNER_ID chief / tuner0 ..., KERASTUNER_ORACLE_IP,
KERASTUNER_ORACLE_PORT), as for tuning/search.py. Writes OUTPUT/report.md,
report.html and comparison.json (keras_pyramid/compare/comparison.py).
"""

import argparse
import shlex
import sys

import arguments as cli
import shared_flags

# Library arguments named otherwise here -> this program's flags (the rest by name):
# a cell's run directory is under --output; a candidate's model, weights and
# input size are in its name.
RENAMED = {"learning_rate": "--lr", "run_dir": "--output", "image_size": "--candidates",
           "weights": "--candidates", "model": "--candidates"}


def parse_args(argv=None):
    description, example = __doc__.split("\n\n")[:2]
    parser = argparse.ArgumentParser(description=" ".join(description.split()),
                                     epilog=f"example:\n{example}",
                                     formatter_class=cli.HelpFormatter)
    what = parser.add_argument_group("what is compared")
    what.add_argument("--dataset", type=cli.dataset, help="cifar10, tfds:NAME, folder:PATH "
                      "or a folder (required unless --report-only)")
    what.add_argument("--data-dir", default=None, help="tfds data dir")
    what.add_argument("--no-download", dest="download", action="store_false")
    what.add_argument("--candidates", nargs="+", type=cli.non_empty, metavar="CANDIDATE",
                      help="at least 2: NAME[@TAG], keras:NAME[@imagenet], FILE.keras, "
                           "as-is:FILE.keras")
    what.add_argument("--baseline", type=cli.non_empty, help="the candidate the others are "
                      "measured against (default: the first)")
    what.add_argument("--seeds", type=cli.positive_int, default=5, help="seeds 0..N-1: "
                      "each gives every candidate the same data order and augmentation")
    what.add_argument("--label-noise", type=cli.noise_rates, default=(0.0,), metavar="RATES",
                      help="comma-separated rates of training labels replaced, e.g. 0,0.2,0.4")
    what.add_argument("--margin", type=cli.non_negative_float, default=0.0, metavar="POINTS",
                      help="a difference within +-POINTS of error is no difference: each "
                           "candidate's decision is better, worse, equivalent or inconclusive")
    budget = parser.add_argument_group("the budget, the same for every candidate")
    shared_flags.add_budget_arguments(budget, recipe_help="default: paper")
    budget.add_argument("--train-examples", type=cli.positive_int, default=None,
                        help="a stratified subset of the training split (drawn by "
                             "--split-seed)")
    budget.add_argument("--validation", type=cli.holdout_fraction, default=None,
                        help="hold-out fraction or count, evaluated every epoch for the "
                             "learning curves (default: 0.1 when the data has no test split; "
                             "else none, and the curves are the training batches' error)")
    budget.add_argument("--split-seed", type=cli.seed, default=0, help="draws the hold-out "
                        "and --train-examples, never the training seeds")
    budget.add_argument("--image-size", type=cli.image_size, default=None,
                        help="every candidate's input size (default: the data's own, else "
                             "the baseline's)")
    run = parser.add_argument_group("the run")
    run.add_argument("--output", required=True, type=cli.non_empty, help="the comparison's "
                     "folder")
    run.add_argument("--report-only", action="store_true", help="rebuild the report from the "
                     "run directories; train and measure nothing")
    run.add_argument("--serving-requests", type=cli.non_negative_int, default=500,
                     help="batch-1 requests timed per runtime (0: serving not measured)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (cells, size, "
                     "estimated time) and stop; nothing is written")
    run.add_argument("--no-estimate", dest="estimate", action="store_false",
                     help="skip timing a few steps per candidate before the first cell")
    run.add_argument("--cells-in-process", dest="fresh_process", action="store_false",
                     help="train every cell in this process, not each in a fresh one (faster "
                          "to start; the memory figures then carry earlier cells')")
    run.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    args = parser.parse_args(argv)
    if not args.report_only:
        if args.dataset is None or not args.candidates:
            parser.error("--dataset and --candidates are required (or --report-only)")
        args.baseline = args.baseline or args.candidates[0]
    return parser, args


def settings_of(args):
    from keras_pyramid.compare.cells import Settings
    from keras_pyramid.training.config import RunConfig

    run = RunConfig(
        dataset=args.dataset, data_dir=args.data_dir, download=args.download,
        validation=args.validation, split_seed=args.split_seed,
        train_examples=args.train_examples, image_size=args.image_size,
        recipe=args.recipe or "paper",
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=args.weight_decay, steps_per_epoch=args.steps_per_epoch,
        eval_steps=args.eval_steps)
    return Settings(run, candidates=list(args.candidates), baseline=args.baseline,
                    seeds=args.seeds, noise_rates=tuple(args.label_noise),
                    margin=args.margin / 100, fresh_process=args.fresh_process)


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid.compare import comparison, runner
    from keras_pyramid.training import fit, interrupts
    from keras_pyramid.training.run_data import DataError
    from keras_pyramid.training.run_dir import ConfigError

    flags = shared_flags.flags_of(parser, RENAMED)

    def say(text):
        print(shared_flags.with_flags(text, flags), flush=True)

    command = shlex.join(["python", "applications/compare.py",
                          *(sys.argv[1:] if argv is None else argv)])
    try:
        with interrupts.handling_signals():
            if args.report_only:
                record = comparison.rebuild(args.output, 0, say, command)
            else:
                record = comparison.compare(settings_of(args), args.output, say, args.verbose,
                                            args.serving_requests, command, args.estimate,
                                            args.dry_run)
    except ConfigError as error:
        shared_flags.refuse(parser, error, flags)
    except interrupts.Interrupted as stop:
        print(f"error: {stop}. Resume with: {command}", file=sys.stderr)
        return stop.exit_status
    except (DataError, fit.CheckpointError, fit.NonFiniteLoss, fit.NoSpace,
            runner.CellFailed) as error:
        print(f"error: {shared_flags.with_flags(str(error), flags)}", file=sys.stderr)
        return 2
    if record is None:
        say("worker done: the chief writes the report")
        return 0
    if args.dry_run:
        return 0
    for accuracy in record["accuracy"]:
        for figures in accuracy["against_baseline"].values():
            say(f"noise {accuracy['noise']:g}: {figures['verdict']}")
    say(f"report: {args.output}/report.md, report.html, comparison.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
