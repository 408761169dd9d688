"""The comparison's report and plots, from a small synthetic record: the
numbers it shows are the record's, the HTML stands alone, the warnings are
there, the Pareto front is right.

Pure Python (matplotlib, no Keras tensor): runs once, under tensorflow.
"""

import base64
import os
import re

import keras
import pytest

from keras_pyramid.compare import plots, render, report, statistics

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="pure Python: runs once, under tensorflow")

BASELINE = "current.keras"
PLAIN = "pyramidnet20_a24"
SEPDROP = "pyramidnet20_a24_sepdrop"
SEEDS = [0, 1, 2]
# Final errors per noise rate, candidate and seed; None: the cell did not finish.
ERRORS = {
    0.0: {BASELINE: [0.30, 0.30, 0.30], PLAIN: [0.25, 0.27, 0.26], SEPDROP: [0.28, 0.29, 0.31]},
    0.2: {BASELINE: [0.30, 0.30, 0.30], PLAIN: [0.33, 0.35, 0.34], SEPDROP: [0.32, 0.36, None]},
}
BUILT_FOR = "built for <ImageNet> 224 x 224 inputs & a 300-epoch recipe"
# ONNX Runtime (p50 ms, size bytes): the Pareto front at noise 0 is PLAIN alone.
SERVED = {BASELINE: (2.0, 8_000_000), PLAIN: (1.5, 4_000_000), SEPDROP: (1.8, 4_200_000)}


def accuracy_entry(noise):
    """The record's accuracy entry at `noise`, computed as the comparison does."""
    errors = ERRORS[noise]
    complete = [s for s in SEEDS if all(errors[name][s] is not None for name in errors)]
    kept = {name: [values[s] for s in complete] for name, values in errors.items()}
    per_candidate = {name: {**vars(statistics.over_seeds(values)), "errors": values}
                     for name, values in kept.items()}
    against = {}
    for name in (PLAIN, SEPDROP):
        paired = statistics.paired_difference(kept[name], kept[BASELINE])
        against[name] = {**vars(paired), "differences": list(paired.differences),
                         "verdict": statistics.verdict(paired, name, BASELINE)}
    return {"noise": noise, "complete_seeds": complete, "per_candidate": per_candidate,
            "against_baseline": against}


def cell(name, noise, seed):
    """One trained cell of the grid."""
    error = ERRORS[noise][name][seed]
    return {"candidate": name, "noise": noise, "seed": seed, "run_dir": f"cells/{name}",
            "status": "missing" if error is None else "finished", "final_error": error,
            "wall_seconds": None if error is None else 100.0 + 10 * seed,
            "train_images_per_second": None if error is None else 640.0}


def serving(name):
    """ONNX Runtime and SavedModel figures of `name` (the SavedModel twice the size)."""
    latency, size = SERVED[name]
    onnx = {"runtime": "onnxruntime 1.32.0", "requests": 500, "warmup": 50,
            "latency_ms": {"p50": latency, "p90": 1.2 * latency, "p99": 2 * latency},
            "throughput_batch": 32, "throughput_images_per_second": 900.0,
            "size_bytes": size, "peak_memory_bytes": 200 * 2 ** 20, "device": "CPU"}
    return {"seed": 0, "onnxruntime": onnx,
            "saved_model": {**onnx, "runtime": "tensorflow 2.21.0", "size_bytes": 2 * size}}


def training_cost():
    """One trained candidate's training cost."""
    return {"wall_seconds": 110.0, "train_images_per_second": 640.0, "compile_seconds": 5.0,
            "images_seen": 75000, "peak_host_memory_bytes": 512 * 2 ** 20,
            "accelerator_peak_memory_bytes": None, "device": "CPU (2 cores)",
            "projected_full_recipe_seconds": 300000.0}


