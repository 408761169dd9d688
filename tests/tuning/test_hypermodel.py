"""The hypermodel, the search space overrides, and tuning/search.py end to end:
report files, resume, a changed space, retrain, and KerasTuner's distributed
mode with a chief and two workers (every process under a hard timeout)."""

import importlib.util
import json
import os
import signal
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from helpers.data import SAMPLE_TEST_EXAMPLES
from helpers.paths import REPO
from helpers.processes import run_command, run_kerastuner_cluster
from helpers.programs import load_program
from helpers.run_directory import assert_run_directory_reloads

from keras_pyramid.models import hparams
from keras_pyramid.models.pyramidnet import unit_widths
from keras_pyramid.models.regularizers import PyramidSepDrop, ShakeDrop, StochasticDepth
from keras_pyramid.tuning import hypermodel as tuning
from keras_pyramid.tuning import search as search_flow

SEARCH = os.path.join(REPO, "tuning", "search.py")
TRAIN = os.path.join(REPO, "applications", "train.py")
TINY = {"depth": 8, "alpha": 12, "regularization": "sepdrop", "drop_rate": 0.3,
        "learning_rate": 0.05, "batch_size": 16}


def fixed(values):
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def hypermodel(**kwargs):
    return tuning.PyramidHyperModel(classes=10, input_shape=(16, 16, 3),
                                    steps_per_epoch=kwargs.pop("steps_per_epoch", 4), **kwargs)


def regularizers(model):
    return [layer for layer in model.layers
            if isinstance(layer, (PyramidSepDrop, StochasticDepth, ShakeDrop))]


def test_every_hyperparameter_has_the_papers_default():
    hp = kt.HyperParameters()
    values = tuning.PyramidHyperModel().values(hp)
    assert values == {"depth": 110, "alpha": 48, "regularization": "sepdrop",
                      "drop_rate": 0.5, "new_drop_rate": None, "learning_rate": 0.1,
                      "batch_size": 128}
    # The new channels' rate is tied to drop_rate (the paper) unless freed.
    assert set(hp.values) == set(hparams.HPARAM_NAMES) - {"new_drop_rate"}


def test_a_freed_new_drop_rate_is_searched_and_reaches_the_model():
    space = tuning.search_space({"new_drop_rate": "0:0.9"})
    (freed,) = [h for h in space.space if h.name == "new_drop_rate"]
    assert (freed.min_value, freed.max_value, freed.step) == (0.0, 0.9, 0.05)
    model = hypermodel().build(fixed({**TINY, "new_drop_rate": 0.6}))
    layers = regularizers(model)
    assert [layer.new_drop_rate for layer in layers] == pytest.approx([0.2, 0.4, 0.6])
    assert [layer.drop_rate for layer in layers] == pytest.approx([0.1, 0.2, 0.3])
    tied = hypermodel().build(fixed(TINY))
    assert all(layer.new_drop_rate is None for layer in regularizers(tied))
    # A value drawn for a trial without SepDrop means nothing and is not kept.
    values = tuning.PyramidHyperModel().values(fixed({"regularization": "drop",
                                                      "new_drop_rate": 0.6}))
    assert values["new_drop_rate"] is None


def test_fixed_values_reach_the_built_model():
    model = hypermodel().build(fixed(TINY))
    assert [layer.filters for layer in model.layers if layer.name.endswith("_conv2")] == \
        unit_widths(8, 12)
    rates = [layer.drop_rate for layer in regularizers(model)]
    assert all(isinstance(layer, PyramidSepDrop) for layer in regularizers(model))
    assert rates[-1] == pytest.approx(0.3) and rates[0] == pytest.approx(0.1)
    # At step 0 the optimizer reports its schedule's initial value.
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == \
        pytest.approx(0.05)

    wider = hypermodel().build(fixed({**TINY, "alpha": 24, "depth": 14}))
    assert len(regularizers(wider)) == 6  # (14 - 2) / 6 units per stage, 3 stages
    assert [layer.filters for layer in wider.layers if layer.name.endswith("_conv2")] == \
        unit_widths(14, 24)
    for kind, layer_class in (("drop", StochasticDepth), ("shakedrop", ShakeDrop)):
        built = hypermodel().build(fixed({**TINY, "regularization": kind}))
        assert all(isinstance(layer, layer_class) for layer in regularizers(built))
    assert regularizers(hypermodel().build(fixed({**TINY, "regularization": "none"}))) == []


