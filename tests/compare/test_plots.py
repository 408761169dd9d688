"""The comparison's plots: which are written for which record, and the
Pareto front, which separates only what the intervals separate.

Pure Python (matplotlib, no Keras tensor): runs once, under tensorflow.
"""

import os

import keras
import pytest
from report_records import BASELINE, PLAIN, SEPDROP, make_record

from keras_pyramid.compare import plots, plots_costs, report
from keras_pyramid.compare.report_record import Span

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="pure Python: runs once, under tensorflow")


def test_the_pareto_front_separates_only_what_the_intervals_separate():
    points = {
        "fast": (Span(1.0, 0.9, 1.1), Span(0.30, 0.28, 0.32)),
        # Slower and more error than `fast`, but inside its intervals on both axes:
        # not shown to be beaten, so on the front (the points alone would drop it).
        "overlapping": (Span(1.05, 0.95, 1.15), Span(0.31, 0.29, 0.33)),
        # Slower than `fast` with the latency intervals apart, no less error: off.
        "beaten": (Span(2.0, 1.9, 2.1), Span(0.31, 0.29, 0.33)),
        # Slower than `fast` with the intervals apart, but less error: on.
        "accurate": (Span(3.0, 2.9, 3.1), Span(0.20, 0.19, 0.21)),
        "tie": (Span(1.0, 0.9, 1.1), Span(0.30, 0.28, 0.32)),  # equal to `fast`: both on
    }
    assert plots_costs.pareto_front(points) == ["fast", "tie", "overlapping", "accurate"]
    assert plots_costs.pareto_front({"alone": (Span(5.0, 4.0, 6.0), Span(0.5, 0.4, 0.6))}) == [
        "alone"]
    assert plots_costs.pareto_front({}) == []


def test_points_without_intervals_compare_as_points():
    points = {"fast": ((1.0, None, None), (0.30, None, None)),
              "middle": ((2.0, None, None), (0.25, None, None)),
              "beaten": ((2.5, None, None), (0.28, None, None)),
              "slower twin": ((1.0, None, None), (0.32, None, None))}
    assert plots_costs.pareto_front(points) == ["fast", "middle"]


def test_the_pareto_points_carry_both_intervals():
    record = make_record()
    points = plots_costs.pareto_points(record)
    summary = record["accuracy"][0]["per_candidate"][PLAIN]
    assert points[PLAIN] == (Span(1.5, 1.4, 1.6), Span(summary["mean"], summary["low"],
                                                       summary["high"]))
    # The as-is baseline has no interval over seeds: the test set's own stands in.
    test_set = record["accuracy"][0]["per_candidate"][BASELINE]["test_set"]
    assert points[BASELINE][1] == Span(0.30, test_set["low"], test_set["high"])
    # The plain network is faster than both with the round ranges apart, and no
    # worse in error: it alone is on the front.
    assert plots_costs.pareto_front(points) == [PLAIN]
    record["serving"][PLAIN]["onnxruntime"]["round_p50_ms"] = [1.5, 1.4, 2.3, 1.5, 1.5]
    assert plots_costs.pareto_front(plots_costs.pareto_points(record)) == [PLAIN, SEPDROP]


def test_one_noise_rate_writes_no_noise_plot(tmp_path):
    record = make_record()
    record["noise_rates"] = [0.0]
    record["accuracy"] = record["accuracy"][:1]
    record["cells"] = [c for c in record["cells"] if c["noise"] in (None, 0.0)]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "noise.png").write_bytes(b"left by a run with two rates")
    md_path, html_path = report.write_report(record, str(tmp_path))
    assert not (tmp_path / "plots" / "noise.png").exists()
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(
        f"{name}.png" for name in plots.PLOTS if name != "noise")
    assert open(html_path).read().count("data:image/png;base64,") == len(plots.PLOTS) - 1
    md = open(md_path).read()
    assert "### Label noise" not in md and "- 1 cell missing" not in md
    assert "At label noise" not in md


def test_a_record_without_curves_or_serving_writes_neither_plot(tmp_path):
    record = make_record()
    for candidate in record["candidates"]:
        candidate["learning_curves"] = None
    record["serving"] = {}
    written = plots.write_plots(record, str(tmp_path))
    assert "learning_curves" not in written and "pareto" not in written
    assert {"error", "error_vs_time", "error_vs_multiply_adds"} <= set(written)
