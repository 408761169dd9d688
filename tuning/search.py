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
import glob
import json
import os
import sys

# The programs' argument types live beside them in applications/.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "applications"))
import arguments as cli  # noqa: E402

# Keras and the library are imported after parsing: --help answers at once.
OBJECTIVE = "val_accuracy"
# Settings that define a search: resuming with other values would mix two searches.
MAX_HOLDOUT = 5000
SEARCH_DEFINING = ("tuner", "dataset", "epochs", "steps_per_epoch", "validation_examples",
                   "validation_steps", "seed", "space")


def hp_override(text):
    name, separator, spec = text.partition("=")
    if not separator or not name or not spec:
        raise argparse.ArgumentTypeError(f"expected NAME=SPEC (e.g. alpha=48, alpha=24:96, "
                                         f"regularization=drop,sepdrop), got {text!r}")
    return name.strip(), spec.strip()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=cli.HelpFormatter,
    )
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
    parser.add_argument("--dataset", type=cli.dataset, default="cifar10",
                        help="cifar10, cifar100, svhn, tfds:NAME[:VERSION] or a folder "
                             "(as train.py)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--retrain", action="store_true",
                        help="train the best configuration on the whole training set "
                             "(--steps-per-epoch, if given, limits its epochs too), then "
                             "measure its test error once")
    parser.add_argument("--retrain-epochs", type=cli.positive_int, default=None,
                        help="default: the paper's (300)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    args = parser.parse_args(argv)
    if args.dataset.startswith("npz:"):
        parser.error(f"--dataset {args.dataset}: a search reads tfds datasets and folders")
    if args.project_name is None:
        from keras_pyramid.data.spec import parse_dataset

        args.project_name = f"pyramidnet-{parse_dataset(args.dataset).tag}"
    return parser, args


def tuner_id():
    """`chief`, a worker id, or None outside KerasTuner's distributed mode."""
    return os.environ.get("KERASTUNER_TUNER_ID")


# The files a resumed search reads back (ours and KerasTuner's: glob patterns
# under the project directory), with how to recover from a damaged one.
START_AGAIN = "pass --overwrite to start the search again"


def read_back_files():
    """(glob pattern, how to recover) of every file a resumed search reads."""
    from keras_pyramid.tuning.hypermodel import STARTS_PER_TRIAL

    return (
        ("search.json", f"{START_AGAIN}, or choose another --project-name"),
        ("oracle.json", f"{START_AGAIN}, or choose another --project-name"),
        ("tuner*.json", f"{START_AGAIN}, or choose another --project-name"),
        ("trial_*/trial.json",
         f"delete its trial folder to run that trial again, or {START_AGAIN}"),
        (STARTS_PER_TRIAL, f"delete it (the trials' start counts begin again), or {START_AGAIN}"),
    )


def check_search_files(parser, project_dir):
    """Refuses, in one line naming the file, to resume from a file that is
    not a JSON object (a crash or a full disk truncated it): KerasTuner and
    json would stop with a traceback."""
    from keras_pyramid.utils.files import read_json

    for pattern, recovery in read_back_files():
        for path in sorted(glob.glob(os.path.join(glob.escape(project_dir), pattern))):
            try:
                content = read_json(path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                problem = f"is not readable JSON ({error})"
            else:
                if isinstance(content, dict):
                    continue
                problem = f"holds a JSON {type(content).__name__}, not an object"
            parser.error(f"{path} {problem}: the search cannot resume from it; {recovery}")


def check_or_record_search(parser, args, project_dir, settings):
    """Refuses to resume a search whose defining settings changed, or one
    whose files are damaged."""
    from keras_pyramid.training import run_layout
    from keras_pyramid.utils.files import atomic_write_json, read_json

    kind = run_layout.owner(project_dir)
    if kind in (run_layout.RUN, run_layout.COMPARISON):  # its records would be overwritten
        parser.error(f"--project-name: {project_dir} holds {kind}, not a search: choose another "
                     "--directory or --project-name")
    path = os.path.join(project_dir, run_layout.SEARCH_FILE)
    if not args.overwrite:
        check_search_files(parser, project_dir)
    if os.path.exists(path) and not args.overwrite:
        previous = read_json(path)
        changed = [k for k in SEARCH_DEFINING if previous.get(k) != settings.get(k)]
        if changed:
            details = "; ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}"
                                for k in changed)
            parser.error(f"{project_dir} holds a search with other settings ({details}). "
                         "Pass --overwrite to discard it or choose another --project-name")
    if tuner_id() in (None, "chief"):
        try:
            os.makedirs(project_dir, exist_ok=True)
        except OSError as error:
            parser.error(f"--directory: {project_dir} cannot be created: {error.strerror}")
        atomic_write_json(path, settings)


def make_tuner(args, hypermodel, space):
    import keras_tuner as kt

    from keras_pyramid.tuning.hypermodel import guarded

    common = {
        "objective": kt.Objective(OBJECTIVE, direction="max"),
        "hyperparameters": space,
        "tune_new_entries": True,
        "directory": args.directory,
        "project_name": args.project_name,
        "overwrite": args.overwrite,
        "seed": args.seed,
    }
    if args.tuner == "random":
        return guarded(kt.RandomSearch)(hypermodel, max_trials=args.max_trials, **common)
    if args.tuner == "bayesian":
        return guarded(kt.BayesianOptimization)(hypermodel, max_trials=args.max_trials, **common)
    return guarded(kt.Hyperband)(hypermodel, max_epochs=args.epochs, factor=3, **common)


def retrain(args, best, project_dir, has_test=True):
    """The best configuration on the whole training set; the test split once
    (a source without one: trained without the hold-out, evaluated on it).

    Through `experiment.run`, as train.py: the same checkpoints, exact
    resume and run directory (PROJECT/retrain/), with results.json there.
    retrain.json names its figures by what was evaluated: `test_error`, or
    `holdout_error` for a source without a test split.
    """
    from keras_pyramid.training import experiment

    config = experiment.RunConfig(
        architecture={k: best[k] for k in ("depth", "alpha", "regularization")},
        model=None, dataset=args.dataset, data_dir=args.data_dir, download=args.download,
        validation=0 if has_test else args.validation_examples, epochs=args.retrain_epochs,
        learning_rate=best["learning_rate"], batch_size=best["batch_size"],
        drop_rate=best["drop_rate"], new_drop_rate=best.get("new_drop_rate"), seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, verbose=args.verbose, distribute="none")
    results = experiment.run(config, os.path.join(project_dir, "retrain"))
    evaluated = "test" if has_test else "holdout"
    result = {"hparams": best, "epochs": results["epochs"], "evaluated": evaluated,
              f"{evaluated}_error": results["final_error"],
              f"{evaluated}_loss": results["final_loss"],
              f"{evaluated}_examples": results["evaluated_examples"],
              "evaluation_split": results["evaluation_split"]}
    from keras_pyramid.utils.files import atomic_write_json

    atomic_write_json(os.path.join(project_dir, "retrain.json"), result)
    return result


def default_holdout(train_examples):
    """A tenth of the training split, at most MAX_HOLDOUT: CIFAR keeps the
    5,000 images it always had, and small data keeps most of its images."""
    return max(1, min(MAX_HOLDOUT, train_examples // 10))


def open_search_data(parser, args, space):
    """(source, splits, preprocessing) of the search: a seeded, stratified
    hold-out of the training split is its validation split."""
    from keras_pyramid import data
    from keras_pyramid.training import experiment

    data_config = experiment.RunConfig(dataset=args.dataset, data_dir=args.data_dir,
                                       download=args.download,
                                       validation=args.validation_examples or 0, seed=args.seed)
    try:
        source, splits = experiment.open_data(data_config)
        if args.validation_examples is None:  # a count, as search.json records it
            args.validation_examples = default_holdout(len(splits.train))
            print(f"hold-out: {args.validation_examples:,} of the {len(splits.train):,} "
                  "training images (a tenth, at most 5,000; --validation-examples sets it)")
            data_config.validation = args.validation_examples
            source, splits = experiment.open_data(data_config)
    except experiment.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except experiment.ConfigError as error:
        flag = "--validation-examples" if error.argument == "validation" else "--dataset"
        parser.error(f"{flag}: {error}")
    for hyperparameter in space.space:
        if hyperparameter.name == "batch_size":
            largest = max(getattr(hyperparameter, "values", None) or [hyperparameter.value])
            cli.check_batch_fits(parser, largest, len(splits.train), "training",
                                 flag="--hp batch_size")
    image_size = experiment.image_size_of(data_config, source, "cifar")
    return source, splits, data.Preprocessing(image_size, data.default_regime(image_size))


def search(args, space, project_dir, source, splits, preprocessing):
    """Runs (or resumes) the search; returns the tuner."""
    import keras

    from keras_pyramid import data
    from keras_pyramid.training import recipe
    from keras_pyramid.tuning import hypermodel as tuning

    keras.utils.set_random_seed(args.seed)
    plan = recipe.paper_recipe(args.dataset, epochs=args.epochs)
    data_format = keras.config.image_data_format()
    image_size = preprocessing.image_size
    hypermodel = tuning.PyramidHyperModel(
        classes=source.num_classes, recipe=plan, train_examples=len(splits.train),
        input_shape=(*image_size, 3) if data_format == "channels_last" else (3, *image_size),
        steps_per_epoch=args.steps_per_epoch, seed=args.seed)
    tuner = make_tuner(args, hypermodel, space)
    if tuner_id() in (None, "chief"):  # a worker's oracle is a client of the chief's
        finished = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
        if finished:
            print(f"Resuming {project_dir}: {len(finished)} finished trials kept")

    def train_data(batch_size):
        return data.training_stream(source, splits.train, preprocessing, batch_size,
                                    args.seed, data_format)

    def validation_data(batch_size):
        return data.evaluation_stream(source, splits.validation, preprocessing, batch_size,
                                      data_format)

    tuner.search(train_data, validation_data=validation_data, epochs=args.epochs,
                 validation_steps=args.validation_steps, verbose=args.verbose)
    return tuner


def main(argv=None):
    parser, args = parse_args(argv)
    from keras_pyramid.tuning import hypermodel as tuning
    from keras_pyramid.tuning import report as tuning_report

    try:
        space = tuning.search_space(dict(args.hp))
    except ValueError as error:
        parser.error(f"--hp: {error}")
    source, splits, preprocessing = open_search_data(parser, args, space)
    project_dir = os.path.join(args.directory, args.project_name)
    settings = {k: v for k, v in vars(args).items() if k in SEARCH_DEFINING}
    settings["space"] = dict(sorted(args.hp))  # as typed: readable in the error below
    check_or_record_search(parser, args, project_dir, settings)
    tuner = search(args, space, project_dir, source, splits, preprocessing)
    if tuner_id() not in (None, "chief"):
        return 0  # a worker: the chief holds the oracle and writes the report

    rows = tuning_report.trial_rows(tuner.oracle)
    print(tuning_report.format_table(rows, OBJECTIVE))
    try:
        best = tuning.best_hparams(tuner)
    except tuning.NoCompletedTrial as error:  # a failed trial is never the best
        print(f"error: {error}. No best_hparams.json was written", file=sys.stderr)
        return 1
    paths = tuning_report.write_report(project_dir, rows, best, OBJECTIVE)
    print(f"best: {json.dumps(best)}")
    print("report: " + ", ".join(paths.values()))
    if args.retrain:
        result = retrain(args, best, project_dir, splits.test is not None)
        evaluated = result["evaluated"]
        print(f"retrained {result['epochs']} epochs on the whole training set: "
              f"{evaluated} error {result[f'{evaluated}_error']:.4f} on "
              f"{result[f'{evaluated}_examples']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
