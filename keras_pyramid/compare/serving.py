"""What an exported model costs to serve, on this machine: latency, throughput,
size on disk and the serving process's peak memory, under ONNX Runtime and
TensorFlow's SavedModel loader.

    folder = export(model, "exports/tiny", 1, formats=("saved_model", "onnx"))
    costs = measure_all(folder)              # {"onnxruntime": {...}, "saved_model": {...}}
    costs["onnxruntime"]["latency_ms"]["p50"]
    costs = measure_interleaved({"plain": plain, "sepdrop": sepdrop})  # to compare them
    costs["sepdrop"]["saved_model"]["round_p50_ms"]

Each runtime is measured in a fresh child process of its own, so that its
peak resident memory (VmHWM) holds the runtime, the model and the requests,
and nothing of the caller. The child imports numpy and its runtime only,
never Keras: it runs this file by path (`python -m keras_pyramid.compare.serving`
would import the package, and the package imports Keras), and it hides Keras
from the import system because TensorFlow imports it when it can, as a
serving machine without Keras would. The result says whether Keras was
imported all the same (`keras_imported`).

Both runtimes run on the CPU (ONNX Runtime's CPUExecutionProvider; TensorFlow
with its GPUs hidden). A request is one uint8 image of the model's own input
size, timed with `time.perf_counter` from the NumPy array in to the NumPy
outputs out (TensorFlow's conversions included, as a server pays them).
Percentiles are `numpy.percentile`'s default "linear" method (Hyndman and
Fan's type 7). Reports need `MIN_REPORTED_REQUESTS` requests: a p99 of fewer
rests on a handful of requests (`reportable` says which).

Candidates to compare are measured by `measure_interleaved`, in rounds that
alternate them, never one after the other: a machine's drift (another job,
the clock, the page cache) then falls on all of them alike.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

RUNTIMES = ("onnxruntime", "saved_model")
ONNX_FILE = "model.onnx"  # export.ONNX_FILE; not imported, the child must not import Keras
SIGNATURE = "serving_default"
INPUT_NAME = "image"
MIN_REPORTED_REQUESTS = 500
PERCENTILE_METHOD = "linear"
THROUGHPUT_MIN_BATCHES = 5  # the median of fewer timed batches is one noisy batch
THROUGHPUT_WARMUP_BATCHES = 2
IMAGE_POOL = 16  # distinct batch-1 images, cycled: no request repeats its predecessor's input
HIDDEN_PACKAGES = ("keras", "tf_keras", "keras_pyramid")
STDERR_LINES = 20  # of a failed child's stderr, in the RuntimeError
# Runs this file as __main__ without the package: `del sys.path[0]` drops the
# current folder -c puts first (python -P does so from 3.11 only), and
# run_path, unlike running the file itself, adds no folder of its own (this
# one holds statistics.py, which would shadow the standard library's).
BOOTSTRAP = ("import runpy, sys; del sys.path[0]; "
             "runpy.run_path(sys.argv.pop(1), run_name='__main__')")


def measure(version_folder, runtime, requests=500, warmup=50, throughput_batch=32,
            throughput_seconds=2.0, threads=None, timeout=3600, raw=False):
    """The serving cost of one runtime on an exported version folder, measured in a
    fresh child process (see the module docstring); returns the child's result dict
    with `size_bytes` added: the SavedModel folder's bytes without model.onnx, or
    model.onnx's bytes.

    Args:
        version_folder: `export`'s version folder (`directory/VERSION`).
        runtime: "onnxruntime" (model.onnx) or "saved_model" (the SavedModel).
        requests: batch-1 requests timed for the latency percentiles.
        warmup: untimed batch-1 requests first (the first calls build caches).
        throughput_batch: images per batch for the throughput.
        throughput_seconds: how long to time batches (at least 5 are timed).
        threads: intra-op threads; None keeps the runtime's default.
        timeout: seconds the child may take before it is killed.
        raw: also return `latency_seconds`, each timed request's seconds in
            order (for pooling several children's requests).

    Returns:
        runtime ("onnxruntime 1.32.0", "tensorflow 2.21.0"), requests, warmup,
        reportable (requests >= MIN_REPORTED_REQUESTS), latency_ms (p50, p90, p99,
        mean, min, max), percentile_method, throughput_batch,
        throughput_images_per_second, throughput_batches, size_bytes,
        peak_memory_bytes, peak_memory_from (utils.processes.PEAK_FROM_PROC or
        PEAK_FROM_RUSAGE), device, execution_provider (ONNX Runtime's; None for
        TensorFlow), threads (the intra- and inter-op settings in force, 0 being
        the runtime's default),
        load_seconds (the runtime's import and the model's load), input_shape,
        platform, python, keras_imported; and latency_seconds where `raw`.
    """
    check_arguments(runtime, requests, warmup, throughput_batch, throughput_seconds, threads)
    version_folder = os.fspath(version_folder)
    size = size_on_disk(version_folder, runtime)
    command = child_command(version_folder, runtime, requests, warmup, throughput_batch,
                            throughput_seconds, threads, raw)
    result = run_child(command, timeout)
    result["size_bytes"] = size
    return result


def measure_all(version_folder, requests=500, **kwargs):
    """`measure` under each runtime in turn (one child at a time, so that they do
    not share the cores): `{"onnxruntime": {...}, "saved_model": {...}}`."""
    return {runtime: measure(version_folder, runtime, requests=requests, **kwargs)
            for runtime in RUNTIMES}


def check_arguments(runtime, requests, warmup, throughput_batch, throughput_seconds, threads):
    """ValueError naming the first bad argument and the value received."""
    # Here, not at the top: the child runs this file without the package
    # (importing keras_pyramid imports Keras); this check runs in the parent.
    from keras_pyramid.utils import checks

    checks.check_choice("runtime", runtime, RUNTIMES)
    for name, value, least in (("requests", requests, 1), ("warmup", warmup, 0),
                               ("throughput_batch", throughput_batch, 1)):
        checks.check_int(name, value, minimum=least)
    if threads is not None:
        checks.check_int("threads", threads, minimum=1)
    checks.check_number("throughput_seconds", throughput_seconds, positive=True, below=1e9)


def size_on_disk(version_folder, runtime):
    """Bytes each runtime loads: model.onnx's, or the SavedModel folder's files
    (saved_model.pb, variables/, assets/, ...) without model.onnx, which sits
    in the same folder but is no part of the SavedModel."""
    onnx_path = os.path.join(version_folder, ONNX_FILE)
    if runtime == "onnxruntime":
        if not os.path.isfile(onnx_path):
            raise FileNotFoundError(f"no {ONNX_FILE} in {version_folder!r}: export with "
                                    f"formats=('saved_model', 'onnx')")
        return os.path.getsize(onnx_path)
    if not os.path.isfile(os.path.join(version_folder, "saved_model.pb")):
        raise FileNotFoundError(f"no SavedModel (saved_model.pb) in {version_folder!r}: pass "
                                f"export's version folder (directory/VERSION)")
    total = 0
    for folder, _, files in os.walk(version_folder):
        paths = (os.path.join(folder, name) for name in files)
        total += sum(os.path.getsize(path) for path in paths if path != onnx_path)
    return total


def child_command(version_folder, runtime, requests, warmup, throughput_batch,
                  throughput_seconds, threads, raw=False):
    """The argument list that runs this file's `main` in a fresh Python."""
    command = [sys.executable, "-c", BOOTSTRAP, os.path.abspath(__file__),
               os.path.abspath(version_folder), "--runtime", runtime,
               "--requests", str(requests), "--warmup", str(warmup),
               "--throughput-batch", str(throughput_batch),
               "--throughput-seconds", repr(float(throughput_seconds))]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command + (["--raw"] if raw else [])


def run_child(command, timeout):
    """Runs the child and returns the JSON on its last stdout line; a RuntimeError
    with the last lines of its stderr when it fails, hangs or prints no JSON."""
    # TensorFlow's C++ logs (level 2: warnings and errors only) would bury the
    # lines worth reporting; a caller's own setting wins.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"the serving measurement took more than {timeout} s and was "
                           f"stopped:\n{last_lines(error.stderr)}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the serving measurement failed (exit status {done.returncode}):"
                           f"\n{last_lines(done.stderr)}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise RuntimeError(f"the serving measurement printed no result:\n{lines[-1][:2000]}\n"
                           f"{last_lines(done.stderr)}") from None


def last_lines(text):
    """The last STDERR_LINES lines of a child's stderr (str or bytes, maybe None)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join((text or "").strip().splitlines()[-STDERR_LINES:])


# The child: everything below runs in the fresh process `measure` starts.


class HiddenPackages:
    """An import finder that finds no Keras (nor this package) and defers the rest to
    `finder`: TensorFlow imports Keras when it can, which a serving machine need not
    have installed. Wraps each finder, as TensorFlow asks `importlib.util.find_spec`
    first and takes None, not an error, for an absent package."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN_PACKAGES:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description="Measures one runtime's serving cost of an "
                                     "exported version folder; prints JSON (see measure).")
    parser.add_argument("version_folder")
    parser.add_argument("--runtime", choices=RUNTIMES, required=True)
    parser.add_argument("--requests", type=int, default=MIN_REPORTED_REQUESTS)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--throughput-batch", type=int, default=32)
    parser.add_argument("--throughput-seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--raw", action="store_true",
                        help="also print each timed request's seconds (latency_seconds)")
    return parser.parse_args(argv)


