"""Artifacts written by keras-pyramid 0.1.0 still load, evaluate, export and resume.

tests/fixtures/v0_1_0/ was written once by tests/fixtures/make_v0_1_0.py at
0.1.0 (TensorFlow backend); these tests read it with today's code on every
backend, so a moved module or a renamed class cannot break users' files.
"""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from helpers.paths import REPO
from helpers.programs import load_program

import keras_pyramid  # noqa: F401  registers the classes the files name

FIXTURES = os.path.join(REPO, "tests", "fixtures", "v0_1_0")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_a_0_1_0_keras_file_loads_compiled_and_predicts_as_it_did():
    model = keras.saving.load_model(os.path.join(FIXTURES, "tiny_sepdrop.keras"))
    assert type(model.optimizer).__name__ == "SGD" and model.compiled is True
    assert {type(layer).__name__ for layer in model.layers} >= {"PyramidShortcut"}
    expected = np.load(os.path.join(FIXTURES, "tiny_sepdrop_expected.npz"))
    np.testing.assert_allclose(model.predict(expected["x"], verbose=0), expected["y"],
                               rtol=1e-4, atol=1e-5)


def copied_run(tmp_path, name):
    return shutil.copytree(os.path.join(FIXTURES, name), tmp_path / name)


def test_a_0_1_0_run_directory_evaluates_and_exports(tmp_path, cifar10_sample_tfds_dir):
    run_dir = copied_run(tmp_path, "run_finished")
    recorded = read_json(run_dir / "results.json")
    evaluate = load_program(os.path.join(REPO, "applications", "evaluate.py"))
    assert evaluate.main([str(run_dir), "--data-dir", cifar10_sample_tfds_dir,
                          "--max-examples", "16", "--batch-size", "16"]) == 0
    report = read_json(run_dir / "evaluation-test.json")
    assert report["examples"] == 16 == recorded["evaluated_examples"]
    # The same 16 test images through the same weights: the run's own figure
    # (another backend may round one borderline image the other way).
    assert report["error"] == pytest.approx(recorded["final_error"], abs=1 / 16 + 1e-9)

    export = load_program(os.path.join(REPO, "applications", "export.py"))
    output = tmp_path / "served"
    assert export.main([str(run_dir), "--output", str(output), "--check-images", "2"]) == 0
    assert (output / "1" / "saved_model.pb").exists()
    names = (output / "1" / "assets" / "class_names.txt").read_text().split()
    assert names == read_json(run_dir / "data.json")["class_names"]


def test_a_0_1_0_interrupted_run_resumes_and_finishes(tmp_path, cifar10_sample_tfds_dir, capsys):
    run_dir = copied_run(tmp_path, "run_interrupted")
    args = read_json(run_dir / "args.json")
    train = load_program(os.path.join(REPO, "applications", "train.py"))
    assert train.main([
        "--hparams", os.path.join(REPO, "tests", "tiny_hparams.json"),
        "--data-dir", cifar10_sample_tfds_dir, "--no-download", "--output-dir", str(run_dir),
        "--batch-size", "16", "--eval-steps", "1", "--verbose", "2",
        "--epochs", str(args["epochs"]), "--steps-per-epoch", str(args["steps_per_epoch"]),
        "--skip-dropped", args["skip_dropped"],
    ]) == 0
    assert "Resuming after epoch 1 of 2" in capsys.readouterr().out
    history = read_json(run_dir / "history.json")
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0] == read_json(
        os.path.join(FIXTURES, "run_interrupted", "checkpoint", "latest.json"))["history"][0]
    assert read_json(run_dir / "results.json")["epochs"] == 2
    model = keras.saving.load_model(run_dir / "model.keras")
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
