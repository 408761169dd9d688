"""compare.py ranks the candidates, not the conditions they ran under: one
input size, every refusal before the first cell, a user's own free-size
model compared and served, the same evaluated examples, the plan before
launch.

A folder of photos of different sizes, a user's free-size .keras file as
the baseline (its head is a Dense named "logits", not "predictions"), a
registered PyramidNet and a keras.applications model: what a new user
compares first.
"""

import json
import os

import keras
import pytest
from helpers.data import write_image_folder
from helpers.paths import REPO
from helpers.programs import load_program, refusal

from keras_pyramid.compare import comparison

COMPARE = os.path.join(REPO, "applications", "compare.py")
PYRAMIDNET = "pyramidnet8_a24"
MOBILENET = "keras:MobileNet"
ONCE = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="what is refused or planned before any cell: runs once, "
                                 "under tensorflow")


def compare(argv):
    return load_program(COMPARE).main(argv)


def free_size_model(path, classes=5):
    """A user's CNN that takes any size; its classifier is named "logits"."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits")(x)
    keras.Model(inputs, outputs, name="current").save(path)
    return str(path)


@pytest.fixture
def photos(tmp_path):
    """5 classes of real photos, resized to several odd sizes (a user's folder)."""
    root = tmp_path / "photos"
    write_image_folder(root, (0, 2, 3, 5, 8), 8)  # airplane, bird, cat, dog, ship
    return root


def arguments(photos, output, candidates, baseline, *extra):
    return ["--dataset", f"folder:{photos}", "--candidates", *candidates,
            "--baseline", baseline, "--seeds", "2", "--epochs", "1", "--steps-per-epoch", "1",
            "--eval-steps", "1", "--verbose", "0", "--cells-in-process", "--no-estimate",
            "--output", str(output), *extra]


def test_a_free_size_keras_baseline_against_ours_and_keras_at_one_size(photos, tmp_path):
    """Every cell takes the comparison's one size (the data's differ, the
    baseline takes any: the PyramidNet's 32), the user's model is served by
    its role, and each candidate has a curve, a flag and a decision. Before,
    each candidate took its own size (32, 224, 224) and the as-is model's
    export failed after all the training ("a Dense layer named 'predictions'")."""
    current = free_size_model(tmp_path / "current.keras")
    output = tmp_path / "fair"
    served = keras.backend.backend() == "tensorflow"  # exports elsewhere: a TF subprocess
    assert compare(arguments(photos, output, (current, PYRAMIDNET, MOBILENET,
                                              f"as-is:{current}"), current,
                             "--serving-requests", "4" if served else "0")) == 0
    record = json.loads((output / "comparison.json").read_text())
    assert record["dataset"]["image_size"] == [32, 32]
    assert PYRAMIDNET in record["dataset"]["image_size_from"]
    trained = [r for r in record["cells"] if r["status"] == "finished"]
    assert len(trained) == 6 and {tuple(r["image_size"]) for r in trained} == {(32, 32)}
    assert all(r["curve"] and r["curve_on"] for r in trained)
    assert {c["name"]: c["still_improving"] is not None for c in record["candidates"]} == {
        current: True, PYRAMIDNET: True, MOBILENET: True, f"as-is:{current}": False}
    for entry in record["accuracy"][0]["against_baseline"].values():
        assert entry["decision"] in ("better", "worse", "equivalent", "inconclusive")
        assert entry["bca_low"] is None  # 2 seeds: no BCa
    # The as-is model saw as many examples as a trained cell's final evaluation.
    as_is = next(r for r in record["cells"] if r["status"] == "evaluated")
    assert as_is["evaluated_examples"] == trained[0]["evaluated_examples"]
    # Its multiply-adds are counted at the comparison's size: 15x15 positions of 3x3x3x8.
    entry = next(c for c in record["candidates"] if c["name"] == f"as-is:{current}")
    assert entry["multiply_adds"] == 15 * 15 * 27 * 8 + 8 * 5
    if served:
        figures = record["serving"][f"as-is:{current}"]["onnxruntime"]
        assert figures["input_shape"] == [32, 32, 3] and figures["rounds"] == 2


@ONCE
def test_a_candidate_that_cannot_take_the_size_is_refused_before_any_cell(photos, tmp_path,
                                                                         capsys):
    """The baseline is a fixed 16-pixel model: the comparison's size is its
    16x16, which MobileNet cannot take; refused before anything is written
    (each candidate once took its own size, and MobileNet trained at 224)."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x)).save(
        tmp_path / "small.keras")
    output = tmp_path / "refused"
    line = refusal(COMPARE, arguments(photos, output, (str(tmp_path / "small.keras"),
                                                       MOBILENET),
                                      str(tmp_path / "small.keras")), capsys)
    assert "error: --candidates: keras:MobileNet at the comparison's 16x16" in line
    assert "the baseline's own" in line
    assert not output.exists()


@ONCE
def test_a_dry_run_prints_the_plan_and_the_estimate_and_writes_nothing(photos, tmp_path,
                                                                       capsys):
    output = tmp_path / "planned"
    argv = [a for a in arguments(photos, output, (PYRAMIDNET, f"{PYRAMIDNET}_sepdrop"),
                                 PYRAMIDNET) if a != "--no-estimate"]
    assert compare([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan: 4 cells (4 to train), 0 as-is evaluations; every candidate at 32x32" in out
    assert f"{PYRAMIDNET}_sepdrop/noise-0/seed-1" in out
    assert "4 cells to train: about" in out and "1 epoch, 1 step of batch" in out
    assert not output.exists()


@ONCE
def test_the_caveats_are_said_only_where_they_apply():
    """"Not measured on an accelerator" only on a CPU; the budget caveat only
    for a candidate still improving (both were once printed whatever happened)."""
    record = {"hardware": {"device": "NVIDIA H100 80GB HBM3"},
              "candidates": [{"name": "a", "still_improving": False},
                             {"name": "b", "still_improving": None}]}
    assert comparison._not_measured(record) == [comparison.SPLIT_NOT_VARIED]
    record["hardware"]["device"] = "CPU (2 cores)"
    record["candidates"][0]["still_improving"] = True
    first, second, _ = comparison._not_measured(record)
    assert first.startswith("on an accelerator") and second.startswith("at a longer budget: a ")
