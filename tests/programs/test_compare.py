"""applications/compare.py: candidates against a baseline over seeds, with costs, in a report.

A tiny comparison runs once per backend (a module fixture): a 3-unit registered
PyramidNet and keras.applications' MobileNet (the cheapest of its builders to
compile here), 2 seeds, 2 steps each, on 64 real CIFAR-10 training images.
The tests that extend, lose or kill cells work on comparisons of 3-unit
PyramidNets alone, whose cells cost seconds. Serving is measured through
the program in the TensorFlow run only, and apart in
tests/compare/test_serving.py: exporting from JAX and PyTorch goes through a
TensorFlow subprocess, which CI's time cannot afford three times.
"""

import json
import os
import shutil
import signal
import time
from subprocess import STDOUT

import keras
import pytest
from helpers.data import write_image_folder
from helpers.hand_counts import mobilenet_multiply_adds, pyramidnet_multiply_adds
from helpers.models import tiny_model
from helpers.paths import REPO
from helpers.processes import run_command, run_kerastuner_cluster, start_command
from helpers.programs import load_program, refusal

import keras_pyramid
from keras_pyramid.utils import processes

COMPARE = os.path.join(REPO, "applications", "compare.py")
PYRAMIDNET = "pyramidnet8_a24"
MOBILENET = "keras:MobileNet"
DROP = f"{PYRAMIDNET}_drop"
SEPDROP = f"{PYRAMIDNET}_sepdrop"
# What a comparison does with its cells (keep, extend, rerun, refuse, share
# out) is the same on every backend: a cell is one experiment.run, whose
# training, checkpoints and resume are tested per backend in tests/training.
ONCE = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="the comparison's handling of its cells: runs once, under "
                                 "tensorflow (a cell's training is experiment.run's, tested per "
                                 "backend; the program per backend: the `compared` tests)")


def arguments(tfds_dir, output, *extra, candidates=(PYRAMIDNET, DROP), seeds=2, serving=0,
              steps=2):
    return ["--dataset", "cifar10", "--data-dir", tfds_dir, "--no-download",
            "--candidates", *candidates, "--baseline", PYRAMIDNET, "--seeds", str(seeds),
            "--epochs", "1", "--steps-per-epoch", str(steps), "--batch-size", "16",
            "--train-examples", "64", "--eval-steps", "2", "--verbose", "0",
            "--serving-requests", str(serving), "--output", str(output),
            # In this process, unless a test asks for fresh ones: each cell's
            # process costs a start-up (the `compared` fixture measures them).
            *(() if "--fresh" in extra else ("--cells-in-process",)), "--no-estimate",
            *(e for e in extra if e != "--fresh")]


def compare(argv):
    return load_program(COMPARE).main(argv)


