"""The comparison's report, from a small synthetic record (report_records.py):
the numbers it shows are the record's, the decisions and warnings are there
and only where they apply, no interval reads "x to x".

Pure Python (matplotlib, no Keras tensor): runs once, under tensorflow.
"""

import base64
import os
import re

import keras
import pytest
from report_records import (
    BASELINE,
    BUILT_FOR,
    PLAIN,
    SEPDROP,
    column,
    make_record,
    section,
    table_row,
)

from keras_pyramid.compare import formats, plots, render, report, statistics

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="pure Python: runs once, under tensorflow")

IMAGE = re.compile(r"!\[([^]]*)\]\(([^)]+)\)")  # a Markdown image: caption, link


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(record, folder, report.md text, report.html text), written once."""
    record = make_record()
    folder = tmp_path_factory.mktemp("comparison")
    md_path, html_path = report.write_report(record, str(folder))
    assert (md_path, html_path) == (str(folder / "report.md"), str(folder / "report.html"))
    return record, folder, open(md_path).read(), open(html_path).read()


def markdown(record):
    return render.to_markdown(report.blocks(record, {}))


def test_the_sections_come_in_order_in_both_files(written):
    _, _, md, page = written
    headings = re.findall(r"^#{1,3} (.*)$", md, flags=re.M)
    assert [h for h in headings if not h.startswith("Comparison")] == [
        "Verdict", "Warnings", "Accuracy", "BatchNorm statistics", "Learning curves",
        "Per-class error", "Label noise", "Training cost", "Error against cost", "Serving cost",
        "What this did not measure", "Budget, versions, hardware and rebuilding"]
    html_headings = [h.replace("&#x27;", "'") for h in re.findall(r"<h\d>(.*?)</h\d>", page)]
    assert html_headings == headings
    assert headings[0] == f"Comparison on cifar10: 3 candidates against {BASELINE}"
    assert ("5,000 training examples, final evaluation on test (10,000 examples), seeds 0, 1, 2, "
            "label-noise rates 0%, 20%, budget 15 epochs of 78 steps at batch 64 (paper "
            "recipe). Input 32x32 for every candidate (the data's own). Wall time (the runs of "
            "the command that trained or measured, added up) 20m34s.") in md


def test_the_accuracy_table_shows_the_records_numbers(written):
    record, _, md, _ = written
    accuracy = section(md, "Accuracy")
    # Means by hand: (25 + 27 + 26) / 3, (28 + 29 + 31) / 3; differences against 30.
    expected = {BASELINE: ("30.00", "baseline"), PLAIN: ("26.00", "-4.00"),
                SEPDROP: ("29.33", "-0.67")}
    for name, (mean, difference) in expected.items():
        assert column(accuracy, name, "mean error (%)") == mean
        assert column(accuracy, name, "difference vs baseline (points)") == difference
    entry = record["accuracy"][0]
    for name in (PLAIN, SEPDROP):
        paired = entry["against_baseline"][name]
        assert column(accuracy, name, "paired t 95% CI (points)") == (
            f"{100 * paired['low']:+.2f} to {100 * paired['high']:+.2f}")
        assert column(accuracy, name, "p (paired t)") == f"{paired['p_value']:.3f}"
        assert column(accuracy, name, "sign-flip p") == f"{paired['sign_flip_p']:.3f}"
    assert table_row(accuracy, BASELINE)[7:] == ["baseline"] * 5
    assert table_row(accuracy, "dog") == ["dog", "30.00", "25.00"]  # per class
    noise = section(md, "Accuracy").split("### Label noise")[1]
    assert table_row(noise, SEPDROP)[2].startswith("34.00 [")  # (32 + 36) / 2, seeds 0 and 1


def test_the_decision_and_test_set_columns_show_the_records_numbers(written):
    record, _, md, _ = written
    accuracy = section(md, "Accuracy")
    entry = record["accuracy"][0]
    # Less error in every seed (-5, -3, -4 points): better; -2, -1, +1: inconclusive.
    assert column(accuracy, PLAIN, "decision") == "better"
    assert column(accuracy, SEPDROP, "decision") == "inconclusive"
    for name in (BASELINE, PLAIN, SEPDROP):
        test_set = entry["per_candidate"][name]["test_set"]
        assert column(accuracy, name, "test-set 95% CI (%)") == (
            f"{100 * test_set['low']:.2f} to {100 * test_set['high']:.2f}")
    assert column(accuracy, BASELINE, "95% CI over seeds (%)") == "—"  # one evaluation
    assert "on the 10,000 examples evaluated" in accuracy
    assert "with 3 seeds it cannot go below 0.25" in accuracy  # 2 / 2^3
    assert "Decision against a margin of ±1 points" in accuracy


def test_bca_is_a_column_only_when_a_comparison_has_it(written):
    _, _, md, _ = written
    assert "BCa 95% CI" not in md
    assert "BCa bootstrap intervals are given from 10 seeds on" in md
    record = make_record()
    record["accuracy"][0]["against_baseline"][PLAIN].update(bca_low=-0.06, bca_high=-0.02)
    accuracy = section(markdown(record), "Accuracy")
    assert column(accuracy, PLAIN, "BCa 95% CI (points)") == "-6.00 to -2.00"
    assert column(accuracy, SEPDROP, "BCa 95% CI (points)") == "—"
    assert "BCa bootstrap intervals are given" not in accuracy


def test_no_interval_reads_x_to_x():
    record = make_record()
    entry = record["accuracy"][0]
    entry["per_candidate"][PLAIN]["test_set"].update(low=0.30001, high=0.30004)
    entry["per_candidate"][PLAIN].update(std=0.0, low=None, high=None)  # every seed alike
    entry["against_baseline"][SEPDROP].update(low=None, high=None, p_value=None,
                                              note=statistics.NO_SPREAD_NOTE)
    md = markdown(record)
    assert re.findall(r"(?<![\w.+-])([-+]?\d[\d.,]*) to \1(?![\d])", md) == []
    accuracy = section(md, "Accuracy")
    assert column(accuracy, PLAIN, "test-set 95% CI (%)") == "30.00 (narrower than shown)"
    assert column(accuracy, PLAIN, "95% CI over seeds (%)") == "not estimable (no spread)"
    assert column(accuracy, SEPDROP, "paired t 95% CI (points)") == "not estimable"
    assert column(accuracy, SEPDROP, "p (paired t)") == "—"
    assert f"- {SEPDROP}: {statistics.NO_SPREAD_NOTE}" in accuracy
    assert formats.interval(0.2, 0.3, formats.percent) == "20.00 to 30.00"


def test_the_verdict_gives_each_decision_and_what_would_decide_it(written):
    record, _, md, page = written
    verdict = section(md, "Verdict")
    for entry in record["accuracy"]:
        for paired in entry["against_baseline"].values():
            assert paired["verdict"] in verdict
    assert f"- {PLAIN}: better against {BASELINE} (margin ±1 points): " in verdict
    paired = record["accuracy"][0]["against_baseline"][SEPDROP]
    assert (f"- {SEPDROP}: inconclusive against {BASELINE} (margin ±1 points): "
            f"{paired['verdict']}. These 3 seeds detect a difference of "
            f"{100 * paired['detectable_difference']:.1f} points (80% power); about "
            f"{paired['seeds_to_resolve']} seeds would decide it (in all, ") in verdict
    assert "At label noise 20% (2 seeds complete for every candidate):" in verdict
    # Only SepDrop's curve was still falling.
    assert f"The ranking holds for this budget only: {SEPDROP} still improved" in verdict
    assert f"only: {PLAIN}," not in verdict and f"{PLAIN} still improved" not in verdict
    record["candidates"][2]["still_improving"] = False
    assert "holds for this budget only" not in section(markdown(record), "Verdict")


def test_the_warnings(written):
    _, _, md, page = written
    warnings = section(md, "Verdict").split("### Warnings")[1]
    assert warnings.count(statistics.few_seeds_warning(2)) == 1
    assert (f"- 1 cell missing (not finished): {SEPDROP} at label noise 20%, seed 2;"
            in warnings)
    assert f"- {SEPDROP} was built for another recipe: {BUILT_FOR}" in warnings
    assert "- a warning of the record's own" in warnings
    # The short-budget anecdote, retired: not printed, even from a record carrying it.
    assert "33 points" not in md and "A short budget" not in md
    assert "&lt;ImageNet&gt; 224 x 224 inputs &amp; a 300-epoch" in page
    assert "<ImageNet>" not in page


def test_the_shared_machine_warning_only_when_shared(written):
    _, _, md, _ = written
    shared = "other processes shared the machine during 2 of 11 cells"
    assert shared in section(md, "Verdict")
    record = make_record()
    record["machine"]["shared"] = False
    assert "shared the machine" not in markdown(record)
    record["machine"] = None  # an older record
    assert "shared the machine" not in markdown(record)


def test_the_batch_norm_table(written):
    _, _, md, _ = written
    batch_norm = section(md, "BatchNorm statistics", level=3)
    assert ("re-estimated on 4,096 training images (16 batches; precise BatchNorm, Wu and "
            "Johnson 2021), for every candidate alike") in batch_norm
    assert f"differ by more than 1 point for {SEPDROP} (" in batch_norm
    # Means over seeds 0-2 at noise 0: as trained 3 (SepDrop) and 0.2 (plain) points above.
    assert table_row(batch_norm, SEPDROP) == [SEPDROP, "3", "32.33", "29.33", "-3.00"]
    assert table_row(batch_norm, PLAIN) == [PLAIN, "3", "26.20", "26.00", "-0.20"]
    record = make_record()
    for cell in record["cells"]:
        if cell.get("error_as_trained") is not None:
            cell["error_as_trained"] = cell["final_error"] + 0.005
    batch_norm = section(markdown(record), "BatchNorm statistics", level=3)
    assert "agree within 1 point for every candidate" in batch_norm
    assert "error as trained (%)" not in batch_norm


def test_the_learning_curves_image_and_its_caption(written):
    _, folder, md, page = written
    captions = {link: caption for caption, link in IMAGE.findall(md)}
    curves = [link for link, caption in captions.items() if "learning curves" in caption]
    assert curves == ["plots/learning_curves.png"]
    assert os.path.isfile(folder / curves[0])
    assert "hold-out of train (1000 of 50000)" in captions[curves[0]]
    assert re.search(r"<figcaption>[^<]*learning curves[^<]*</figcaption>", page)
    learning = section(md, "Learning curves", level=3)
    assert column(learning, PLAIN, "still improving") == "no"
    assert column(learning, SEPDROP, "still improving") == "yes"
    assert column(learning, SEPDROP, "fall over the last third (points)") == "5.00"


def test_the_training_cost_tables(written):
    _, _, md, _ = written
    training = section(md, "Training cost")
    assert table_row(training, BASELINE)[4:] == ["not trained"] + ["—"] * 7
    assert table_row(training, PLAIN) == [
        PLAIN, "200,000", "198,000", "40.0", "640", "5.0", "1m50s", "75,000", "512.0", "none",
        "CPU (2 cores)", "3d11h"]
    assert column(training, PLAIN, "wall time vs baseline") == "1.25x (1.10 to 1.42)"
    assert column(training, SEPDROP, "wall time vs baseline") == (
        "1.04x (0.98 to 1.10), no difference shown")
    assert column(training, SEPDROP, "train images/s vs baseline") == "—"
    assert "measured in a fresh process per cell" in training
    assert "only where the paired ratio of wall time below is claimed" in training


def test_a_cost_ratio_shows_a_difference_only_when_claimed():
    record = make_record()
    record["training_cost"][PLAIN]["against_baseline"]["wall_seconds"]["claimed"] = False
    record["serving_ratios"][PLAIN]["onnxruntime"]["claimed"] = False
    md = markdown(record)
    assert column(section(md, "Training cost"), PLAIN, "wall time vs baseline") == (
        "1.25x (1.10 to 1.42), no difference shown")
    serving = section(md, "Serving cost")
    assert column(serving, PLAIN, "p50 vs baseline").endswith(", no difference shown")
    assert f"{PLAIN} serves at 0.75x the onnxruntime" not in serving


def test_the_serving_table_and_its_claimed_ratios(written):
    record, _, md, page = written
    serving = section(md, "Serving cost")
    assert table_row(serving, PLAIN) == [
        PLAIN, "onnxruntime 1.32.0", "1.50", "1.40 to 1.60", "1.80", "3.00", "500 in 5 rounds",
        "0.25", "900 at batch 32", "3.8", "200.0", "0.75x (0.68 to 0.83)", "CPU"]
    assert column(serving, BASELINE, "p50 vs baseline") == "baseline"
    assert column(serving, SEPDROP, "p50 vs baseline") == (
        "0.97x (0.88 to 1.07), no difference shown")
    assert "| saved_model (tensorflow 2.21.0) |" in serving
    sentence = (f"{PLAIN} serves at 0.75x the onnxruntime 1.32.0 p50 latency of {BASELINE} "
                f"(95% CI 0.68 to 0.83, 5 rounds paired).")
    assert sentence in serving and sentence in page
    assert f"{PLAIN} serves at 0.75x the saved_model (tensorflow 2.21.0) p50 latency" in serving
    assert f"{SEPDROP} serves at" not in md  # its interval holds 1: no sentence
    assert "reached 0.50 (on 2 cores)" in serving  # the load before the serving rounds


def test_the_html_stands_alone_and_the_md_links_exist(written):
    _, folder, md, page = written
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(plots.PLOTS)
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "plots/" not in page
    links = [link for _, link in IMAGE.findall(md)]
    assert sorted(links) == sorted(f"plots/{name}.png" for name in plots.PLOTS)
    assert all(os.path.isfile(folder / link) for link in links)
    assert "python applications/compare.py out --seeds 3 --report-only" in md


def test_missing_values_render_as_a_dash():
    record = make_record()
    record["training_cost"][PLAIN]["compile_seconds"] = None
    record["serving"][PLAIN]["onnxruntime"]["latency_ms"]["p99"] = None
    del record["serving"][SEPDROP]
    record["per_class"] = None
    record["cells"][0]["status"] = "missing"  # the as-is baseline's evaluation
    md = markdown(record)
    assert (f"2 cells missing (not finished): {BASELINE} (its evaluation); {SEPDROP} at label "
            f"noise 20%, seed 2;") in md
    assert column(section(md, "Training cost"), PLAIN, "compile (s)") == "—"
    assert column(section(md, "Serving cost"), PLAIN, "p99 (ms)") == "—"
    assert f"Not served (no serving figures): {SEPDROP}." in md
    assert "### Per-class error" not in md and "![" not in md


def test_an_older_record_renders_what_it_has():
    record = make_record()
    for key in ("serving_ratios", "machine"):
        del record[key]
    for candidate in record["candidates"]:
        del candidate["learning_curves"], candidate["still_improving"]
    for cell in record["cells"]:
        for key in ("error_as_trained", "batch_norm_reestimated", "curve", "curve_on",
                    "process", "machine_load"):
            cell.pop(key, None)
    for entry in record["accuracy"]:
        entry.pop("margin")
        for summary in entry["per_candidate"].values():
            del summary["test_set"]
        for paired in entry["against_baseline"].values():
            for key in ("decision", "smallest_sign_flip_p", "detectable_difference",
                        "seeds_to_resolve"):
                del paired[key]
    for name in (PLAIN, SEPDROP):
        del record["training_cost"][name]["against_baseline"]
    for name in (BASELINE, PLAIN, SEPDROP):
        for runtime in ("onnxruntime", "saved_model"):
            for key in ("rounds", "round_p50_ms", "load_seconds", "round_load"):
                del record["serving"][name][runtime][key]
    md = markdown(record)
    paired = record["accuracy"][0]["against_baseline"][PLAIN]
    assert f"- {paired['verdict']}\n" in section(md, "Verdict")
    assert "this record holds no re-estimation" in md and "### Learning curves" not in md
    assert column(section(md, "Accuracy"), PLAIN, "test-set 95% CI (%)") == "—"
    serving = section(md, "Serving cost")
    assert "measured once, one after the other (no rounds)" in serving
    assert column(serving, PLAIN, "round p50 range (ms)") == "—"
    assert column(serving, PLAIN, "p50 vs baseline") == "—"
