"""The speed benchmark runs and reports what it promises (its figures are not tested)."""

import json
import os
import sys

import keras
import pytest
from helpers.paths import REPO
from helpers.processes import blocked_tensorflow_path, run_command

SPEED = os.path.join(REPO, "benchmarks", "speed.py")


def test_the_benchmark_measures_this_backend_against_the_yardstick(tmp_path,
                                                                   cifar10_sample_tfds_dir):
    backend = keras.backend.backend()
    output = tmp_path / "speed.json"
    command = [sys.executable, SPEED, "--models", "pyramidnet8_a24", "--backends", backend,
               "--full", "", "--regularized", "pyramidnet8_a24", "--repeats", "2", "--steps", "1",
               "--warmup", "0", "--output", str(output), "--data-dir", cifar10_sample_tfds_dir]
    finished = run_command(command)
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

    if backend == "tensorflow":  # resuming is the benchmark's bookkeeping: checked once
        again = run_command(command)
        kept = f"{len(report['results'])} cases kept"
        assert again.returncode == 0 and kept in again.stdout  # resumed, not redone


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the profile runs JAX whatever the suite's backend: tested once, "
                           "in the jax run")
def test_the_jax_step_profile_compares_the_gated_steps(tmp_path):
    command = [sys.executable, os.path.join(REPO, "benchmarks", "profile_jax_step.py"),
               "--depth", "8", "--batch", "8", "--rounds", "2", "--steps", "1", "--traces", "2",
               "--output", str(tmp_path)]
    finished = run_command(command)
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


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="gpu_check starts the jax and torch backends itself: tested once, "
                           "in the jax run")
def test_the_gpu_check_smoke_run_writes_its_report_without_tensorflow(tmp_path):
    """`gpu_check.py --smoke`: both backends and the PyTorch yardstick, a short
    training run on real CIFAR-10 images, with TensorFlow unimportable."""
    data = tmp_path / "smoke.npz"
    made = run_command([sys.executable, os.path.join(REPO, "benchmarks", "gpu_subset.py"),
                        str(data), "--train", "128", "--test", "32"], timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    output = tmp_path / "gpu_check.json"
    finished = run_command(
        [sys.executable, os.path.join(REPO, "benchmarks", "gpu_check.py"), "--smoke",
         "--data", str(data), "--output", str(output)], timeout=600,
        environment={"PYTHONPATH": blocked_tensorflow_path(tmp_path / "blocked")})
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-3000:]
    report = json.loads(output.read_text())
    assert report["smoke"] and report["environment"]["keras"] == keras.__version__
    assert [run["backend"] for run in report["backends"]] == ["jax", "torch"]
    for run in report["backends"] + [report["yardstick"]]:
        assert [(r["model"], r["precision"]) for r in run["networks"]] == [
            ("pyramidnet8_a24", "float32"), ("pyramidnet8_a24", "bfloat16")]
        assert all(r["train_images_per_s"]["median"] > 0 for r in run["networks"])
    for run in report["backends"]:
        assert run["training"]["epochs"] >= 1 and 0 <= run["training"]["test_accuracy"] <= 1
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| jax | pyramidnet8_a24 | 8 | bfloat16 |" in table and "SMOKE" in table
