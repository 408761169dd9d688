"""The serving cost of an export: latency, throughput, size on disk and peak memory,
under ONNX Runtime and the SavedModel, each in a child process that never imports Keras.

The measurement touches no Keras tensor (only the export does): runs once, under
tensorflow.
"""

import os
import re
import shutil
import time

import keras
import numpy as np
import pytest
from helpers.models import tiny_model

from keras_pyramid import export as exporting
from keras_pyramid.compare import serving, serving_rounds
from keras_pyramid.utils import processes

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="runs once, under tensorflow: the measurement touches no Keras tensor")

# Few requests and short throughput runs: the file must stay fast on 2 shared cores.
QUICK = dict(requests=30, warmup=5, throughput_batch=8, throughput_seconds=0.2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A 3-class tiny PyramidNet (16x16) exported as a SavedModel and model.onnx."""
    model = tiny_model(None, classes=3)
    directory = tmp_path_factory.mktemp("exports") / "tiny"
    return str(exporting.export(model, directory, 1, formats=("saved_model", "onnx")))


@pytest.fixture(scope="module")
def costs(folder):
    """The measurements, and the wall seconds the two children took in all."""
    started = time.perf_counter()
    measured = serving.measure_all(folder, **QUICK)
    return {**measured, "wall_seconds": time.perf_counter() - started}


def bytes_on_disk(folder, runtime):
    """Counted here, apart from the module: model.onnx, or every other file."""
    onnx = os.path.join(folder, "model.onnx")
    if runtime == "onnxruntime":
        return os.stat(onnx).st_size
    return sum(os.stat(os.path.join(root, name)).st_size
               for root, _, names in os.walk(folder) for name in names
               if os.path.join(root, name) != onnx)


def test_the_latency_summary_of_known_times():
    """1, 2, ..., 100 ms: numpy's "linear" percentile of sorted x at q is
    x[i] + f (x[i+1] - x[i]) with i + f = 99 q, so p50 = 50.5, p90 = 90.1 and
    p99 = 99.01 ms; the mean is 50.5 ms. Catches a unit (seconds in, ms out),
    a percentile method or a field given another's value."""
    summary = serving.latency_summary([ms / 1000 for ms in range(100, 0, -1)])
    assert summary == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01, "mean": 50.5,
                                     "min": 1.0, "max": 100.0})


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_the_latencies_fit_in_the_time_the_children_took(costs, runtime):
    """The timed requests (mean x requests) took less than the whole of both
    children: a latency in seconds or microseconds, or of the warm-up or the
    throughput batches, would not fit (the sum is a few ms of seconds)."""
    result = costs[runtime]
    latency = result["latency_ms"]
    assert (result["requests"], result["warmup"]) == (30, 5)
    assert 30 * latency["mean"] / 1000 < costs["wall_seconds"]
    # Not microseconds: a batch-1 request of a real runtime takes over 10 us.
    assert latency["min"] > 0.01
    assert result["reportable"] is False  # 30 < MIN_REPORTED_REQUESTS
    assert result["percentile_method"] == "linear"


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_sizes_are_the_files_on_disk(costs, folder, runtime):
    assert costs[runtime]["size_bytes"] == bytes_on_disk(folder, runtime) > 0