@pytest.fixture(scope="module")
def compared(cifar10_sample_tfds_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("compare") / "tiny"
    assert compare(arguments(cifar10_sample_tfds_dir, output, "--fresh",
                             candidates=(PYRAMIDNET, MOBILENET))) == 0
    return output


@pytest.fixture(scope="module")
def pyramidnets(cifar10_sample_tfds_dir, tmp_path_factory):
    """A comparison of two 3-unit PyramidNets on one seed, cells of seconds."""
    output = tmp_path_factory.mktemp("compare") / "pyramidnets"
    assert compare(arguments(cifar10_sample_tfds_dir, output, seeds=1)) == 0
    return output


@pytest.fixture
def copy(pyramidnets, tmp_path):
    target = tmp_path / "pyramidnets"
    shutil.copytree(pyramidnets, target)
    return target


def read(path):
    return json.loads(path.read_text())


def cell(output, candidate, seed, noise=0):
    slug = candidate.replace(":", "-")
    return output / "cells" / slug / f"noise-{noise}" / f"seed-{seed}"


def test_the_report_holds_the_run_directories_numbers(compared):
    record = read(compared / "comparison.json")
    assert [c["name"] for c in record["candidates"]] == [PYRAMIDNET, MOBILENET]
    assert len(record["cells"]) == 4 and {r["status"] for r in record["cells"]} == {"finished"}
    for row in record["cells"]:
        results = read(compared / row["run_dir"] / "results.json")
        assert row["final_error"] == results["final_error"]
        assert row["train_images_per_second"] == results["train_images_per_second"]
        history = read(compared / row["run_dir"] / "history.json")
        assert row["wall_seconds"] == pytest.approx(sum(r["seconds"] for r in history))
        # The cell's own fresh process's peak: TensorFlow and Keras alone hold
        # over 200 MiB, and it is under the machine's memory. A peak in KiB
        # (or in pages, or in MiB) falls outside. Measured in a process of its
        # own, no earlier cell's memory is in it (they once shared one).
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert 200 * 2**20 < row["peak_host_memory_bytes"] < total
        assert row["process"] == "fresh"
        assert row["machine_load"]["cores"] == os.cpu_count()
        assert 0 <= row["machine_load"]["other_cpu_fraction"] <= 1
        # One input size for every cell, and the per-epoch curve of its history.
        assert row["image_size"] == [32, 32] == results["image_size"]
        assert [p["epoch"] for p in row["curve"]] == [r["epoch"] for r in history]
        # BatchNorm re-estimated after training, the error as trained kept beside.
        assert results["batch_norm_reestimated"]["layers"] > 0
        assert row["error_as_trained"] == results["error_as_trained"]
    accuracy = record["accuracy"][0]
    assert accuracy["complete_seeds"] == [0, 1]
    errors = {name: [read(cell(compared, name, s) / "results.json")["final_error"]
                     for s in (0, 1)] for name in (PYRAMIDNET, MOBILENET)}
    assert accuracy["per_candidate"][MOBILENET]["errors"] == errors[MOBILENET]
    differences = accuracy["against_baseline"][MOBILENET]["differences"]
    assert differences == pytest.approx([m - p for m, p in zip(errors[MOBILENET],
                                                               errors[PYRAMIDNET])])
    report = (compared / "report.md").read_text()
    mean = sum(errors[MOBILENET]) / 2
    assert f"{100 * mean:.2f}" in report
    assert "only 2 seeds" in report
    html = (compared / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6  # no serving figures: no Pareto plot
    assert "Serving was not measured" in report
    # The cells' costs: every one trained, each candidate counted.
    for entry in record["candidates"]:
        assert entry["parameters"] > entry["trainable_parameters"] > 0
    # Counted by hand from each architecture at CIFAR-10's 32x32 and 10 classes.
    multiply_adds = {entry["name"]: entry["multiply_adds"] for entry in record["candidates"]}
    assert multiply_adds == {
        PYRAMIDNET: pyramidnet_multiply_adds(32, keras_pyramid.unit_widths(8, 24, False), False),
        MOBILENET: mobilenet_multiply_adds(32)}


@ONCE
def test_the_split_is_the_same_for_every_cell_and_kept_from_the_seeds(compared):
    records = [read(compared / row["run_dir"] / "data.json")
               for row in read(compared / "comparison.json")["cells"]]
    splits = {json.dumps(r["split"], sort_keys=True) for r in records}
    assert len(splits) == 1
    split = records[0]["split"]
    assert split["seed"] == 0 and split["train"] == 64 and split["train_examples"] == 64


@ONCE
def test_a_rerun_keeps_finished_cells_and_extends_with_a_seed_and_a_candidate(
        copy, cifar10_sample_tfds_dir):
    before = {path: path.stat().st_mtime_ns for path in copy.glob("cells/*/*/*/results.json")}
    first_wall = read(copy / "comparison.json")["wall_seconds"]
    assert compare(arguments(cifar10_sample_tfds_dir, copy, seeds=2,
                             candidates=(PYRAMIDNET, DROP, SEPDROP))) == 0
    after = {path: path.stat().st_mtime_ns for path in copy.glob("cells/*/*/*/results.json")}
    assert all(after[path] == mtime for path, mtime in before.items())  # kept as they were
    assert len(before) == 2 and len(after) == 6  # 3 candidates x 2 seeds
    record = read(copy / "comparison.json")
    assert record["accuracy"][0]["complete_seeds"] == [0, 1]
    assert set(record["accuracy"][0]["against_baseline"]) == {DROP, SEPDROP}
    assert record["wall_seconds"] > first_wall  # the two runs' wall times, added up
    # A smaller --seeds reports on the first seeds and trains nothing more.
    assert compare(arguments(cifar10_sample_tfds_dir, copy, seeds=1,
                             candidates=(PYRAMIDNET, DROP, SEPDROP))) == 0
    assert read(copy / "comparison.json")["seeds"] == [0]
    assert read(copy / "comparison.json")["accuracy"][0]["complete_seeds"] == [0]
    assert {p: p.stat().st_mtime_ns for p in copy.glob("cells/*/*/*/results.json")} == after


@ONCE
def test_a_missing_cell_is_named_then_run_again(copy, cifar10_sample_tfds_dir):
    lost = cell(copy, DROP, 0)
    shutil.rmtree(lost)  # what a lost KerasTuner trial leaves
    assert compare(["--output", str(copy), "--report-only"]) == 0
    record = read(copy / "comparison.json")
    assert record["accuracy"][0]["complete_seeds"] == []  # only complete seeds pair
    assert f"{DROP} at label noise 0%, seed 0" in (copy / "report.md").read_text()
    assert compare(arguments(cifar10_sample_tfds_dir, copy, seeds=1)) == 0
    assert (lost / "results.json").exists()
    assert read(copy / "comparison.json")["accuracy"][0]["complete_seeds"] == [0]


@ONCE
def test_another_budget_on_a_comparison_is_refused_with_the_differences(
        copy, cifar10_sample_tfds_dir, capsys):
    files = sorted(p for p in copy.rglob("*") if p.is_file())
    line = refusal(COMPARE, arguments(cifar10_sample_tfds_dir, copy, "--lr", "0.5", seeds=1),
                   capsys)
    assert "--output" in line and "learning_rate: None -> 0.5" in line
    assert sorted(p for p in copy.rglob("*") if p.is_file()) == files


@ONCE
def test_sigkill_in_a_cell_then_the_same_command_keeps_the_finished_and_reruns_the_killed(
        cifar10_sample_tfds_dir, tmp_path):
    output = tmp_path / "killed"
    argv = ["python", COMPARE, *arguments(cifar10_sample_tfds_dir, output, seeds=1, steps=20)]
    log_path = tmp_path / "log"
    killed = cell(output, DROP, 0)
    with open(log_path, "w") as log:
        process = start_command(argv, stdout=log, stderr=STDOUT)
        deadline = time.monotonic() + 300
        try:  # the second cell has begun: its run directory holds its arguments
            while (not (killed / "args.json").exists() and time.monotonic() < deadline
                   and process.poll() is None):
                time.sleep(0.1)
            assert (killed / "args.json").exists(), log_path.read_text()[-3000:]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    first = cell(output, PYRAMIDNET, 0) / "results.json"
    finished_at = first.stat().st_mtime_ns
    assert not (killed / "results.json").exists()
    resumed = run_command(argv, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert first.stat().st_mtime_ns == finished_at  # the finished cell is kept
    assert "starting it over from the first step" in resumed.stdout  # the killed one reruns
    record = read(output / "comparison.json")
    assert {r["status"] for r in record["cells"]} == {"finished"}


@ONCE
def test_a_killed_comparison_takes_its_cells_process_with_it(cifar10_sample_tfds_dir, tmp_path):
    """Each cell in a fresh process: SIGKILL to the comparison ends the cell's
    process too (it asked for SIGTERM when its parent dies, and stops at a
    checkpoint), so no orphan keeps training or holds the cell's lock, and
    the same command then finishes the comparison."""
    output = tmp_path / "fresh"
    argv = ["python", COMPARE, *arguments(cifar10_sample_tfds_dir, output, "--fresh", seeds=1,
                                          steps=40)]
    first = cell(output, PYRAMIDNET, 0)
    with open(tmp_path / "log", "w") as log:
        process = start_command(argv, stdout=log, stderr=STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not (first / "args.json").exists() and time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / "log").read_text()[-3000:]
                time.sleep(0.1)
            holder = int((first / ".lock").read_text().strip())
            assert holder != process.pid  # the cell trains in a process of its own
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    deadline = time.monotonic() + 120
    while processes.process_alive(holder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes.process_alive(holder)
    resumed = run_command(argv, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {r["status"] for r in read(output / "comparison.json")["cells"]} == {"finished"}


@ONCE
def test_a_chief_and_a_worker_share_the_cells(cifar10_sample_tfds_dir, tmp_path):
    output = tmp_path / "distributed"
    argv = arguments(cifar10_sample_tfds_dir, output, seeds=1)
    codes, logs = run_kerastuner_cluster(["python", COMPARE, *argv], ("chief", "tuner0"),
                                         tmp_path)
    assert codes == {"chief": 0, "tuner0": 0}, logs
    assert logs["tuner0"].count("cell ") >= 1, logs  # the worker trained cells
    record = read(output / "comparison.json")
    assert {r["status"] for r in record["cells"]} == {"finished"}, logs
    assert len(record["cells"]) == 2


@ONCE
@pytest.mark.parametrize("change, expected", [
    ({"--candidates": ["pyramidnet8_a42"]}, "--candidates: `candidates`"),
    ({"--candidates": ["keras:MobileNetV9"]}, "keras.applications has no builder"),
    ({"--baseline": "resnet"}, "--baseline"),
    ({"--seeds": "0"}, "--seeds: must be an int >= 1, got 0"),
    ({"--label-noise": "0,1"}, "--label-noise: each rate must be in [0, 1), got 0,1"),
    ({"--image-size": "16,16"}, "keras:MobileNet"),
    ({"--train-examples": "100000"}, "--train-examples: 100,000 exceeds the 2,000 training"),
])
def test_bad_input_is_one_line_and_writes_nothing(change, expected, tmp_path, capsys,
                                                  cifar10_sample_tfds_dir):
    argv = arguments(cifar10_sample_tfds_dir, tmp_path / "out", candidates=(PYRAMIDNET, MOBILENET))
    for flag, value in change.items():
        start = argv.index(flag) + 1 if flag in argv else None
        if flag == "--candidates":
            argv[start:start] = value  # a third candidate
        elif start is not None:
            argv[start] = value
        else:
            argv += [flag, value]
    line = refusal(COMPARE, argv, capsys)
    assert expected in line, line
    assert not (tmp_path / "out").exists()


@ONCE
def test_a_keras_file_that_is_not_an_image_classifier_is_refused(tmp_path, capsys,
                                                                 cifar10_sample_tfds_dir):
    inputs = keras.Input((8,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(tmp_path / "regressor.keras")
    argv = arguments(cifar10_sample_tfds_dir, tmp_path / "out",
                     candidates=(PYRAMIDNET, str(tmp_path / "regressor.keras")))
    line = refusal(COMPARE, argv, capsys)
    assert "is not an image classifier" in line and "regressor.keras" in line
    assert not (tmp_path / "out").exists()


def test_a_keras_file_trains_from_its_weights_and_an_as_is_one_is_only_evaluated(
        tmp_path, cifar10_sample_tfds_dir, capsys):
    """The user's current model: a .keras file trained from its weights (a
    5-class one gets a new head for CIFAR-10's 10 classes) against the same
    file as it is, evaluated and not trained (the baseline)."""
    current = tmp_path / "current.keras"
    tiny_model(input_shape=(32, 32, 3), classes=5).save(current)
    output = tmp_path / "files"
    argv = arguments(cifar10_sample_tfds_dir, output, seeds=2,
                     candidates=(f"as-is:{current}", str(current)))
    argv[argv.index("--baseline") + 1] = f"as-is:{current}"
    line = refusal(COMPARE, argv, capsys)  # 5 classes cannot be scored on 10 as they are
    assert "has 5 classes and the data 10" in line
    assert not output.exists()
    tiny_model(input_shape=(32, 32, 3), classes=10).save(current)
    served = keras.backend.backend() == "tensorflow"  # exports elsewhere need a TF subprocess
    argv[argv.index("--serving-requests") + 1] = "20" if served else "0"
    started = time.perf_counter()
    assert compare(argv) == 0
    took = time.perf_counter() - started
    record = read(output / "comparison.json")
    # The recorded wall time is the command's, serving included (it once left serving out).
    assert took * 0.9 <= record["wall_seconds"] <= took
    kinds = {c["name"]: c["kind"] for c in record["candidates"]}
    assert kinds == {str(current): "file", f"as-is:{current}": "as-is"}
    as_is = next(r for r in record["cells"] if r["candidate"] == f"as-is:{current}")
    assert as_is["status"] == "evaluated" and 0 <= as_is["final_error"] <= 1
    assert record["training_cost"][f"as-is:{current}"] is None
    trained = {int(path.parent.name.removeprefix("seed-")): read(path)
               for path in output.glob("cells/file-current-*/*/*/results.json")}
    assert sorted(trained) == [0, 1]
    assert all(r["images_seen"] == 32 and r["head"] is None for r in trained.values())
    # The paired difference of the trained copies against the file as it is:
    # seed s's trained error minus the as-is error, seed by seed.
    accuracy = record["accuracy"][0]
    assert accuracy["complete_seeds"] == [0, 1]
    assert accuracy["per_candidate"][f"as-is:{current}"]["errors"] == [as_is["final_error"]] * 2
    # One evaluation, not a sample of seeds: no SD 0 and no "x to x" interval.
    as_is_summary = accuracy["per_candidate"][f"as-is:{current}"]
    assert as_is_summary["n"] == 1 and as_is_summary["std"] is None
    assert as_is_summary["low"] is None and as_is_summary["test_set"]["examples"] == 32
    paired = accuracy["against_baseline"][str(current)]["differences"]
    assert paired == pytest.approx([trained[s]["final_error"] - as_is["final_error"]
                                    for s in (0, 1)])
    if served:  # both candidates exported as export.py exports, and measured
        for name in (str(current), f"as-is:{current}"):
            for runtime in ("onnxruntime", "saved_model"):
                # The 20 timed requests fit in the command's time: a latency
                # in seconds or microseconds does not.
                measured = record["serving"][name][runtime]
                assert measured["requests"] == 20
                assert 0.01 < measured["latency_ms"]["min"]
                assert 20 * measured["latency_ms"]["mean"] / 1000 < took
        assert "ONNX Runtime p50" in (output / "report.md").read_text()
        capsys.readouterr()
        assert compare(argv) == 0  # nothing to train or measure again
        out = capsys.readouterr().out
        assert "measured earlier (20 requests in 2 rounds), kept" in out
        assert "exporting" not in out


@ONCE
def test_the_split_seed_not_the_training_seed_draws_the_hold_out_and_the_subset(
        cifar10_sample_tfds_dir):
    from keras_pyramid.training import config as run_config
    from keras_pyramid.training import run_data

    def split(seed, split_seed):
        config = run_config.RunConfig(dataset="cifar10", data_dir=cifar10_sample_tfds_dir,
                                      download=False, validation=0.1, train_examples=300,
                                      seed=seed, split_seed=split_seed)
        _, splits = run_data.open_data(config)
        return splits.train.indices.tolist(), splits.validation.indices.tolist()

    train, held_out = split(seed=0, split_seed=7)
    assert len(train) == 300 and len(held_out) == 200 and not set(train) & set(held_out)
    assert split(seed=3, split_seed=7) == (train, held_out)  # another training seed
    other_train, other_held_out = split(seed=0, split_seed=8)
    assert other_held_out != held_out and other_train != train
    # Before split seeds, the training seed drew the split: 0.1.0 runs keep theirs.
    assert split(seed=7, split_seed=None) == (train, held_out)


# ---------------------------------------------------------------- nothing lost (issue 30)


def files_of(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@ONCE
def test_a_training_run_as_output_is_refused_and_its_records_stay(pyramidnets, tmp_path,
                                                                  cifar10_sample_tfds_dir,
                                                                  capsys):
    run = tmp_path / "run"
    shutil.copytree(cell(pyramidnets, PYRAMIDNET, 0), run)  # a finished training run
    before = files_of(run)
    line = refusal(COMPARE, arguments(cifar10_sample_tfds_dir, run, seeds=1), capsys)
    assert "--output" in line and "holds a training run" in line, line
    assert files_of(run) == before


@ONCE
@pytest.mark.parametrize("where, expected", [
    ("a file", "is a file"), ("under a file", "cannot be created: Not a directory"),
    ("the user's folder", "is not empty and holds no comparison (it holds notes.txt)")])
def test_an_output_that_cannot_hold_a_comparison_is_one_line(where, expected, tmp_path,
                                                             cifar10_sample_tfds_dir, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    output = {"a file": tmp_path / "notes.txt", "under a file": tmp_path / "notes.txt" / "out",
              "the user's folder": tmp_path}[where]
    line = refusal(COMPARE, arguments(cifar10_sample_tfds_dir, output, seeds=1), capsys)
    assert expected in line and "--output" in line, line
    assert (tmp_path / "notes.txt").read_text() == "mine"


@ONCE
@pytest.mark.parametrize("record", ["comparison.json", "compare.json", "data.json"])
def test_a_corrupt_comparison_record_is_one_line_naming_it(record, copy, capsys):
    (copy / record).write_text('{"truncated": ')
    line = refusal(COMPARE, ["--output", str(copy), "--report-only"], capsys)
    assert f"{copy / record} is corrupt (JSONDecodeError" in line and "--output" in line, line


@ONCE
def test_a_truncated_cell_model_is_retrained_by_the_next_run(copy, cifar10_sample_tfds_dir,
                                                             capsys):
    model = cell(copy, DROP, 0) / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])
    (cell(copy, PYRAMIDNET, 0) / "args.json").write_text('{"model": ')  # no flag to restart it
    assert compare(arguments(cifar10_sample_tfds_dir, copy, seeds=1)) == 0
    out = capsys.readouterr().out
    assert "it was finished but its model.keras is truncated or corrupt: training it again" in out
    assert "cell 1 of 2 to train" in out and "cell 2 of 2 to train" in out and " left" in out
    assert "args.json is corrupt (JSONDecodeError" in out and "--restart" not in out
    keras.saving.load_model(model)  # whole again
    assert json.loads((cell(copy, PYRAMIDNET, 0) / "args.json").read_text())["model"] == PYRAMIDNET
    assert {r["status"] for r in read(copy / "comparison.json")["cells"]} == {"finished"}


@ONCE
def test_a_keras_file_is_known_by_its_content(tmp_path, cifar10_sample_tfds_dir, capsys):
    """A/current.keras, then B/current.keras (another model of the same name):
    two candidates, each trained. The report needs only the record: it
    rebuilds after the files moved. A changed file under a compared path
    is refused."""
    paths = [tmp_path / folder / "current.keras" for folder in "AB"]
    for seed, path in enumerate(paths):
        path.parent.mkdir()
        keras.utils.set_random_seed(seed)
        tiny_model(input_shape=(32, 32, 3), classes=10).save(path)
    output = tmp_path / "files"
    for path in paths:
        assert compare(arguments(cifar10_sample_tfds_dir, output, seeds=1,
                                 candidates=(PYRAMIDNET, str(path)))) == 0
    record = read(output / "comparison.json")
    assert [c["name"] for c in record["candidates"]] == [PYRAMIDNET, *map(str, paths)]
    trained = sorted(output.glob("cells/file-current-*/*/*/results.json"))
    assert len(trained) == 2 and {r["status"] for r in record["cells"]} == {"finished"}
    errors = record["accuracy"][0]["per_candidate"]
    assert {errors[str(p)]["errors"][0] for p in paths} == {read(t)["final_error"]
                                                            for t in trained}
    shutil.move(tmp_path / "A", tmp_path / "moved")
    assert compare(["--output", str(output), "--report-only"]) == 0
    shutil.move(tmp_path / "moved", tmp_path / "A")
    keras.utils.set_random_seed(9)
    tiny_model(input_shape=(32, 32, 3), classes=10).save(paths[0])
    line = refusal(COMPARE, arguments(cifar10_sample_tfds_dir, output, seeds=1,
                                      candidates=(PYRAMIDNET, str(paths[0]))), capsys)
    assert f"{paths[0]} changed since this comparison trained it" in line, line


@ONCE
def test_imagenet_weights_that_cannot_be_fetched_are_one_line_before_any_cell(
        tmp_path, cifar10_sample_tfds_dir, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what get_file raises without a network (seen here)
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    argv = arguments(cifar10_sample_tfds_dir, tmp_path / "out", seeds=1,
                     candidates=(PYRAMIDNET, "keras:MobileNetV3Small@imagenet"))
    line = refusal(COMPARE, argv, capsys)
    assert "--candidates" in line and "imagenet weights of keras:MobileNetV3Small cannot be" \
        in line and "URL fetch failure" in line, line
    assert not (tmp_path / "out").exists()


@ONCE
def test_a_class_name_with_a_line_break_is_refused_before_the_first_cell(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images", range(2), 8, odd=False)
    os.rename(os.path.join(folder, "automobile"), os.path.join(folder, "auto\nmobile"))
    argv = ["--dataset", f"folder:{folder}", "--candidates", PYRAMIDNET, DROP, "--seeds", "1",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4", "--verbose", "0",
            "--output", str(tmp_path / "out")]
    line = refusal(COMPARE, argv, capsys)
    assert "--dataset" in line and "line break" in line, line
    assert not (tmp_path / "out").exists()


BEFORE_31 = os.path.join(REPO, "tests", "fixtures", "comparison_before_31")


@ONCE
def test_a_comparison_written_before_issue_31_extends_with_a_seed(tmp_path, monkeypatch):
    """compare.py of commit 572d6d7 wrote this comparison (its settings then
    a flat dataclass, no use_test_split in a cell's args.json): the current
    compare.py adds seed 1, keeps the finished cell of seed 0 untouched and
    reports on both. tests/fixtures/make_comparison_before_31.py made it."""
    copy = tmp_path / "before"
    shutil.copytree(BEFORE_31, copy)
    monkeypatch.chdir(copy)  # the comparison names its data and candidate relatively
    old_cell = copy / "comparison" / "cells" / "file-tiny-8cd1fba2" / "noise-0" / "seed-0"
    kept = {name: (old_cell / name).read_bytes() for name in ("results.json", "model.keras")}
    recorded = json.loads((copy / "comparison" / "compare.json").read_text())
    assert "use_test_split" not in json.loads((old_cell / "args.json").read_text())

    assert compare(["--dataset", "folder:photos", "--candidates", "tiny.keras", "as-is:tiny.keras",
                    "--seeds", "2", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size",
                    "8", "--eval-steps", "2", "--serving-requests", "0", "--verbose", "0",
                    "--output", "comparison"]) == 0
    assert {name: (old_cell / name).read_bytes() for name in kept} == kept
    new_cell = old_cell.parent / "seed-1"
    assert json.loads((new_cell / "results.json").read_text())["epochs"] == 1
    extended = json.loads((copy / "comparison" / "compare.json").read_text())
    assert extended["fixed"] == recorded["fixed"] and extended["seeds"] == 2
    record = json.loads((copy / "comparison" / "comparison.json").read_text())
    trained = [c for c in record["cells"] if c["candidate"] == "tiny.keras"]
    assert sorted((c["seed"], c["status"]) for c in trained) == [(0, "finished"),
                                                                 (1, "finished")]
