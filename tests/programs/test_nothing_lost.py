"""Nothing of the user's is lost, nothing silently wrong (issue 30): train.py's
`--restart` deletes only a run's files and only in a run directory, each
program refuses a folder that belongs to another, a damaged checkpoint record
is one line, and a search whose trials all failed has no best.

Every refusal here happens before a tensor exists (the folder's files are
read, nothing is built): pure Python, so these run once, under tensorflow.
The search's failed trial fails on its data before building its model.
"""

import hashlib
import json
import os

import keras
import pytest
from helpers.paths import REPO, TINY_HPARAMS
from helpers.programs import load_program, refusal

from keras_pyramid.training import run_dir as run_dir_module

TRAIN = os.path.join(REPO, "applications", "train.py")
SEARCH = os.path.join(REPO, "tuning", "search.py")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="folders and records, read before any tensor: pure "
                                       "Python, run once, under tensorflow")


def contents(folder):
    """{relative path: SHA-256} of every file under `folder`."""
    return {os.path.relpath(os.path.join(root, name), folder):
            hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest()
            for root, _, names in os.walk(folder) for name in names}


def users_folder(folder):
    (folder / "photos").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def train_argv(output_dir, image_folder, *extra):
    return ["--hparams", TINY_HPARAMS, "--dataset", f"folder:{image_folder}",
            "--output-dir", str(output_dir), "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "8", "--verbose", "0", *extra]


def test_restart_on_a_folder_of_the_users_files_keeps_every_file(tmp_path, image_folder,
                                                                  capsys):
    folder = users_folder(tmp_path / "mine")
    before = contents(folder)
    line = refusal(TRAIN, train_argv(folder, image_folder, "--restart"), capsys)
    assert "--output-dir" in line and "not a run directory" in line
    assert "photos/" in line and "thesis.txt" in line  # what the folder holds
    assert contents(folder) == before


def test_restart_in_a_run_directory_removes_the_runs_files_only(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    for name in ("args.json", "data.json", "results.json", "checkpoint/latest.json"):
        (run / name).write_text("{}")
    (run / "model.keras").write_bytes(b"zip")
    (run / "evaluation-test.json").write_text("{}")
    (run / "notes.md").write_text("the user's, beside the run")
    (run / "tmp-notes-v2.txt").write_text("the user's too, though it starts like a temporary")
    (run / "tmp-4242-model.keras").write_bytes(b"what a killed write left")
    recorded = {"model": "pyramidnet8_a24"}
    with run_dir_module.RunLock(str(run)):
        run_dir_module.check_folder(str(run), restart=True)
        run_dir_module.prepare_run_dir(recorded, str(run), restart=True)
    assert sorted(os.listdir(run)) == [".lock", "args.json", "notes.md", "tmp-notes-v2.txt"]
    assert json.loads((run / "args.json").read_text()) == recorded


@pytest.mark.parametrize("signature, holder", [("compare.json", "a comparison"),
                                               ("search.json", "a search")])
def test_train_refuses_another_programs_folder(signature, holder, tmp_path, image_folder,
                                               capsys):
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / signature).write_text("{}")
    (folder / "data.json").write_text('{"class_names": ["face", "nonface"]}')
    before = contents(folder)
    for extra in ((), ("--restart",)):
        line = refusal(TRAIN, train_argv(folder, image_folder, *extra), capsys)
        assert f"holds {holder}" in line and "--output-dir" in line, line
        assert contents(folder) == before


def test_a_checkpoint_record_without_its_fields_is_one_line(tmp_path, image_folder, capsys):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "latest.json").write_text("{}")
    line = refusal(TRAIN, train_argv(run, image_folder), capsys)
    assert "latest.json is corrupt (no epoch, weights, history)" in line, line


def test_a_search_whose_only_trial_failed_exits_non_zero_and_writes_no_best(
        tmp_path, image_folder, capsys):
    """120 images, 60 held out: the default batch of 256 cannot be formed, so
    the one trial fails; KerasTuner would still answer its values as the best."""
    argv = ["--dataset", f"folder:{image_folder}", "--hp", "depth=20", "--hp", "alpha=24",
            "--validation-examples", "60", "--max-trials", "1", "--epochs", "1",
            "--directory", str(tmp_path), "--project-name", "failed", "--verbose", "0"]
    assert load_program(SEARCH).main(argv) == 1
    error = capsys.readouterr().err
    assert "none of the 1 trials completed" in error and "batch_size" in error
    assert not (tmp_path / "failed" / "best_hparams.json").exists()


def test_a_run_says_when_it_resized_the_users_images_and_ends_with_its_directory(
        tmp_path, image_folder, capsys):
    """The folder's images are 32x32 and 45x29 (see write_image_folder): the
    run trains at 32x32 and says so in its header."""
    from keras_pyramid.data import sources

    assert sources.folder_source(image_folder).given_sides == (29, 45)
    assert load_program(TRAIN).main(train_argv(tmp_path / "run", image_folder)) == 0
    out = capsys.readouterr().out
    assert "images given at 29 to 45 px a side, resized to 32x32" in out
    assert out.strip().splitlines()[-1].startswith(f"run directory: {tmp_path / 'run'}")
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["given_sides"] == [29, 45]


def test_an_interrupt_rebuilt_by_a_library_keeps_its_signal():
    """TensorFlow re-raises an error during tracing as `type(error)(message)`:
    Ctrl-C during an export must still end as SIGINT (exit 130), in one line."""
    from keras_pyramid.training.interrupts import Interrupted

    stop = Interrupted(15, "the last checkpoint is intact")
    for rebuilt in (type(stop)(*stop.args), type(stop)(str(stop))):
        assert rebuilt.exit_status == 143 and str(rebuilt) == str(stop)


def test_the_small_wording_a_newcomer_met():
    from keras_pyramid.compare import report
    from keras_pyramid.data import sources
    from keras_pyramid.training import recipe

    _, note = recipe.fitted_to_data(recipe.paper_recipe("cifar10"), 200)
    assert "200 training images would give 1 step per epoch" in note
    plan = recipe.finetune_recipe(epochs=2)
    assert "freeze_backbone" not in str(plan) and "epochs=2" in str(plan)
    # The fallback rebuild command runs: --output is required.
    assert report.rebuild_command({}) == ("python applications/compare.py --output OUTPUT "
                                          "--report-only")
    with pytest.raises(ValueError, match="an npz run's final figures are in its results.json"):
        sources.open_source("npz:cifar.npz")


def test_a_search_refuses_a_training_runs_folder(tmp_path, image_folder, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text('{"model": "pyramidnet8_a24"}')
    before = contents(run)
    line = refusal(SEARCH, ["--dataset", f"folder:{image_folder}", "--directory", str(tmp_path),
                            "--project-name", "run", "--validation-examples", "20"], capsys)
    assert "holds a training run, not a search" in line, line
    assert contents(run) == before


def test_a_search_overwrite_never_deletes_a_folder_of_the_users_files(tmp_path, image_folder,
                                                                      capsys):
    # KerasTuner's overwrite deletes the whole project folder: only a search's may go.
    folder = users_folder(tmp_path / "mine")
    before = contents(folder)
    line = refusal(SEARCH, ["--dataset", f"folder:{image_folder}", "--directory", str(tmp_path),
                            "--project-name", "mine", "--overwrite"], capsys)
    assert "--overwrite: " in line and "holds no search but other files" in line, line
    assert "photos/, thesis.txt" in line and "--overwrite would delete them" in line, line
    assert contents(folder) == before
