"""Searches PyramidNet's drop rate, widening, regularization, depth and learning rate.

    python tuning/search.py --dataset cifar10 --tuner bayesian --max-trials 20 --epochs 15
    python tuning/search.py --hp depth=20 --hp regularization=sepdrop --hp alpha=24:120 \\
        --max-trials 8 --epochs 3 --steps-per-epoch 50 --retrain

The objective is the FINAL epoch's validation accuracy on a seeded,
stratified hold-out of `--validation-examples` images of the TRAINING split;
the test split is used once, by `--retrain` (the best configuration trained
on the whole training split; a source without a test split is evaluated on
the hold-out, and retrain.json names which).
Run the same command again to resume: finished trials are kept. The report
(results.csv/.json, objective.png, best_hparams.json for `train.py --hparams`)
goes to DIRECTORY/PROJECT_NAME/.

Distributed (KerasTuner's own mode): run the same command on every machine
with KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set and KERASTUNER_TUNER_ID
`chief` on one machine (it runs the oracle and writes the report) and
`tuner0`, `tuner1`, ... on the workers (they train the trials).
"""

import argparse
import json
import os
import sys

# The programs share their argument types (applications/arguments.py); they
# cannot live in the library, whose import would make --help wait for Keras.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "applications"))
import arguments as cli  # noqa: E402
import shared_flags  # noqa: E402

# Keras and the library are imported after parsing: --help answers at once.
# Library arguments named otherwise here -> this program's flags (the rest by name).
RENAMED = {"space": "--hp"}


def hp_override(text):
    name, separator, spec = text.partition("=")
    if not separator or not name or not spec:
        raise argparse.ArgumentTypeError(f"expected NAME=SPEC (e.g. alpha=48, alpha=24:96, "
                                         f"regularization=drop,sepdrop), got {text!r}")
    return name.strip(), spec.strip()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--tuner", choices=cli.CHOICES["tuner"], default="random")
    parser.add_argument("--max-trials", type=cli.positive_int, default=10,
                        help="trials in all (random, bayesian); hyperband sizes itself")
    parser.add_argument("--epochs", type=cli.positive_int, default=10,
                        help="epochs per trial (hyperband: the most epochs of a trial)")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, default=None,
                        help="limit each epoch (short trials); default: one pass")
    parser.add_argument("--validation-examples", type=cli.positive_int, default=None,
                        help="a seeded, stratified hold-out of N training images is the "
                             "validation split (default: a tenth of the training split, at "
                             "most 5,000: CIFAR's 5,000; a 200-image folder's 20)")
    parser.add_argument("--validation-steps", type=cli.positive_int, default=None,
                        help="limit each validation to this many batches")
    parser.add_argument("--hp", type=hp_override, action="append", default=[],
                        metavar="NAME=SPEC",
                        help="fix (alpha=48), narrow (alpha=24:96) or restrict "
                             "(regularization=drop,sepdrop) a hyperparameter; repeatable")
    parser.add_argument("--directory", default="tuning_runs")
    parser.add_argument("--project-name", default=None, help="default: pyramidnet-DATASET")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an existing search of the same project")
    shared_flags.add_data_arguments(parser)
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--retrain", action="store_true",
                        help="train the best configuration on the whole training set "
                             "(--steps-per-epoch, if given, limits its epochs too), then "
                             "measure its test error once")
    parser.add_argument("--retrain-epochs", type=cli.positive_int, default=None,
                        help="default: the paper's (300)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    return parser, parser.parse_args(argv)


def settings_of(args):
    """The parsed flags as `SearchSettings` (each flag fills the field of its name)."""
    import dataclasses

    from keras_pyramid.tuning.search import SearchSettings

    named = {field.name: getattr(args, field.name)
             for field in dataclasses.fields(SearchSettings) if hasattr(args, field.name)}
    return SearchSettings(**{**named, "space": dict(args.hp)})


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid.training import fit, interrupts, run_data
    from keras_pyramid.training.run_dir import ConfigError
    from keras_pyramid.tuning import hypermodel, search
    from keras_pyramid.tuning import report as tuning_report

    flags = shared_flags.flags_of(parser, RENAMED)
    settings = settings_of(args)
    try:
        with interrupts.handling_signals():
            outcome = search.run_search(settings)
            if outcome.best is None:
                return 0  # a worker: the chief holds the oracle and writes the report
            paths = tuning_report.write_report(outcome.project_dir, outcome.rows, outcome.best,
                                               search.OBJECTIVE)
            print(f"best: {json.dumps(outcome.best)}")
            print("report: " + ", ".join(paths.values()))
            if args.retrain:
                result = search.retrain(settings, outcome)
    except ConfigError as error:
        shared_flags.refuse(parser, error, flags)
    except hypermodel.NoCompletedTrial as error:  # a failed trial is never the best
        print(f"error: {error}. No best_hparams.json was written", file=sys.stderr)
        return 1
    except interrupts.Interrupted as stop:
        print(f"error: {stop}. Resume with the same command", file=sys.stderr)
        return stop.exit_status
    except (run_data.DataError, fit.CheckpointError, fit.NonFiniteLoss, fit.NoSpace) as error:
        print(f"error: {shared_flags.with_flags(str(error), flags)}", file=sys.stderr)
        return 2
    if args.retrain:
        evaluated = result["evaluated"]
        print(f"retrained {result['epochs']} epochs on the whole training set: "
              f"{evaluated} error {result[f'{evaluated}_error']:.4f} on "
              f"{result[f'{evaluated}_examples']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