def test_the_peak_memory_is_each_childs_own(costs):
    """TensorFlow's loader takes hundreds of MiB that ONNX Runtime never
    loads: the SavedModel child's peak is above the ONNX child's, and both are
    over the 20 MiB an interpreter with NumPy holds and under this machine's
    memory. Reading one process for both (the caller, say), or a peak in KiB,
    fails here."""
    onnx, saved = (costs[runtime]["peak_memory_bytes"] for runtime in serving.RUNTIMES)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 20 * 2**20 < onnx < saved < total
    for runtime in serving.RUNTIMES:  # this test machine is Linux
        assert costs[runtime]["peak_memory_from"] == processes.PEAK_FROM_PROC


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_the_throughput_is_at_most_a_batch_per_fastest_request(costs, runtime):
    """A batch of 8 takes at least about the time of the fastest single
    request, so images/s <= 8 / min latency (x 2 for the noise of a shared
    machine). Catches a throughput counted in batches x images, or per ms."""
    result = costs[runtime]
    assert result["throughput_batch"] == 8
    fastest = result["latency_ms"]["min"] / 1000
    assert 0 < result["throughput_images_per_second"] <= 2 * 8 / fastest
    assert result["throughput_batches"] >= serving.THROUGHPUT_MIN_BATCHES


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_the_child_serves_the_models_input_without_keras(costs, runtime):
    result = costs[runtime]
    assert result["keras_imported"] is False
    assert "latency_seconds" not in result  # only where measure(raw=True)
    assert result["input_shape"] == [16, 16, 3]
    assert result["device"].startswith("CPU (")
    name = "onnxruntime" if runtime == "onnxruntime" else "tensorflow"
    assert re.fullmatch(rf"{name} \d+\.\d+.*", result["runtime"])


def test_onnxruntime_runs_on_the_cpu_with_the_threads_asked(costs, folder):
    assert costs["onnxruntime"]["execution_provider"] == "CPUExecutionProvider"
    assert costs["onnxruntime"]["threads"]["intra_op"] == 0  # default session options
    one = serving.measure(folder, "onnxruntime", **{**QUICK, "requests": 5}, threads=1)
    assert one["threads"]["intra_op"] == 1


def test_a_failing_child_raises_with_its_stderr(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeError, match=r"(?s)exit status 1.*model\.onnx"):
        serving.measure(tmp_path, "onnxruntime", **QUICK)


def test_a_folder_without_the_runtimes_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.onnx"):
        serving.measure(tmp_path, "onnxruntime")
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        serving.measure(tmp_path, "saved_model")


@pytest.mark.parametrize("name, value", [
    ("requests", 0), ("requests", -1), ("requests", 2.5), ("requests", True), ("warmup", -1),
    ("throughput_batch", 0), ("throughput_seconds", 0), ("threads", 0), ("runtime", "tensorrt"),
])
def test_bad_arguments_are_refused_with_their_value(tmp_path, name, value):
    arguments = {"version_folder": tmp_path, "runtime": "onnxruntime", name: value}
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        serving.measure(**arguments)


# measure_interleaved: its order and its pooling with stand-in children that
# answer known figures, then one real run.

NAMES = ("a", "b", "c")


@pytest.fixture
def stand_in_folders(tmp_path):
    """Version folders a, b and c whose model.onnx (1, 2, 3 bytes) and
    saved_model.pb no child reads: the stand-in children only need them found."""
    folders = {}
    for size, name in enumerate(NAMES, start=1):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x" * size)
        (folder / "saved_model.pb").write_bytes(b"")
        folders[name] = str(folder)
    return folders


class StandInChildren:
    """Replaces `run_child`: reads each command as the child would and answers
    with random per-request seconds (kept here), throughput 100 + i, load 1 + i
    seconds and peak memory 1000 + i for the i-th child."""

    def __init__(self):
        self.calls = []
        self.rng = np.random.default_rng(0)

    def __call__(self, command, timeout):
        script = command.index(os.path.abspath(serving.__file__))
        arguments = serving.parse_arguments(command[script + 1:])
        index = len(self.calls)
        seconds = self.rng.exponential(0.002, arguments.requests).tolist()
        self.calls.append({"name": os.path.basename(arguments.version_folder),
                           "runtime": arguments.runtime, "requests": arguments.requests,
                           "raw": arguments.raw, "seconds": seconds})
        return {"runtime": "stand-in", "requests": arguments.requests,
                "latency_seconds": seconds, "throughput_images_per_second": 100.0 + index,
                "throughput_batches": 5, "load_seconds": 1.0 + index,
                "peak_memory_bytes": 1000 + index, "keras_imported": False}

    def indices(self, name, runtime):
        return [i for i, call in enumerate(self.calls)
                if (call["name"], call["runtime"]) == (name, runtime)]


