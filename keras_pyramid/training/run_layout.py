"""Every name a program writes in a folder it owns, and which program owns a folder.

    run directory (train.py; a comparison's cell; a search's retrain):
        .lock args.json data.json checkpoint/ tensorboard/ history.csv history.json
        curves.png model.keras results.json, a cell's cost.json and per_class.json,
        evaluate.py's evaluation-SPLIT.json and confusion-SPLIT.png, and the
        tmp-PID-NAME file of a write a killed process left
    comparison (compare.py --output):  compare.json and what it adds beside it
    search (tuning/search.py):         search.json, KerasTuner's oracle.json

A folder belongs to the program whose signature file it holds (args.json,
compare.json, search.json or oracle.json). Programs refuse a folder that
belongs to another (resuming into it would overwrite its records), and
`--restart` deletes only the names above, only in a run directory: a folder
of the user's own files is never emptied.
"""

import fnmatch
import os
import re

ARGS_FILE = "args.json"
DATA_FILE = "data.json"
RESULTS_FILE = "results.json"
MODEL_FILE = "model.keras"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"
COMPARISON_FILE = "compare.json"
SEARCH_FILE = "search.json"
ORACLE_FILE = "oracle.json"

# What a run writes in its directory (fnmatch patterns); --restart removes these only.
RUN_WRITES = (LOCK_FILE, ARGS_FILE, DATA_FILE, RESULTS_FILE, MODEL_FILE, CHECKPOINT_DIR,
              TENSORBOARD_DIR, HISTORY_CSV, HISTORY_JSON, CURVES_FILE, "cost.json",
              "per_class.json", "evaluation-*.json", "confusion-*.png")
# A killed write's leftover (utils.files.temporary_path): tmp-PID-NAME, the PID in digits.
TEMPORARY = re.compile(r"tmp-\d+-.+")
# The file that marks a folder as a program's, and how a message names that program.
SIGNATURES = {ARGS_FILE: "a training run", COMPARISON_FILE: "a comparison (compare.py)",
              SEARCH_FILE: "a search (tuning/search.py)", ORACLE_FILE: "a KerasTuner search"}
RUN = SIGNATURES[ARGS_FILE]
COMPARISON = SIGNATURES[COMPARISON_FILE]


def owner(folder):
    """What `folder` holds, by its signature file ("a training run", ...), or None."""
    for name, kind in SIGNATURES.items():
        if os.path.isfile(os.path.join(folder, name)):
            return kind
    return None


def is_run_file(name):
    return (any(fnmatch.fnmatchcase(name, pattern) for pattern in RUN_WRITES)
            or TEMPORARY.fullmatch(name) is not None)


def run_entries(folder):
    """The names in `folder` that a run writes ([] for a missing folder)."""
    return [name for name in _listing(folder) if is_run_file(name)]


def other_entries(folder):
    """The names in `folder` that no run writes: the user's own."""
    return [name for name in _listing(folder) if not is_run_file(name)]


def describe_entries(folder, names, shown=4):
    """"thesis.txt, photos/ and 3 more": the first `shown` names, folders with a slash."""
    labels = [name + ("/" if os.path.isdir(os.path.join(folder, name)) else "")
              for name in sorted(names)]
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" and {more} more" if more > 0 else "")


def _listing(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []
