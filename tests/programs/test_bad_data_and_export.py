"""Bad data files, damaged search files and out-of-range flags get a one-line error:
train.py `--dataset npz:` (truncated, mismatched, labels outside 0..classes-1),
search.py's JSON files read back on resume, demo.py's and export.py's numeric
flags; and export.py's default output folder.

As in test_command_line_errors.py, one table drives the errors: the program
runs in this process (`main(argv)`), must exit with status 2 and print exactly
one "error:" line holding the expected text, and nothing may be written. Every
case is argument parsing or a file check done before any model is built, pure
Python: they run once, under tensorflow.
"""

import os
import shutil

import keras
import numpy as np
import pytest
from helpers.data import write_image_folder
from helpers.models import tiny_model
from helpers.paths import REPO
from helpers.programs import load_program, refusal

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="pure Python: runs once, under tensorflow")

PROGRAMS = {
    "train": os.path.join(REPO, "applications", "train.py"),
    "search": os.path.join(REPO, "tuning", "search.py"),
    "demo": os.path.join(REPO, "applications", "demo.py"),
    "export": os.path.join(REPO, "applications", "export.py"),
}
IMAGES = np.zeros((12, 8, 8, 3), np.uint8)
LABELS = np.arange(12) % 3
# name: the arrays of an .npz whose loading must fail (ROOT/NAME.npz).
BAD_NPZ = {
    "mismatched": dict(x_train=IMAGES, y_train=LABELS[:10], x_test=IMAGES, y_test=LABELS),
    "negative": dict(x_train=IMAGES, y_train=LABELS - 1, x_test=IMAGES, y_test=LABELS),
    "beyond": dict(x_train=IMAGES, y_train=LABELS, x_test=IMAGES, y_test=LABELS + 1,
                   class_names=np.array(["a", "b", "c"])),
    "fractional": dict(x_train=IMAGES, y_train=LABELS + 0.5, x_test=IMAGES, y_test=LABELS),
}
# A search's project folder (ROOT/search/PROJECT) with one damaged file each.
PROJECT = "pyramidnet-folder"
DAMAGED_SEARCH_FILES = {
    "search.json": '{"tuner": "random", "epo',  # truncated by a crash
    "oracle.json": "",
    "trial_0001/trial.json": "\x00\x00\x00",
    "starts_per_trial.json": "[1, 2]",  # valid JSON, but not the object it must be
}
SEARCH = ["--dataset", "FOLDER", "--validation-examples", "5", "--directory", "ROOT/search",
          "--project-name", PROJECT]

CASES = [
    ("train", ["--dataset", "npz:ROOT/truncated.npz"],
     "--dataset: ROOT/truncated.npz is not a readable .npz file (truncated or corrupt?)"),
    ("train", ["--dataset", "npz:ROOT/mismatched.npz"],
     "x_train has 12 images but y_train has 10 labels"),
    ("train", ["--dataset", "npz:ROOT/negative.npz"],
     "ROOT/negative.npz: y_train has 4 labels outside 0..2 (the 3 classes): -1"),
    ("train", ["--dataset", "npz:ROOT/beyond.npz"],
     "ROOT/beyond.npz: y_test has 4 labels outside 0..2 (the 3 classes): 3"),
    ("train", ["--dataset", "npz:ROOT/fractional.npz"],
     "ROOT/fractional.npz: y_train must hold integer class indices"),
    ("demo", ["--batch-size", "0"], "--batch-size: must be an int >= 1, got 0"),
    ("demo", ["--batch-size", "-1"], "--batch-size: must be an int >= 1, got -1"),
    ("demo", ["--classes", "0"], "--classes: must be an int >= 1, got 0"),
    ("demo", ["--classes", "-5"], "--classes: must be an int >= 1, got -5"),
    ("export", ["ROOT/tiny.keras", "--check-images", "2000000000"],
     "--check-images: must be at most 256 (the check runs them in one batch), got 2000000000"),
    ("export", ["ROOT/tiny.keras", "--check-images", "-1"],
     "--check-images: must be an int >= 0, got -1"),
] + [
    ("search", [*SEARCH, "--project-name", f"damaged-{index}"],
     f"ROOT/search/damaged-{index}/{name} is not readable JSON (")
    for index, name in enumerate(DAMAGED_SEARCH_FILES) if not name.startswith("starts")
] + [
    ("search", [*SEARCH, "--project-name", "damaged-3"],
     "ROOT/search/damaged-3/starts_per_trial.json holds a JSON list, not an object: the search "
     "cannot resume from it; delete it (the trials' start counts begin again), or pass "
     "--overwrite to start the search again"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """ROOT: the bad .npz files, a truncated one, a small image folder, a
    tiny model, and one damaged search project per file a search reads back."""
    root = tmp_path_factory.mktemp("bad-data")
    for name, arrays in BAD_NPZ.items():
        np.savez(root / f"{name}.npz", **arrays)
    whole = (root / "mismatched.npz").read_bytes()
    (root / "truncated.npz").write_bytes(whole[:len(whole) // 2])  # an interrupted copy
    write_image_folder(root / "folder", range(3), 5, odd=False)
    tiny_model(None, classes=10).save(root / "tiny.keras")
    for index, (name, text) in enumerate(DAMAGED_SEARCH_FILES.items()):
        path = root / "search" / f"damaged-{index}" / name
        path.parent.mkdir(parents=True)
        path.write_text(text)
    return str(root)


def substitute(text, root):
    return text.replace("ROOT", root).replace("FOLDER", os.path.join(root, "folder"))


def listing(folder):
    """Every path under `folder`: what a refused command must leave as it was."""
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)


@pytest.mark.parametrize("program, arguments, expected", CASES,
                         ids=[f"{p}:{' '.join(a[-2:])}" for p, a, _ in CASES])
def test_bad_data_and_flags_get_a_one_line_error(root, program, arguments, expected, capsys,
                                                 monkeypatch):
    arguments = [substitute(a, root) for a in arguments]
    defaults = {"train": ["--no-download", "--output-dir", os.path.join(root, "run")],
                "search": ["--no-download"]}.get(program, [])
    monkeypatch.chdir(root)  # export.py's default output would land here
    before = listing(root)
    error = refusal(PROGRAMS[program], [*defaults, *arguments], capsys)
    assert substitute(expected, root) in error, error
    assert listing(root) == before, "a refused command wrote a file"


@pytest.mark.parametrize("model, output", [
    ("runs/digits", "exports/digits"),
    ("runs/digits/", "exports/digits"),
    ("runs/faces/model.keras", "exports/faces"),  # a run directory's own model file
    ("downloads/flowers-v2.keras", "exports/flowers-v2"),
])
def test_the_default_output_is_named_after_the_run(model, output, tmp_path, monkeypatch):
    """Two runs of one architecture get two serving folders (named after the
    architecture, TF Serving served the faces model as version 2 of the digits one)."""
    monkeypatch.chdir(tmp_path)
    os.makedirs(tmp_path / "runs" / "digits")
    program = load_program(PROGRAMS["export"])
    assert program.default_output(model) == output
    assert program.parse_args([model]).output is None  # the default comes from the model path


def test_two_runs_of_one_model_export_to_two_folders(root, tmp_path, monkeypatch, capsys):
    """export.py RUN_DIR, for two runs of the same architecture: each gets
    exports/RUN_NAME (the export itself is tested in tests/test_export.py)."""
    from keras_pyramid import export as exporting

    written = []
    monkeypatch.setattr(exporting, "export",
                        lambda model, output, version, **_: written.append(output) or output)
    monkeypatch.chdir(tmp_path)
    program = load_program(PROGRAMS["export"])
    for run in ("digits", "faces"):
        os.makedirs(tmp_path / "runs" / run)
        shutil.copy(os.path.join(root, "tiny.keras"), tmp_path / "runs" / run / "model.keras")
        assert program.main([f"runs/{run}", "--check-images", "0"]) == 0, capsys.readouterr()
    assert written == [os.path.join("exports", "digits"), os.path.join("exports", "faces")]
