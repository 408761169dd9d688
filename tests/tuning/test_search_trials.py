"""A search's trials are runs: a folder of images searched with the defaults,
each trial a run directory, and a killed trial resumed from its checkpoint.

The search's bookkeeping is the same on every backend (a trial's training
is `experiment.run`'s, tested per backend in tests/programs/test_train.py):
these run once, under tensorflow.
"""

import csv
import json
import os
import signal

from helpers.backends import ONCE
from helpers.paths import REPO
from helpers.processes import killed_after_checkpoint
from helpers.programs import load_program

SEARCH = os.path.join(REPO, "tuning", "search.py")

def folder_search(directory, folder):
    """A one-trial search of `folder` with the defaults (no hold-out given)."""
    return ["--dataset", f"folder:{folder}", "--directory", str(directory),
            "--hp", "depth=8", "--hp", "alpha=12", "--hp", "batch_size=16",
            "--max-trials", "1", "--epochs", "2", "--steps-per-epoch", "2", "--verbose", "0"]


@ONCE
def test_a_folder_search_runs_with_its_defaults_and_a_killed_trial_resumes(tmp_path,
                                                                          image_folder, capsys):
    # image_folder: 5 classes x 24 images, no test split; the default hold-out is a tenth.
    arguments = folder_search(tmp_path / "search", image_folder)
    killed = killed_after_checkpoint(SEARCH, 2, arguments)  # epoch 1's end
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    project = tmp_path / "search" / f"pyramidnet-{os.path.basename(image_folder)}"
    trial_run = project / "trial_0" / "run"
    committed = json.loads((trial_run / "checkpoint" / "latest.json").read_text())
    assert (committed["epoch"], committed["global_step"]) == (1, 2)
    assert not (trial_run / "results.json").exists()

    assert load_program(SEARCH).main(arguments) == 0
    out = capsys.readouterr().out
    assert "Trial 0 did not finish" in out
    assert "Resuming after epoch 1 of 2" in out  # from the trial's checkpoint, not from scratch
    rows = list(csv.DictReader((trial_run / "history.csv").read_text().splitlines()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["loss"] == str(committed["history"][0]["loss"])  # epoch 1 kept, not redone
    assert json.loads((trial_run / "checkpoint" / "latest.json").read_text())["epoch"] == 2

    recorded = json.loads((project / "search.json").read_text())
    assert recorded["validation_examples"] == 12  # a tenth of 120
    trial_results = json.loads((trial_run / "results.json").read_text())
    assert trial_results["evaluation_split"] == "hold-out of train (12 of 120)"
    assert trial_results["evaluated_examples"] == 12
    results = json.loads((project / "results.json").read_text())
    assert [row["status"] for row in results["trials"]] == ["COMPLETED"]
    assert results["trials"][0]["score"] == 1.0 - trial_results["final_error"]
    assert (project / "best_hparams.json").is_file()
