"""The serving cost of an export: latency, throughput, size on disk and peak memory,
under ONNX Runtime and the SavedModel, each in a child process that never imports Keras.

The measurement touches no Keras tensor (only the export does): runs once, under
tensorflow.
"""

import os
import re
import time

import keras
import pytest
from helpers.models import tiny_model

from keras_pyramid import export as exporting
from keras_pyramid.compare import serving
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