def make_record():
    """The record: 3 candidates (an as-is baseline, a plain and a SepDrop
    PyramidNet-20), 3 seeds, 2 noise rates, one cell missing."""
    candidates = [
        {"name": BASELINE, "kind": "as-is", "trained": False, "built_for": None,
         "parameters": 1_000_000, "trainable_parameters": 990_000, "multiply_adds": 56_000_000},
        {"name": PLAIN, "kind": "registered", "trained": True, "built_for": None,
         "parameters": 200_000, "trainable_parameters": 198_000, "multiply_adds": 40_000_000},
        {"name": SEPDROP, "kind": "registered", "trained": True, "built_for": BUILT_FOR,
         "parameters": 210_000, "trainable_parameters": 207_000, "multiply_adds": 41_000_000}]
    names = [c["name"] for c in candidates]
    return {
        "format": 1, "written": "2026-12-03T05:00:00",
        "command": "python applications/compare.py out --seeds 3", "wall_seconds": 1234.5,
        "dataset": {"spec": "cifar10", "class_names": ["cat", "dog", "ship"],
                    "image_size": [32, 32], "train_examples": 5000, "final_evaluation": "test",
                    "evaluated_examples": 10000, "split_seed": 0},
        "budget": {"recipe": "paper", "epochs": 15, "batch_size": 64, "learning_rate": 0.1,
                   "weight_decay": 0.0001, "steps_per_epoch": 78},
        "baseline": BASELINE, "seeds": SEEDS, "noise_rates": [0.0, 0.2],
        "candidates": candidates,
        # The as-is baseline's one evaluation stands for every cell of it.
        "cells": [{"candidate": BASELINE, "noise": None, "seed": None, "run_dir": "cells/x",
                   "status": "evaluated", "final_error": 0.30}]
        + [cell(n, noise, s) for n in names[1:] for noise in ERRORS for s in SEEDS],
        "accuracy": [accuracy_entry(noise) for noise in ERRORS],
        "per_class": {"class_names": ["cat", "dog", "ship"],
                      "baseline": {"candidate": BASELINE, "errors": [0.5, 0.3, 0.1]},
                      "best": {"candidate": PLAIN, "errors": [0.4, 0.25, 0.125]}},
        "training_cost": {PLAIN: training_cost(), SEPDROP: training_cost()},
        "serving": {name: serving(name) for name in names},
        # The few-seeds warning again (the record's words it too): shown once.
        "warnings": ["a warning of the record's own", statistics.few_seeds_warning(2)],
        "not_measured": ["no GPU on this machine: accelerator costs were not measured"],
        "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"},
        "hardware": {"device": "CPU", "cpu_count": 2, "platform": "Linux-x86_64"}}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(record, folder, report.md text, report.html text), written once."""
    record = make_record()
    folder = tmp_path_factory.mktemp("comparison")
    md_path, html_path = report.write_report(record, str(folder))
    assert (md_path, html_path) == (str(folder / "report.md"), str(folder / "report.html"))
    return record, folder, open(md_path).read(), open(html_path).read()


def section(md, heading):
    """The text of the `## heading` section of report.md."""
    return md.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_row(text, name):
    """The cells of the first table row of `text` that starts with `name`."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    return line.strip("| ").split(" | ")


def test_the_sections_come_in_order_in_both_files(written):
    _, _, md, page = written
    headings = re.findall(r"^#{1,3} (.*)$", md, flags=re.M)
    assert [h for h in headings if not h.startswith("Comparison")] == [
        "Verdict", "Warnings", "Accuracy", "Per-class error", "Label noise", "Training cost",
        "Serving cost", "What this did not measure", "Budget, versions, hardware and rebuilding"]
    html_headings = [h.replace("&#x27;", "'") for h in re.findall(r"<h\d>(.*?)</h\d>", page)]
    assert html_headings == headings
    assert headings[0] == f"Comparison on cifar10: 3 candidates against {BASELINE}"
    assert ("5,000 training examples, final evaluation on test (10,000 examples), seeds 0, 1, 2, "
            "label-noise rates 0%, 20%, budget 15 epochs of 78 steps at batch 64 (paper "
            "recipe). Wall time (the runs of the command that trained or measured, added up) "
            "20m34s.") in md


def test_the_accuracy_table_shows_the_records_numbers(written):
    record, _, md, _ = written
    accuracy = section(md, "Accuracy")
    # Means by hand: (25 + 27 + 26) / 3, (28 + 29 + 31) / 3; differences against 30.
    expected = {BASELINE: ("30.00", "baseline"), PLAIN: ("26.00", "-4.00"),
                SEPDROP: ("29.33", "-0.67")}
    for name, (mean, difference) in expected.items():
        cells = table_row(accuracy, name)
        assert (cells[3], cells[6]) == (mean, difference), cells
    paired = record["accuracy"][0]["against_baseline"][PLAIN]
    cells = table_row(accuracy, PLAIN)
    assert cells[7] == f"{100 * paired['low']:+.2f} to {100 * paired['high']:+.2f}"
    assert cells[8] == f"{100 * paired['bca_low']:+.2f} to {100 * paired['bca_high']:+.2f}"
    assert cells[9] == f"{paired['p_value']:.3f}"
    assert table_row(accuracy, BASELINE)[6:] == ["baseline"] * 4
    assert table_row(accuracy, "dog") == ["dog", "30.00", "25.00"]  # per class
    noise = section(md, "Accuracy").split("### Label noise")[1]
    assert table_row(noise, SEPDROP)[2].startswith("34.00 [")  # (32 + 36) / 2, seeds 0 and 1