@pytest.fixture
def stand_ins(monkeypatch, stand_in_folders):
    """Three names, 3 rounds, 13 requests (4 a child) with stand-in children;
    the load average is the count of children run so far. (children, figures)"""
    children = StandInChildren()
    monkeypatch.setattr(serving, "run_child", children)
    monkeypatch.setattr(os, "getloadavg", lambda: (float(len(children.calls)), 0.0, 0.0))
    figures = serving_rounds.measure_interleaved(stand_in_folders, requests=13, rounds=3,
                                                 warmup=2)
    return children, figures


def test_interleaved_children_alternate_and_rotate(stand_ins):
    """Within a round every name once per runtime, in turn; round r starts
    at name r mod 3. Catches all of a's rounds first, or no rotation."""
    children, figures = stand_ins
    onnx, saved = serving.RUNTIMES
    rounds = ["abc", "bca", "cab"]
    expected = [(name, runtime) for order in rounds for runtime in (onnx, saved)
                for name in order]
    assert [(call["name"], call["runtime"]) for call in children.calls] == expected
    assert {(call["requests"], call["raw"]) for call in children.calls} == {(4, True)}
    assert list(figures) == list(NAMES)
    assert all(list(figures[name]) == [onnx, saved] for name in NAMES)


def test_interleaved_latencies_pool_every_rounds_requests(stand_ins):
    """latency_ms is numpy.percentile over the union of the rounds' requests
    (not the median of the round p50s, which differs with 4 requests a round),
    round_p50_ms each round's own p50, and requests the 3 x 4 timed; the raw
    list is not kept."""
    children, figures = stand_ins
    for name in NAMES:
        for runtime in serving.RUNTIMES:
            result = figures[name][runtime]
            rounds = [np.asarray(children.calls[i]["seconds"]) * 1000
                      for i in children.indices(name, runtime)]
            pooled = np.concatenate(rounds)
            p50, p90, p99 = np.percentile(pooled, [50, 90, 99])
            assert result["latency_ms"] == {"p50": p50, "p90": p90, "p99": p99,
                                            "mean": pooled.mean(), "min": pooled.min(),
                                            "max": pooled.max()}
            assert result["round_p50_ms"] == [np.percentile(ms, 50) for ms in rounds]
            assert p50 != np.median(result["round_p50_ms"])
            assert (result["rounds"], result["requests"], result["reportable"]) == (3, 12, False)
            assert "latency_seconds" not in result


def test_interleaved_rounds_keep_their_throughput_and_load(stand_ins, stand_in_folders):
    """Per round, in round order: the child's throughput and load seconds (their
    medians as the figures) and the load average just before it (the i-th
    child's is i: read after it, it would be i + 1); peak memory
    and size from the first round."""
    children, figures = stand_ins
    for name in NAMES:
        for runtime in serving.RUNTIMES:
            result = figures[name][runtime]
            first, second, third = children.indices(name, runtime)
            assert result["round_throughput"] == [100.0 + first, 100.0 + second, 100.0 + third]
            assert result["throughput_images_per_second"] == 100.0 + second
            assert result["round_load_seconds"] == [1.0 + first, 1.0 + second, 1.0 + third]
            assert result["load_seconds"] == 1.0 + second
            assert result["round_load"] == [first, second, third]
            assert result["throughput_batches"] == 15
            assert result["peak_memory_bytes"] == 1000 + first
            assert result["size_bytes"] == serving.size_on_disk(stand_in_folders[name], runtime)
    assert figures["c"]["onnxruntime"]["size_bytes"] == 3


