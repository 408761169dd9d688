"""The speed benchmark runs and reports what it promises (its figures are not tested)."""

import json
import os
import subprocess
import sys

import keras
import pytest
from conftest import REPO

SPEED = os.path.join(REPO, "benchmarks", "speed.py")


def test_the_benchmark_measures_this_backend_against_the_yardstick(tmp_path, cifar10_sample_tfds_dir):
    backend = keras.backend.backend()
    output = tmp_path / "speed.json"
    command = [sys.executable, SPEED, "--models", "pyramidnet8_a24", "--backends", backend,
               "--full", "", "--regularized", "pyramidnet8_a24", "--repeats", "2", "--steps", "1",
               "--warmup", "0", "--output", str(output), "--data-dir", cifar10_sample_tfds_dir]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-2000:]
    report = json.loads(output.read_text())
    assert report["machine"]["cores"] == os.cpu_count()
    assert report["machine"]["versions"]["keras"] == keras.__version__
    backends = [result["case"]["backend"] for result in report["results"]]
    pipeline, yardstick, ours = report["results"][:3]
    regularized = report["results"][3:]
    assert backends[:3] == ["pipeline", "pytorch-plain", backend]
    assert sorted(r["case"]["regularization"] for r in regularized) == sorted(
        ["drop", "sepdrop"] * (len(regularized) // 2))
    assert len(regularized) == (2 if backend == "jax" else 4)  # skipping both ways off XLA
    # The cases of one backend take turns in one process; the yardstick runs alone.
    assert {r["process"] for r in [ours, *regularized]} == {ours["process"]}
    assert yardstick["process"] != ours["process"]
    assert "input pipeline (real CIFAR-10, batch" in finished.stdout
    # The same network: the yardstick is checked equal to ours in test_models.
    assert yardstick["parameters"] == ours["parameters"]
    assert pipeline["train"]["median"] > 0
    for result in (yardstick, ours, *regularized):
        for phase in ("train", "infer"):
            rates = result[phase]["images_per_second"]
            assert len(rates) == 2 and all(rate > 0 for rate in rates)
            assert result[phase]["min"] <= result[phase]["median"] <= result[phase]["max"]
    ratio = ours["train"]["median"] / yardstick["train"]["median"]
    assert f"| {ratio:.2f} |" in finished.stdout  # the printed table carries the ratio

    again = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    kept = f"{len(report['results'])} cases kept"
    assert again.returncode == 0 and kept in again.stdout  # resumed, not redone


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the profile runs JAX whatever the suite's backend: tested once, "
                           "in the jax run")
def test_the_jax_step_profile_compares_the_gated_steps(tmp_path):
    command = [sys.executable, os.path.join(REPO, "benchmarks", "profile_jax_step.py"),
               "--depth", "8", "--batch", "8", "--rounds", "2", "--steps", "1", "--traces", "2",
               "--output", str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-2000:]
    report = json.loads((tmp_path / "profile.json").read_text())
    steps = report["steps"]
    assert sorted(steps) == ["drop", "none", "sepdrop"]
    for name, step in steps.items():
        assert len(step["images_per_second"]) == 2 and step["median"] > 0
        assert step["thread_ms_per_step"]["convolutions"] > 0  # the traces were read
        assert len(step["thread_ms_per_step_traces"]["convolutions"]) == 2
        assert f"| {name} | {step['flops'] / 1e9:.2f} |" in finished.stdout
    # The gates are there (more operations) and cost a fraction of a percent of the FLOPs.
    for gated in ("drop", "sepdrop"):
        assert 1.0 < steps[gated]["flops"] / steps["none"]["flops"] < 1.01
    assert all((tmp_path / f"trace_{name}").is_dir() for name in steps)