def onnxruntime_server(version_folder, threads):
    """(predict, image shape, facts) for model.onnx in an ONNX Runtime session on the
    CPUExecutionProvider: default session options, but `threads` intra-op threads
    when given (0 in the options is ORT's default: one per physical core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(os.path.join(version_folder, ONNX_FILE), options,
                                           providers=["CPUExecutionProvider"])
    (image,) = [node for node in session.get_inputs() if node.name == INPUT_NAME]
    options = session.get_session_options()

    def predict(images):
        return session.run(None, {INPUT_NAME: images})

    return predict, tuple(image.shape[1:]), {
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "execution_provider": session.get_providers()[0],
        "threads": {"intra_op": options.intra_op_num_threads,
                    "inter_op": options.inter_op_num_threads,
                    "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
                    "0_means": "ONNX Runtime's default (intra-op: one per physical core)"},
    }


def saved_model_server(version_folder, threads):
    """(predict, image shape, facts) for the SavedModel's `serving_default` signature
    under TensorFlow on the CPU, `threads` intra-op threads when given (0 is
    TensorFlow's default: it picks from the cores)."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # the CPU, as ONNX Runtime's session
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    loaded = tf.saved_model.load(version_folder)
    signature = loaded.signatures[SIGNATURE]
    spec = signature.structured_input_signature[1][INPUT_NAME]

    def predict(images):
        outputs = signature(image=tf.constant(images))
        return {name: value.numpy() for name, value in outputs.items()}

    # A signature whose loaded object was garbage-collected loses its variables.
    predict.loaded = loaded
    return predict, tuple(spec.shape[1:]), {
        "runtime": f"tensorflow {tf.__version__}",
        "execution_provider": None,
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                    "0_means": "TensorFlow's default (it picks from the cores)"},
    }