@pytest.mark.parametrize("requests, rounds, each, reportable", [
    (2, 3, 1, False), (500, 5, 100, True), (500, 3, 166, False), (1002, 2, 501, True),
])
def test_interleaved_requests_split_over_the_rounds(monkeypatch, stand_in_folders, requests,
                                                    rounds, each, reportable):
    """requests // rounds a child (at least 1); `requests` and `reportable` count
    what was timed: 500 over 3 rounds times 498, under MIN_REPORTED_REQUESTS."""
    children = StandInChildren()
    monkeypatch.setattr(serving, "run_child", children)
    figures = serving_rounds.measure_interleaved({"a": stand_in_folders["a"]},
                                                 requests=requests, rounds=rounds,
                                                 runtimes=("onnxruntime",))
    assert [call["requests"] for call in children.calls] == [each] * rounds
    result = figures["a"]["onnxruntime"]
    assert (result["requests"], result["reportable"]) == (each * rounds, reportable)
    assert len(result["round_p50_ms"]) == rounds


def test_a_real_interleaved_run(folder, tmp_path, monkeypatch):
    """Two names (the export and a copy) through real children, under ONNX
    Runtime only (a SavedModel child takes seconds to import TensorFlow; the
    raw latencies come from the code both runtimes share): the children's
    order, and figures pooled from the raw seconds each child printed."""
    twin = shutil.copytree(folder, tmp_path / "twin")
    children = []

    def recording(command, timeout):
        result = real_run_child(command, timeout)
        script = command.index(os.path.abspath(serving.__file__))
        children.append((command[script + 1], list(result["latency_seconds"])))
        return result

    real_run_child = serving.run_child
    monkeypatch.setattr(serving, "run_child", recording)
    figures = serving_rounds.measure_interleaved(
        {"plain": folder, "twin": str(twin)}, rounds=3, runtimes=("onnxruntime",),
        **{**QUICK, "requests": 9, "throughput_seconds": 0.05})
    paths = {"plain": os.path.abspath(folder), "twin": os.path.abspath(twin)}
    order = ["plain", "twin", "twin", "plain", "plain", "twin"]
    assert [path for path, _ in children] == [paths[name] for name in order]
    for name, path in paths.items():
        result = figures[name]["onnxruntime"]
        rounds = [np.asarray(seconds) * 1000 for child, seconds in children if child == path]
        assert [len(ms) for ms in rounds] == [3, 3, 3]
        assert result["round_p50_ms"] == [np.percentile(ms, 50) for ms in rounds]
        assert result["latency_ms"]["p99"] == np.percentile(np.concatenate(rounds), 99)
        assert (result["rounds"], result["requests"], result["warmup"]) == (3, 9, 5)
        assert len(result["round_load"]) == len(result["round_throughput"]) == 3
        assert result["size_bytes"] == bytes_on_disk(folder, "onnxruntime")
        assert result["keras_imported"] is False
        assert "latency_seconds" not in result


@pytest.mark.parametrize("name, value", [
    ("version_folders", {}), ("version_folders", ["a"]), ("requests", 0), ("rounds", 0),
    ("rounds", 1.5), ("runtimes", ()), ("runtimes", ("tensorrt",)), ("runtimes", "onnxruntime"),
    ("runtimes", ("onnxruntime", "onnxruntime")),
])
def test_interleaved_refuses_bad_arguments_before_any_child(monkeypatch, stand_in_folders,
                                                            name, value):
    children = StandInChildren()
    monkeypatch.setattr(serving, "run_child", children)
    arguments = {"version_folders": stand_in_folders, name: value}
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        serving_rounds.measure_interleaved(**arguments)
    assert children.calls == []


def test_interleaved_looks_for_every_file_before_any_child(monkeypatch, stand_in_folders):
    """A SavedModel missing from the last folder stops the run before the
    first child, not after minutes of measuring the others."""
    os.remove(os.path.join(stand_in_folders["c"], "saved_model.pb"))
    children = StandInChildren()
    monkeypatch.setattr(serving, "run_child", children)
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        serving_rounds.measure_interleaved(stand_in_folders)
    assert children.calls == []
