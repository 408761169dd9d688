"""The serving cost of an export: latency, throughput, size on disk and peak memory,
under ONNX Runtime and the SavedModel, each in a child process that never imports Keras.

The measurement touches no Keras tensor (only the export does): runs once, under
tensorflow.
"""

import os
import re

import keras
import pytest
from helpers import tiny_model

from keras_pyramid import export as exporting
from keras_pyramid.compare import serving

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
    return serving.measure_all(folder, **QUICK)


def bytes_on_disk(folder, runtime):
    """Counted here, apart from the module: model.onnx, or every other file."""
    onnx = os.path.join(folder, "model.onnx")
    if runtime == "onnxruntime":
        return os.stat(onnx).st_size
    return sum(os.stat(os.path.join(root, name)).st_size
               for root, _, names in os.walk(folder) for name in names
               if os.path.join(root, name) != onnx)


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_latency_percentiles_are_ordered_and_positive(costs, runtime):
    result = costs[runtime]
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["min"] <= latency["mean"] <= latency["max"]
    assert (result["requests"], result["warmup"]) == (30, 5)
    assert result["reportable"] is False  # 30 < MIN_REPORTED_REQUESTS
    assert result["percentile_method"] == "linear"


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_sizes_are_the_files_on_disk(costs, folder, runtime):
    assert costs[runtime]["size_bytes"] == bytes_on_disk(folder, runtime) > 0


@pytest.mark.parametrize("runtime", serving.RUNTIMES)
def test_peak_memory_holds_the_model_and_the_throughput_is_positive(costs, runtime):
    result = costs[runtime]
    assert result["peak_memory_from"] == "VmHWM"  # this test machine is Linux
    assert result["peak_memory_bytes"] > result["size_bytes"]
    assert result["throughput_batch"] == 8
    assert result["throughput_images_per_second"] > 0
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