def latency_seconds(predict, pool, requests, warmup):
    """Seconds of each of `requests` batch-1 calls, after `warmup` untimed ones;
    the images cycle through `pool` (IMAGE_POOL arrays of shape [1, H, W, 3])."""
    for index in range(warmup):
        predict(pool[index % len(pool)])
    seconds = []
    for index in range(requests):
        image = pool[index % len(pool)]
        start = time.perf_counter()
        predict(image)
        seconds.append(time.perf_counter() - start)
    return seconds


def throughput(predict, batch, seconds):
    """(images/s, batches timed): the batch size over the median time of one batch,
    timing batches for `seconds` (at least THROUGHPUT_MIN_BATCHES) after
    THROUGHPUT_WARMUP_BATCHES untimed ones. The median, not the mean: a batch the
    shared machine interrupted says little about the runtime."""
    import numpy as np

    for _ in range(THROUGHPUT_WARMUP_BATCHES):
        predict(batch)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < THROUGHPUT_MIN_BATCHES or time.perf_counter() < deadline:
        start = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - start)
    return len(batch) / float(np.median(times)), len(times)


def latency_summary(seconds):
    """p50, p90, p99 (numpy.percentile, method "linear"), mean, min and max, in ms."""
    import numpy as np

    ms = np.asarray(seconds) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99], method=PERCENTILE_METHOD)
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(ms.mean()),
            "min": float(ms.min()), "max": float(ms.max())}


