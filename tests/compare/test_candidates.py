"""keras_pyramid.compare.candidates, .cells, .grid and .costs, directly: a
candidate's directory, the cells' order, the tuner id and the serving cache.

Pure Python (nothing is built or trained): runs once, under tensorflow."""


import pytest
from helpers.backends import ONCE

from keras_pyramid.compare import candidates, cells, costs
from keras_pyramid.tuning import distributed

pytestmark = ONCE


def test_a_candidates_kind_and_directory_follow_its_name():
    registered = candidates.recorded_candidate("pyramidnet8_a24@cifar10")
    assert (registered.kind, registered.model, registered.weights) == (
        "registered", "pyramidnet8_a24", "cifar10")
    assert registered.slug == "pyramidnet8_a24-cifar10" and registered.trained
    keras_builder = candidates.recorded_candidate("keras:MobileNet")
    assert (keras_builder.kind, keras_builder.slug) == ("keras", "keras-MobileNet")
    # Files by content too: two current.keras from two folders are two candidates.
    one = candidates.recorded_candidate("/a/current.keras", digest="0123456789ab")
    other = candidates.recorded_candidate("/b/current.keras", digest="ba9876543210")
    assert (one.slug, other.slug) == ("file-current-01234567", "file-current-ba987654")
    as_is = candidates.recorded_candidate("as-is:/a/current.keras", digest="0123456789ab")
    assert (as_is.model, as_is.slug, as_is.trained) == (
        "/a/current.keras", "as-is-current-01234567", False)


def test_candidates_are_refused_by_name():
    with pytest.raises(ValueError, match=r"`candidates`: compare at least 2"):
        candidates.parse_candidates(["pyramidnet8_a24"], "pyramidnet8_a24")
    with pytest.raises(ValueError, match=r"`baseline` must be one of the candidates"):
        candidates.parse_candidates(["pyramidnet8_a24", "pyramidnet8_a24_drop"], "other")
    with pytest.raises(ValueError, match=r"`candidates`: .*Received: 'pyramidnet9_a1'"):
        candidates.parse_candidate("pyramidnet9_a1")


class Axes:
    """The grid's axes of a Settings (cells_of reads no more)."""
    seeds, noise_rates = 2, (0.0, 0.2)


def test_the_cells_are_seed_major_and_leave_out_the_as_is():
    trained = candidates.recorded_candidate("pyramidnet8_a24")
    as_is = candidates.recorded_candidate("as-is:/a/current.keras", digest="0123456789ab")
    grid_cells = cells.cells_of([trained, as_is], Axes)
    assert [cell.key for cell in grid_cells] == [
        "pyramidnet8_a24/noise-0/seed-0", "pyramidnet8_a24/noise-0.2/seed-0",
        "pyramidnet8_a24/noise-0/seed-1", "pyramidnet8_a24/noise-0.2/seed-1"]
    assert grid_cells[0].run_dir("out").split("/") == [
        "out", "cells", "pyramidnet8_a24", "noise-0", "seed-0"]


def test_the_tuner_id_is_keras_tuners_variable(monkeypatch):
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    assert distributed.tuner_id() is None
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    assert distributed.tuner_id() == "tuner0"


def test_serving_is_measured_in_rounds_once_for_the_same_models_and_requests(tmp_path,
                                                                             monkeypatch):
    """One interleaved measurement of every candidate, cached: the same models
    and requests are kept ("measured earlier"), other requests measure again,
    and 0 requests (--report-only) reads the last measurement."""
    measured, said = [], []
    monkeypatch.setattr(costs, "export", lambda model, folder, **kwargs: f"{folder}/1")
    monkeypatch.setattr(costs.serving_rounds, "measure_interleaved",
                        lambda folders, requests, rounds: measured.append(
                            (sorted(folders), requests, rounds)) or {
                            name: {"onnxruntime": {"round_p50_ms": [1.0] * rounds}}
                            for name in folders})
    models = {"a": ("a.keras", 0, "a"), "b": ("b.keras", 0, "b")}
    first = costs.serving_measurements(models, str(tmp_path), ["x", "y"], 20, (8, 8), said.append)
    assert measured == [(["a", "b"], 20, costs.SMOKE_ROUNDS)]
    assert first["a"]["seed"] == 0 and first["a"]["requests"] == 20
    assert costs.serving_measurements(models, str(tmp_path), ["x", "y"], 20, (8, 8),
                                      said.append) == first
    assert len(measured) == 1 and "measured earlier" in said[-1]
    costs.serving_measurements(models, str(tmp_path), ["x", "y"], 500, (8, 8), said.append)
    assert measured[-1] == (["a", "b"], 500, costs.SERVING_ROUNDS)
    assert costs.serving_measurements(models, str(tmp_path), ["x", "y"], 0, (8, 8),
                                      said.append)["a"]["requests"] == 500
    assert len(measured) == 2


def test_the_built_for_sentence_says_how_a_keras_candidate_starts():
    """From scratch without weights; an @imagenet one is fine-tuned (it once
    said "trained from scratch" for both)."""
    scratch = candidates.built_for(candidates.recorded_candidate("keras:MobileNetV3Small"),
                                   (32, 32), "paper")
    tuned = candidates.built_for(candidates.recorded_candidate("keras:EfficientNetB0@imagenet"),
                                 (64, 64), "finetune")
    assert "trained from scratch by the paper recipe on 32x32" in scratch
    assert "fine-tuned from its ImageNet weights by the finetune recipe on 64x64" in tuned
