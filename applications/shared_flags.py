"""What the command-line programs share beyond argument types: the flag
groups several of them take, the command that resumes a run, and the
library's arguments shown as this program's flags.

The library names its ARGUMENTS in its messages, in backticks
("pass `data_dir`", "run again with `restart`"); each program turns those it
has into its flags (`flags_of`, `with_flags`, `refuse`). Like arguments.py,
nothing here imports Keras: `--help` answers at once.
"""

import argparse
import shlex
import sys

import arguments as cli


def add_data_arguments(parser, npz=False, download=True):
    """--dataset, --data-dir and --download, as every program that reads data takes them."""
    parser.add_argument("--dataset", type=cli.dataset, default="cifar10",
                        help="cifar10, cifar100, svhn, tfds:NAME[:VERSION] (any tfds image "
                             "classification set), a folder (PATH or folder:PATH: one "
                             "subfolder per class, or train/ + test/ trees of that shape)" +
                             (", or npz:PATH (arrays kept on the device: no TensorFlow "
                              "needed)" if npz else ""))
    parser.add_argument("--data-dir", default=None,
                        help="tfds data dir (default: tfds' own, or TFDS_DATA_DIR)")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=download,
                        help="let tfds download the dataset when it is missing")


def add_budget_arguments(parser, recipe_help):
    """--recipe and the budget flags that override its values, as RunConfig
    takes them (None: the recipe's), and the steps that shorten a run."""
    parser.add_argument("--recipe", choices=cli.CHOICES["recipe"], default=None, help=recipe_help)
    parser.add_argument("--epochs", type=cli.positive_int, default=None,
                        help="default: the recipe's (300 paper, 30 finetune; docs/training.md)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=None,
                        help="default: the recipe's (128 paper, 64 finetune), halved on a "
                             "small training split until an epoch has 10 steps (the learning "
                             "rate scaled with it)")
    parser.add_argument("--lr", type=cli.positive_float, default=None,
                        help="initial learning rate (default: the recipe's)")
    parser.add_argument("--weight-decay", type=cli.non_negative_float, default=None,
                        help="coupled L2 on every parameter (default: the recipe's, 1e-4)")
    parser.add_argument("--steps-per-epoch", type=cli.positive_int, default=None,
                        help="limit each epoch (short runs); default: one pass")
    parser.add_argument("--eval-steps", type=cli.positive_int, default=None,
                        help="limit each evaluation to this many batches (smoke runs)")


def resume_command(program, argv=None):
    """The command that resumes a run of `program`: the same one, without --restart."""
    arguments = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--restart"]
    return shlex.join(["python", sys.argv[0] if argv is None else program, *arguments])


def flags_of(parser, renames=None):
    """{argument: flag} of `parser`: each option's destination to its first
    long flag (and "DEST=False" to its --no- flag), then `renames` (an
    argument named otherwise in the library, e.g. {"run_dir": "--output-dir"})
    on top."""
    flags = {}
    for action in parser._actions:  # argparse has no public list of its options
        long_flags = [s for s in action.option_strings if s.startswith("--")]
        if long_flags:
            flags[action.dest] = long_flags[0]
        flags.update({f"{action.dest}=False": s for s in long_flags if s.startswith("--no-")})
    return {**flags, **(renames or {})}


def with_flags(message, flags):
    """A library message with each `argument` it names (in backticks) given
    as this program's flag, where the program has one (`flags`: argument ->
    flag, `flags_of`); the library names its arguments, the program its flags."""
    for argument, flag in flags.items():
        message = message.replace(f"`{argument}`", flag)
    return message


def refuse(parser, error, flags):
    """Exits with "FLAG: MESSAGE" (argparse's usage error, exit status 2) for a
    library error naming its argument (`error.argument`), both as flags."""
    flag = flags.get(error.argument, "--" + error.argument.replace("_", "-"))
    message, subject = str(error), f"`{error.argument}`"
    # "--weights: `weights` is ...": the flag says where, the subject stays the argument.
    start = subject if message.startswith(subject) else ""
    parser.error(f"{flag}: {start}{with_flags(message[len(start):], flags)}")