def utils_processes():
    """keras_pyramid/utils/processes.py (the one peak-memory reader) loaded by
    its path: the child cannot import the package, whose top imports Keras,
    and that module imports nothing but the standard library."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "utils", "processes.py")
    spec = importlib.util.spec_from_file_location("keras_pyramid_utils_processes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_description():
    """"CPU (model name or platform.processor(), cores available of cores)"."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo
                     if line.startswith("model name")]
        name = names[0] if names else name
    except OSError:
        pass
    return f"CPU ({name}, {available_cores()} of {os.cpu_count()} cores available)"


def available_cores():
    """The cores this process may run on (its affinity), where the OS says."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count()


def serve_and_time(arguments):
    """The child's measurement: loads the runtime, times the requests and the
    batches on random uint8 images (seed 0), and reads the peak memory last."""
    import numpy as np

    processes = utils_processes()
    # Reset, so that the source's words (VmHWM "since its reset") hold: the
    # peak then counts from here, the interpreter and NumPy already resident.
    processes.reset_peak_memory()
    load = onnxruntime_server if arguments.runtime == "onnxruntime" else saved_model_server
    started = time.perf_counter()
    predict, shape, facts = load(arguments.version_folder, arguments.threads)
    load_seconds = time.perf_counter() - started
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (IMAGE_POOL, 1, *shape), dtype=np.uint8)
    batch = rng.integers(0, 256, (arguments.throughput_batch, *shape), dtype=np.uint8)
    seconds = latency_seconds(predict, pool, arguments.requests, arguments.warmup)
    images_per_second, batches = throughput(predict, batch, arguments.throughput_seconds)
    peak, peak_from = processes.peak_memory()
    raw = {"latency_seconds": seconds} if arguments.raw else {}
    return {**facts, **raw, "requests": arguments.requests, "warmup": arguments.warmup,
            "reportable": arguments.requests >= MIN_REPORTED_REQUESTS,
            "latency_ms": latency_summary(seconds), "percentile_method": PERCENTILE_METHOD,
            "throughput_batch": arguments.throughput_batch,
            "throughput_images_per_second": images_per_second, "throughput_batches": batches,
            "load_seconds": load_seconds, "input_shape": [int(n) for n in shape],
            "peak_memory_bytes": peak, "peak_memory_from": peak_from,
            "device": device_description(), "platform": platform.platform(),
            "python": platform.python_version(),
            "keras_imported": any(name in sys.modules for name in HIDDEN_PACKAGES)}


def main(argv=None):
    arguments = parse_arguments(argv)
    # Before the runtime's import: the first `import tensorflow` imports Keras.
    sys.meta_path[:] = [HiddenPackages(finder) for finder in sys.meta_path]
    print(json.dumps(serve_and_time(arguments)))


if __name__ == "__main__":
    main()