def test_the_verdicts_and_the_serving_ratio(written):
    record, _, md, page = written
    verdict = section(md, "Verdict")
    for entry in record["accuracy"]:
        for paired in entry["against_baseline"].values():
            assert f"- {paired['verdict']}" in verdict
    assert "At label noise 20% (2 seeds complete for every candidate):" in verdict
    # 1.8 ms / 1.5 ms and 4.2 MB / 4.0 MB, by hand.
    sentence = (f"{SEPDROP} serves at 1.20 times the ONNX Runtime p50 latency of {PLAIN} "
                f"(and 1.05 times its size).")
    assert sentence in section(md, "Serving cost") and sentence in page
    assert f"{PLAIN} serves at" not in md  # a plain network has no plain counterpart


def test_the_cost_tables(written):
    _, _, md, _ = written
    training = section(md, "Training cost")
    assert table_row(training, BASELINE)[4:] == ["not trained"] + ["—"] * 7
    assert table_row(training, PLAIN) == [
        PLAIN, "200,000", "198,000", "40.0", "640", "5.0", "1m50s", "75,000", "512.0", "none",
        "CPU (2 cores)", "3d11h"]
    serving = section(md, "Serving cost")
    assert table_row(serving, PLAIN) == [
        PLAIN, "onnxruntime 1.32.0", "1.50", "1.80", "3.00", "500", "900 at batch 32", "3.8",
        "200.0", "CPU"]
    assert "| saved_model (tensorflow 2.21.0) |" in serving


def test_the_warnings(written):
    _, _, md, page = written
    warnings = section(md, "Verdict").split("### Warnings")[1]
    assert warnings.count(statistics.few_seeds_warning(2)) == 1
    assert (f"- 1 cell missing (not finished): {SEPDROP} at label noise 20%, seed 2;"
            in warnings)
    assert (f"- {SEPDROP} was built for another recipe: {BUILT_FOR}" in warnings)
    assert ("at 4 epochs on a small folder, SepDrop lost 33 points to plain PyramidNet-20; "
            "this comparison's budget was 15 epochs of 78 steps at batch 64") in warnings
    assert "- a warning of the record's own" in warnings
    assert "&lt;ImageNet&gt; 224 x 224 inputs &amp; a 300-epoch" in page
    assert "<ImageNet>" not in page


def test_the_html_stands_alone_and_the_md_links_exist(written):
    _, folder, md, page = written
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "plots/" not in page
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(f"plots/{name}.png" for name in plots.PLOTS)
    assert all(os.path.isfile(folder / link) for link in links)
    assert "python applications/compare.py out --seeds 3 --report-only" in md


def test_the_pareto_front():
    points = {"fast": (1.0, 30.0), "middle": (2.0, 25.0), "beaten": (2.5, 28.0),
              "slower twin": (1.0, 32.0),  # as fast as `fast`, more error: off
              "tie": (2.0, 25.0),  # equal to `middle`: both stay
              "accurate": (3.0, 20.0)}
    assert plots.pareto_front(points) == ["fast", "middle", "tie", "accurate"]
    assert plots.pareto_front({"alone": (5.0, 50.0)}) == ["alone"]
    assert plots.pareto_front({}) == []


def test_one_noise_rate_writes_no_noise_plot(tmp_path):
    record = make_record()
    record["noise_rates"] = [0.0]
    record["accuracy"] = record["accuracy"][:1]
    record["cells"] = [c for c in record["cells"] if c["noise"] in (None, 0.0)]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "noise.png").write_bytes(b"left by a run with two rates")
    md_path, html_path = report.write_report(record, str(tmp_path))
    assert not (tmp_path / "plots" / "noise.png").exists()
    assert sorted(os.listdir(tmp_path / "plots")) == [
        "differences.png", "error.png", "pareto.png", "training_time.png"]
    assert open(html_path).read().count("data:image/png;base64,") == 4
    md = open(md_path).read()
    assert "### Label noise" not in md and "- 1 cell missing" not in md
    assert "At label noise" not in md


def test_missing_values_render_as_a_dash():
    record = make_record()
    record["training_cost"][PLAIN]["compile_seconds"] = None
    record["serving"][PLAIN]["onnxruntime"]["latency_ms"]["p99"] = None
    del record["serving"][SEPDROP]
    record["per_class"] = None
    record["cells"][0]["status"] = "missing"  # the as-is baseline's evaluation
    md = render.to_markdown(report.blocks(record, {}))
    assert (f"2 cells missing (not finished): {BASELINE} (its evaluation); {SEPDROP} at label "
            f"noise 20%, seed 2;") in md
    assert table_row(section(md, "Training cost"), PLAIN)[5] == "—"
    assert table_row(section(md, "Serving cost"), PLAIN)[4] == "—"
    assert f"Not served (no serving figures): {SEPDROP}." in md
    assert "serves at" not in md and "### Per-class error" not in md and "![" not in md
