"""Every command-line program refuses bad input with a one-line error naming
it, exit status 2 and no traceback: train, evaluate, export, search."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, tiny_model

PROGRAMS = {
    "train": os.path.join(REPO, "applications", "train.py"),
    "evaluate": os.path.join(REPO, "applications", "evaluate.py"),
    "export": os.path.join(REPO, "applications", "export.py"),
    "search": os.path.join(REPO, "tuning", "search.py"),
}

# (program, arguments, text the error must contain). DATA is the real tfds
# dir, EMPTY a folder without any dataset, FILE a plain file (a directory
# cannot be created under it), TINY a saved 16x16 model.
CASES = [
    ("train", ["--model", "pyramidnet7"], "unknown --model 'pyramidnet7'"),
    ("train", ["--epochs", "-1"], "--epochs: must be an int >= 1, got -1"),
    ("train", ["--drop-rate", "1.0"], "--drop-rate must be in [0, 1), got 1.0"),
    ("train", ["--lr", "0"], "--lr must be > 0"),
    ("train", ["--batch-size", "0"], "--batch-size: must be an int >= 1, got 0"),
    ("train", ["--output-dir", "FILE/run"], "--output-dir FILE/run cannot be created"),
    ("train", ["--data-dir", "EMPTY"], "cifar10 is not prepared in EMPTY"),
    ("train", ["--validation-examples", "60000"], "validation_examples=60000"),
    ("evaluate", ["EMPTY/model.keras", "--dataset", "cifar10"], "is not a .keras file"),
    ("evaluate", ["TINY", "--dataset", "cifar10", "--batch-size", "0"],
     "--batch-size must be >= 1, got 0"),
    ("evaluate", ["TINY", "--dataset", "cifar10", "--data-dir", "EMPTY"],
     "cifar10 is not prepared in EMPTY"),
    ("evaluate", ["TINY", "--dataset", "cifar10"], "the model takes (16, 16, 3) images"),
    ("export", ["EMPTY/model.keras"], "no model file at"),
    ("export", ["TINY", "--version", "0"], "--version must be an int >= 1, got 0"),
    ("export", ["TINY", "--output", "FILE/x"], "cannot create the output directory"),
    ("search", ["--tuner", "grid"], "invalid choice: 'grid'"),
    ("search", ["--max-trials", "0"], "--max-trials: must be an int >= 1, got 0"),
    ("search", ["--hp", "depth=21"], "depth='21'"),
    ("search", ["--hp", "drop_rate=1.5"], "drop_rate='1.5'"),
    ("search", ["--directory", "FILE/x"], "cannot be created"),
    ("search", ["--data-dir", "EMPTY"], "cifar10 is not prepared in EMPTY"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, cifar10_tfds_dir):
    root = tmp_path_factory.mktemp("cli")
    (root / "empty").mkdir()
    (root / "file").write_text("a file, not a folder")
    tiny_model(None, classes=10).save(root / "tiny.keras")
    return {"DATA": cifar10_tfds_dir, "EMPTY": str(root / "empty"),
            "FILE": str(root / "file"), "TINY": str(root / "tiny.keras"), "ROOT": str(root)}


def substitute(text, places):
    for name in ("DATA", "EMPTY", "FILE", "TINY"):
        text = text.replace(name, places[name])
    return text


@pytest.mark.parametrize("program, arguments, expected", CASES,
                         ids=[f"{p}:{' '.join(a)}" for p, a, _ in CASES])
def test_bad_input_gets_a_one_line_error(places, program, arguments, expected):
    arguments = [substitute(a, places) for a in arguments]
    defaults = {
        "train": ["--data-dir", places["DATA"], "--no-download",
                  "--output-dir", os.path.join(places["ROOT"], "run")],
        "search": ["--data-dir", places["DATA"], "--no-download",
                   "--directory", os.path.join(places["ROOT"], "search")],
        "evaluate": ["--data-dir", places["DATA"]],
    }.get(program, [])
    finished = subprocess.run(
        [sys.executable, PROGRAMS[program], *defaults, *arguments],
        capture_output=True, text=True, timeout=300, check=False, cwd=places["ROOT"],
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert finished.returncode == 2, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr, finished.stderr[-3000:]
    errors = [line for line in finished.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, finished.stderr[-3000:]
    assert substitute(expected, places) in errors[0], errors[0]
