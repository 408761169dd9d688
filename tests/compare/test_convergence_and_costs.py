"""keras_pyramid.compare.convergence, .cost_summary and utils.machine_load,
directly: the learning curves' flag, the paired cost ratios, the machine's load.

Pure Python (numbers in, numbers out): runs once, under tensorflow."""

import math

import pytest
from helpers.backends import ONCE

from keras_pyramid.compare import convergence, cost_summary
from keras_pyramid.utils import machine_load

pytestmark = ONCE


def curve(*errors):
    return [{"epoch": epoch, "error": error} for epoch, error in enumerate(errors, start=1)]


def test_the_mean_curve_and_its_band_over_the_epochs_every_seed_reached():
    summary = convergence.learning_curves([curve(0.9, 0.7, 0.6), curve(0.8, 0.6)])
    assert summary["epochs"] == [1, 2] and summary["seeds"] == 2
    assert summary["mean"] == pytest.approx([0.85, 0.65])
    assert (summary["low"], summary["high"]) == ([0.8, 0.6], [0.9, 0.7])
    assert convergence.learning_curves([[], None]) is None


def test_still_improving_reads_the_fall_over_the_last_third_of_the_epochs():
    """9 epochs: the window is the last 3. Falling 0.3 points per epoch there
    fits a fall of 0.6 points over the window, above the half point: still
    improving; 0.2 points per epoch (0.4 over it) is not. One epoch shows no
    trend, so nothing says it stopped."""
    flat_start = [0.5] * 6
    falling = convergence.learning_curves([curve(*flat_start, 0.5, 0.497, 0.494)])
    assert falling["fall_over_window"] == pytest.approx(0.006)
    assert falling["still_improving"] is True
    slower = convergence.learning_curves([curve(*flat_start, 0.5, 0.498, 0.496)])
    assert slower["still_improving"] is False
    assert convergence.learning_curves([curve(0.9)])["still_improving"] is True
    rising = convergence.learning_curves([curve(0.5, 0.4, 0.45, 0.5)])
    assert rising["fall_over_window"] < 0 and not rising["still_improving"]


def cells(name, values, key="wall_seconds", noise=0.0):
    return [{"candidate": name, "status": "finished", "noise": noise, "seed": seed, key: value}
            for seed, value in enumerate(values)]


def test_a_cost_ratio_pairs_by_seed_and_is_claimed_only_when_its_interval_excludes_one():
    """Per-seed ratios 1.1, 1.2, 1.15: geometric mean exp(mean(log r)), and
    the t interval of the mean log ratio (2 degrees of freedom) excludes 0
    (ratio 1): claimed. Ratios straddling 1 are not."""
    rows = cells("b", [100, 200, 150]) + cells("c", [110, 240, 172.5])
    paired = cost_summary.paired_cost(cells("c", [110, 240, 172.5]), cells("b", [100, 200, 150]),
                                      "wall_seconds")
    logs = [math.log(r) for r in (1.1, 1.2, 1.15)]
    assert paired["ratio"] == pytest.approx(math.exp(sum(logs) / 3))
    assert paired["claimed"] and paired["pairs"] == 3 and paired["low"] > 1
    cost = cost_summary.training_cost("c", rows, baseline="b")
    assert cost["against_baseline"]["wall_seconds"]["ratio"] == pytest.approx(paired["ratio"])
    assert cost_summary.training_cost("b", rows, baseline="b")["against_baseline"] is None
    mixed = cost_summary.paired_cost(cells("c", [90, 240, 150]), cells("b", [100, 200, 150]),
                                     "wall_seconds")
    assert mixed["low"] < 1 < mixed["high"] and not mixed["claimed"]
    # Pairs only where both finished: one seed is no pair to estimate from.
    assert cost_summary.paired_cost(cells("c", [110]), cells("b", [100, 200]),
                                    "wall_seconds") is None


def test_serving_ratios_pair_the_rounds_and_skip_a_single_measurement():
    serving = {"b": {"onnxruntime": {"round_p50_ms": [1.0, 1.1, 0.9]}},
               "c": {"onnxruntime": {"round_p50_ms": [2.0, 2.2, 1.8]},
                     "saved_model": {"latency_ms": {"p50": 3.0}}}}
    ratios = cost_summary.serving_ratios(serving, "b")
    assert ratios["c"]["onnxruntime"]["ratios"] == pytest.approx([2.0, 2.0, 2.0])
    assert "saved_model" not in ratios["c"]


def test_the_machine_is_shared_when_other_processes_took_a_tenth_of_it(monkeypatch):
    """Busy CPU-seconds of the machine minus this process's, over the wall
    time times the cores: 1.5 of 10 CPU-seconds taken by others is shared."""
    busy, own, clock = iter([100.0, 108.0]), iter([50.0, 56.5]), iter([0.0, 5.0])
    monkeypatch.setattr(machine_load, "_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(machine_load, "_own_seconds", lambda: next(own))
    monkeypatch.setattr(machine_load.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(machine_load.os, "cpu_count", lambda: 2)
    record = machine_load.LoadWatch().stop()
    assert record["other_cpu_fraction"] == pytest.approx(0.15) and record["shared"] is True
    assert machine_load.shared_during([record, None]) is True
    assert machine_load.shared_during([{"shared": None}]) is None


def test_the_real_counters_give_a_fraction_of_the_machine():
    watch = machine_load.LoadWatch()
    sum(i * i for i in range(200_000))
    record = watch.stop()
    assert record["wall_seconds"] > 0 and record["cores"] >= 1
    assert record["other_cpu_fraction"] is None or 0 <= record["other_cpu_fraction"] <= 1
