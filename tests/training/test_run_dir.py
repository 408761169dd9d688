"""Run directories: `load_run`, the one reader (0.1.0's included), and `prepare_run_dir`."""

import os

import pytest
from helpers.paths import REPO

from keras_pyramid.training.run_dir import ConfigError, load_run, prepare_run_dir

FIXTURES = os.path.join(REPO, "tests", "fixtures", "v0_1_0")


def test_a_0_1_0_run_directory_loads():
    finished = load_run(os.path.join(FIXTURES, "run_finished"))
    assert finished.finished and finished.model_path.endswith("model.keras")
    assert finished.args["dataset"] == "cifar10" and finished.args["recipe"] == "paper"
    assert finished.data["class_names"][0] == "airplane"
    assert finished.completed_epochs == finished.results["epochs"] == 2
    interrupted = load_run(os.path.join(FIXTURES, "run_interrupted"))
    assert not interrupted.finished and interrupted.model_path is None
    assert interrupted.completed_epochs == 1


def test_an_empty_directory_loads_as_nothing(tmp_path):
    run = load_run(tmp_path / "none")
    assert (run.args, run.data, run.results, run.model_path, run.completed_epochs) == (
        None, None, None, None, 0)


def test_old_names_are_read_under_new_ones_and_other_runs_are_refused(tmp_path):
    (tmp_path / "args.json").write_text('{"lr": 0.1, "validation_examples": 0, "seed": 0}')
    run = load_run(tmp_path)
    assert run.args["learning_rate"] == 0.1 and run.args["validation"] == 0
    assert run.args["recipe"] == "paper"  # added later, with the value old runs had
    with pytest.raises(ConfigError, match=r"learning_rate: 0.1 -> 0.2") as caught:
        prepare_run_dir({**run.args, "learning_rate": 0.2}, str(tmp_path))
    assert caught.value.argument == "run_dir"
    prepare_run_dir(run.args, str(tmp_path))  # the same run: resumed