def test_fit_uses_the_batch_size_hyperparameter():
    hp = fixed(TINY)
    model = hypermodel(steps_per_epoch=2).build(hp)
    seen = []

    def batches(batch_size):
        seen.append(batch_size)
        x = np.zeros((batch_size, 16, 16, 3), "float32")
        y = np.zeros((batch_size,), "int32")
        return tf.data.Dataset.from_tensors((x, y)).repeat()

    metrics = hypermodel(steps_per_epoch=2).fit(hp, model, batches, validation_data=batches,
                                                epochs=2, validation_steps=1, verbose=0)
    assert seen == [16, 16]
    # The final epoch's figures, as floats: what KerasTuner scores.
    assert set(metrics) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(isinstance(value, float) for value in metrics.values())


def test_search_space_fixes_narrows_and_restricts():
    hp = tuning.search_space({"alpha": "24:96", "regularization": "drop,sepdrop",
                              "depth": "20", "learning_rate": "0.01:0.3"})
    by_name = {h.name: h for h in hp.space}
    assert (by_name["alpha"].min_value, by_name["alpha"].max_value) == (24, 96)
    assert list(by_name["regularization"].values) == ["drop", "sepdrop"]
    assert by_name["depth"].value == 20
    assert by_name["learning_rate"].sampling == "log"


@pytest.mark.parametrize("overrides, message", [
    ({"widht": "3"}, "unknown hyperparameter 'widht'"),
    ({"depth": "21"}, "depth='21'"),
    ({"depth": "20:56"}, "not a range"),
    ({"alpha": "96:24"}, "LOW < HIGH"),
    ({"drop_rate": "1.0"}, "drop_rate='1.0'"),
    ({"new_drop_rate": "0:1.5"}, "new_drop_rate='1.5'"),
    ({"regularization": "dropout"}, "regularization='dropout'"),
    ({"alpha": "wide"}, "alpha='wide'"),
])
def test_bad_search_space_overrides_name_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        tuning.search_space(overrides)


def test_hparams_files_are_checked(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps(TINY))
    assert hparams.load_hparams(path) == {**TINY, "new_drop_rate": None}  # tied
    path.write_text(json.dumps({**TINY, "new_drop_rate": 0.7}))
    assert hparams.load_hparams(path)["new_drop_rate"] == 0.7
    path.write_text(json.dumps({**TINY, "regularization": "drop", "new_drop_rate": 0.7}))
    assert hparams.load_hparams(path)["new_drop_rate"] is None  # no new-channels gate
    path.write_text(json.dumps({**TINY, "width": 3}))
    with pytest.raises(ValueError, match="unknown \\['width'\\]"):
        hparams.load_hparams(path)
    path.write_text(json.dumps({**TINY, "drop_rate": 1.5}))
    with pytest.raises(ValueError, match="drop_rate"):
        hparams.load_hparams(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        hparams.load_hparams(path)


def load_search_program():
    spec = importlib.util.spec_from_file_location("search_program", SEARCH)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    return program


@pytest.mark.parametrize("kind, tuner_class", [
    ("random", kt.RandomSearch), ("bayesian", kt.BayesianOptimization),
    ("hyperband", kt.Hyperband)])
def test_every_tuner_kind_is_available(tmp_path, kind, tuner_class):
    program = load_search_program()
    _, args = program.parse_args(["--tuner", kind, "--directory", str(tmp_path),
                                  "--hp", "depth=8", "--hp", "alpha=6:24"])
    settings = program.settings_of(args)
    space = tuning.search_space(settings.space)
    tuner = search_flow.make_tuner(settings, space, run_trial=lambda trial: {})
    assert isinstance(tuner, tuner_class)
    assert isinstance(tuner, tuning.KilledTrialGuard)
    assert tuner.oracle.objective.name == "val_accuracy"
    assert tuner.oracle.objective.direction == "max"


def search_command(directory, data_dir, *extra):
    return [sys.executable, SEARCH, "--dataset", "cifar10", "--data-dir", data_dir,
            "--no-download", "--directory", str(directory), "--hp", "depth=8",
            "--hp", "alpha=6:24", "--hp", "batch_size=16", "--epochs", "1",
            "--steps-per-epoch", "2", "--validation-steps", "1",
            "--validation-examples", "500", "--verbose", "2", *extra]


def run(command, timeout=600, env=None):
    return run_command(command, timeout=timeout, environment=env)


def trial_files(project):
    return {name: (project / name / "trial.json").read_bytes()
            for name in os.listdir(project) if name.startswith("trial_")}


def test_a_search_reports_resumes_and_refuses_a_changed_space(tmp_path, cifar10_sample_tfds_dir,
                                                              capsys):
    # In this process (no start-ups to pay: CI time); a fresh process reloads
    # the retrained run directory below.
    project = tmp_path / "search" / "pyramidnet-cifar10"
    search = load_program(SEARCH).main
    assert search(search_command(tmp_path / "search", cifar10_sample_tfds_dir,
                                 "--max-trials", "1")[2:]) == 0
    finished_once = trial_files(project)
    assert len(finished_once) == 1

    capsys.readouterr()
    assert search(search_command(tmp_path / "search", cifar10_sample_tfds_dir, "--max-trials", "2",
                                 "--retrain", "--retrain-epochs", "1")[2:]) == 0
    second_stdout = capsys.readouterr().out
    assert "1 finished trials kept" in second_stdout
    after = trial_files(project)
    assert len(after) == 2
    for name, content in finished_once.items():
        assert after[name] == content, f"{name} was run again"

    results = json.loads((project / "results.json").read_text())
    assert results["objective"] == "val_accuracy"
    assert [row["status"] for row in results["trials"]] == ["COMPLETED", "COMPLETED"]
    scores = [row["score"] for row in results["trials"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for row in results["trials"]:
        assert row["depth"] == 8 and 6 <= row["alpha"] <= 24 and row["batch_size"] == 16
    csv_lines = (project / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("trial,status,score,depth,alpha") and len(csv_lines) == 3
    assert (project / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = hparams.load_hparams(project / "best_hparams.json")
    best_row = results["trials"][0]
    assert best == {name: best_row[name] for name in hparams.HPARAM_NAMES}
    assert "val_accuracy" in second_stdout and "best:" in second_stdout

    retrained = json.loads((project / "retrain.json").read_text())
    assert retrained["hparams"] == best and retrained["epochs"] == 1
    assert retrained["test_examples"] == SAMPLE_TEST_EXAMPLES and 0 <= retrained["test_error"] <= 1
    assert_run_directory_reloads(project / "retrain", steps=2)
    # Each trial is a run of its own: history, checkpoint, scored on the hold-out only.
    for trial in finished_once:
        trial_run = project / trial / "run"
        assert (trial_run / "history.csv").read_text().count("\n") == 2  # header + 1 epoch
        assert (trial_run / "checkpoint" / "latest.json").is_file()
        trial_results = json.loads((trial_run / "results.json").read_text())
        assert trial_results["evaluation_split"].startswith("hold-out of train (500 of")

    # The hparams file the search wrote is what train.py --hparams reads.
    # In this process from here on (no start-ups to pay: CI time).
    assert load_program(TRAIN).main([
        "--hparams", str(project / "best_hparams.json"), "--data-dir", cifar10_sample_tfds_dir,
        "--no-download", "--output-dir", str(tmp_path / "run"), "--epochs", "1",
        "--steps-per-epoch", "2", "--eval-steps", "1", "--verbose", "0"]) == 0
    resolved = json.loads((tmp_path / "run" / "args.json").read_text())
    assert resolved["model"] == hparams.model_name(best)
    assert (resolved["learning_rate"], resolved["batch_size"], resolved["drop_rate"]) == (
        best["learning_rate"], best["batch_size"], best["drop_rate"])

    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        load_program(SEARCH).main(search_command(
            tmp_path / "search", cifar10_sample_tfds_dir, "--max-trials", "2",
            "--hp", "regularization=drop")[2:])
    changed = capsys.readouterr().err
    assert refused.value.code == 2
    assert "holds a search with other settings" in changed
    assert "regularization" in changed and "--overwrite" in changed
    assert trial_files(project) == after



@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="KerasTuner's distributed mode (its oracle over gRPC) is the same on "
                           "every backend: runs once, under tensorflow (trials train per backend "
                           "in test_a_search_reports_resumes_and_refuses_a_changed_space)")
def test_a_chief_and_two_workers_finish_a_search_together(tmp_path, cifar10_sample_tfds_dir):
    command = search_command(tmp_path / "search", cifar10_sample_tfds_dir, "--max-trials", "3")
    codes, logs = run_kerastuner_cluster(command, ("chief", "tuner0", "tuner1"), tmp_path)
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, logs
    # The workers trained the trials (one epoch each: one fit line per trial).
    trained = sum(logs[w].count(" - val_accuracy: ") for w in ("tuner0", "tuner1"))
    assert trained == 3, logs
    results = json.loads((tmp_path / "search" / "pyramidnet-cifar10" / "results.json").read_text())
    assert [row["status"] for row in results["trials"]] == ["COMPLETED"] * 3
    assert "best:" in logs["chief"]


# A search whose first trial kills its own process, as a segfault or the
# OOM killer would. KilledTrialGuard is pure Python: it runs once, not per backend.
TRIAL_THAT_KILLS_ITS_PROCESS = """
import os, signal, sys
import keras_tuner as kt
from keras_pyramid.tuning.hypermodel import guarded

class Scripted(kt.RandomSearch):
    def run_trial(self, trial, *args, **kwargs):
        if trial.trial_id == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"val_accuracy": trial.hyperparameters.get("x") / 100}

space = kt.HyperParameters()
space.Int("x", 0, 100)
tuner = guarded(Scripted)(objective=kt.Objective("val_accuracy", "max"), max_trials=2,
                          hyperparameters=space, directory=sys.argv[1], project_name="p",
                          seed=0)
tuner.search()
print({t.trial_id: t.status for t in tuner.oracle.trials.values()})
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="pure Python (KerasTuner bookkeeping): runs once, under tensorflow")
def test_a_trial_that_kills_its_process_is_retried_once_then_failed(tmp_path):
    command = [sys.executable, "-c", TRIAL_THAT_KILLS_ITS_PROCESS, str(tmp_path)]
    first, second = run(command), run(command)
    assert first.returncode == second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert "Trial 0 did not finish" in second.stdout  # the one retry
    third = run(command)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "{'0': 'FAILED', '1': 'COMPLETED'}" in third.stdout, third.stdout[-2000:]
    starts = json.loads((tmp_path / "p" / "starts_per_trial.json").read_text())
    assert starts == {"0": 2, "1": 1}


def test_the_default_hold_out_is_a_tenth_at_most_5000():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("pure Python: runs once, under tensorflow")
    assert [search_flow.default_holdout(n) for n in (200, 45_000, 50_000, 9)] == [
        20, 4500, 5000, 1]
