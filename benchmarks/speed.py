"""Training and inference speed on every backend, against a plain-PyTorch yardstick.

    python benchmarks/speed.py     # benchmarks/results/README.md's table (~40 min on 2 cores)
    python benchmarks/speed.py --models pyramidnet20_a48 --repeats 3    # a quick look

For each model it measures images per second of (a) one full training step
(forward, backward, SGD with Nesterov momentum, the recipe's L2 decay) and
(b) inference, for the plain-PyTorch yardstick (`torch_pyramidnet.py`, the
same network, checked equal to ours in the tests) and for each Keras backend
with its default settings, then with one setting changed at a time: the
regularizer (none, PyramidDrop, PyramidSepDrop at drop rate 0.5, each with
and without skipping the dropped branches), the image data format, XLA
compilation (TensorFlow) and bfloat16 mixed precision.

The cases of one model on one backend with one data format and precision run
together in a fresh process (the backend, the data format and the dtype
policy are per process), one model each, on one fixed in-memory batch, so
the input pipeline is out of the timed loop; it is measured on its own
(`pipeline` rows) on the real CIFAR-10 pipeline when a tfds directory is
given. The first step of each model (tracing and compilation) is reported
apart, `--warmup` more steps are not timed, then `--repeats` timings of
`--steps` steps each, the models of a process taking turns repeat by repeat:
on a shared machine a slow spell then slows every model of the comparison
(no regularizer, PyramidDrop, PyramidSepDrop, skipping or not) instead of
whichever ran during it. The table gives the median and the range (min-max)
of the repeats and the ratio of medians to the yardstick's in the same run.
Results go to a JSON file, rewritten atomically after every process;
rerunning with the same settings resumes after the cases already measured.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

sys.path.insert(0, REPO)
# The package's __init__ imports keras (and its default backend) here too;
# every measuring process sets its own backend and threads before timing.
from keras_pyramid.models.presets import ARCHITECTURES  # noqa: E402

# The registry's CIFAR networks with additive widening (what the PyTorch
# yardstick builds), by registry name.
MODELS = {architecture.name(): architecture for architecture in ARCHITECTURES
          if architecture.variant == "cifar" and architecture.widening == "additive"}
# benchmarks/results/README.md's table. PyramidNet-8 (one unit per stage) runs every code path
# in seconds, for the benchmark's own test.
PAPER_MODELS = ("pyramidnet20_a48", "pyramidnet110_a48", "pyramidnet272_a200")
# PyramidNet-272 alpha 200 gets a smaller batch: at 4.5 G multiply-adds per
# image a step of 64 takes about half a minute on 2 cores.
BATCH_SIZES = {"pyramidnet272_a200": 16, "pyramidnet8_a24": 16}
DEFAULT_BATCH = 64
BACKENDS = ("tensorflow", "jax", "torch")
# What `applications/train.py` does by default on a CPU: channels_last,
# jit_compile="auto" (XLA for JAX, none for TensorFlow and torch), float32.
DEFAULTS = {
    "tensorflow": {"data_format": "channels_last", "jit": False, "skip_dropped": True},
    "jax": {"data_format": "channels_last", "jit": True, "skip_dropped": False},
    "torch": {"data_format": "channels_last", "jit": False, "skip_dropped": True},
}
DROP_RATE = 0.5
CLASSES = 10


def cases(models, backends, full_models, regularized_models):
    """The measurements, yardstick first for each model.

    Every model gets the yardstick and each backend's default. Models in
    `regularized_models` also get PyramidDrop and PyramidSepDrop, with the
    backend's default skipping and, where that is on, without it. Models in
    `full_models` get every variation: skipping flipped on every backend
    (under XLA on CPU a skipping step is about 14x slower, hence not on the
    big models), the other data format, bfloat16, and XLA for TensorFlow.
    """
    for model in models:
        yield {"model": model, "backend": "pytorch-plain"}
        for backend in backends:
            default = {"model": model, "backend": backend, **DEFAULTS[backend],
                       "precision": "float32", "regularization": None}
            yield default
            full = model in full_models
            if not full and model not in regularized_models:
                continue
            for regularization in ("drop", "sepdrop"):
                yield {**default, "regularization": regularization}
                if full or default["skip_dropped"]:
                    yield {**default, "regularization": regularization,
                           "skip_dropped": not default["skip_dropped"]}
            if not full:
                continue
            other_format = {"channels_last": "channels_first",
                            "channels_first": "channels_last"}[default["data_format"]]
            yield {**default, "data_format": other_format}
            yield {**default, "precision": "bfloat16"}
            # JAX without jit runs op by op; torch.compile takes minutes.
            if backend == "tensorflow":
                yield {**default, "jit": True}


def case_key(case):
    return json.dumps(case, sort_keys=True)


def describe(case):
    if case["backend"] in ("pytorch-plain", "pipeline"):
        return "-"
    default = DEFAULTS[case["backend"]]
    changed = [f"{key}={case[key]}" for key in ("data_format", "jit") if case[key] != default[key]]
    if case["precision"] != "float32":
        changed.append(case["precision"])
    if case["regularization"]:
        skipping = "skipping" if case["skip_dropped"] else "computing"
        changed.append(f"{case['regularization']} {DROP_RATE}, {skipping} dropped branches")
    return ", ".join(changed) or "default"


# --- inside one measuring process ----------------------------------------------------------


def timed_together(functions, batch, steps, warmup, repeats):
    """[(first call seconds, images/s of each repeat)], one pair per function.

    The functions take turns, repeat by repeat, so that a slow spell of a
    shared machine slows them alike instead of whichever ran during it.
    """
    firsts = []
    for function in functions:
        start = time.perf_counter()
        function()
        firsts.append(time.perf_counter() - start)
    for _ in range(warmup):
        for function in functions:
            function()
    rates = [[] for _ in functions]
    for _ in range(repeats):
        for function, function_rates in zip(functions, rates):
            start = time.perf_counter()
            for _ in range(steps):
                function()
            function_rates.append(batch * steps / (time.perf_counter() - start))
    return list(zip(firsts, rates))


def timed(function, batch, steps, warmup, repeats):
    """(first call seconds, images/s of each repeat) of one function."""
    return timed_together([function], batch, steps, warmup, repeats)[0]


def measure_keras(cases, settings, batch):
    """The cases of one process (same model, backend, data format and
    precision; XLA may differ): one model each, their steps interleaved
    (`timed_together`)."""
    import keras
    import numpy as np

    import keras_pyramid

    first = cases[0]
    threads = _set_threads(first["backend"], settings["threads"])
    keras.config.set_image_data_format(first["data_format"])
    if first["precision"] != "float32":
        keras.config.set_dtype_policy(f"mixed_{first['precision']}")
    rng = np.random.default_rng(0)
    shape = (batch, 32, 32, 3) if first["data_format"] == "channels_last" else (batch, 3, 32, 32)
    x = rng.uniform(0, 255, shape).astype("float32")
    y = rng.integers(0, CLASSES, batch).astype("int32")
    models, results = [], []
    for case in cases:
        architecture = MODELS[case["model"]]
        depth, alpha, bottleneck = architecture.depth, architecture.alpha, architecture.bottleneck
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        model = keras_pyramid.PyramidNet(depth, alpha, bottleneck, classes=CLASSES,
                                         regularization=case["regularization"],
                                         drop_rate=DROP_RATE, weight_decay=1e-4,
                                         skip_dropped=bool(case["regularization"])
                                         and case["skip_dropped"])
        build_seconds = time.perf_counter() - start
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            jit_compile=case["jit"],
        )
        models.append(model)
        results.append({"build_seconds": build_seconds, "threads": threads,
                        "parameters": sum(int(np.prod(w.shape))
                                          for w in model.trainable_weights)})
    timing = settings["timing"]
    trains = timed_together([lambda m=m: m.train_on_batch(x, y) for m in models], batch,
                            **timing)
    infers = timed_together([lambda m=m: m.predict_on_batch(x) for m in models], batch,
                            **timing)
    for result, train, infer in zip(results, trains, infers):
        result.update(train=train, infer=infer)
    return results


def measure_plain_pytorch(case, settings, batch):
    import torch
    from torch.nn import functional

    sys.path.insert(0, HERE)
    from torch_pyramidnet import TorchPyramidNet

    from keras_pyramid.models.pyramidnet import unit_widths

    threads = _set_threads("torch", settings["threads"])
    architecture = MODELS[case["model"]]
    depth, alpha, bottleneck = architecture.depth, architecture.alpha, architecture.bottleneck
    # On a GPU machine the yardstick runs where the Keras backends run.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    network = TorchPyramidNet(unit_widths(depth, alpha, bottleneck), bottleneck, CLASSES)
    network = network.to(device)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, CLASSES, (batch,), device=device)

    def finish():  # GPU work is asynchronous: a step is timed when it is done
        if device == "cuda":
            torch.cuda.synchronize()

    # bfloat16 as PyTorch users run it: autocast, the loss in float32.
    autocast = torch.autocast(device, dtype=torch.bfloat16,
                              enabled=case.get("precision") == "bfloat16")

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = network(x)
        functional.cross_entropy(logits.float(), y).backward()
        optimizer.step()
        finish()

    def infer():
        with torch.inference_mode(), autocast:
            network(x)
        finish()

    network.train()
    train = timed(train_step, batch, **settings["timing"])
    network.eval()
    inference = timed(infer, batch, **settings["timing"])
    parameters = sum(p.numel() for p in network.parameters() if p.requires_grad)
    return {"build_seconds": 0.0, "train": train, "infer": inference, "parameters": parameters,
            "threads": threads, "device": device}


def measure_pipeline(case, settings, batch):
    """The real training input pipeline alone: decoding, permutation, crop, flip, batching."""
    import tensorflow as tf

    from keras_pyramid import data

    tf.config.threading.set_inter_op_parallelism_threads(settings["threads"])
    source = data.open_source("cifar10", settings["data_dir"], download=False)
    stream = iter(data.training_stream(source, data.whole(source.parts["train"]),
                                       data.Preprocessing((32, 32), "cifar"), batch))
    first, rates = timed(lambda: next(stream), batch, **settings["timing"])
    return {"build_seconds": 0.0, "train": (first, rates), "infer": None, "parameters": 0,
            "threads": settings["threads"]}


def _set_threads(backend, threads):
    """Every framework gets the same number of threads; returns what it reports."""
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        return {"torch": torch.get_num_threads()}
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        return {"tensorflow_intra_op": threads}
    # XLA's CPU backend sizes its pool from the visible cores.
    return {"xla_cpu": os.cpu_count()}


def worker(cases, settings):
    """Measures `cases` (one process's share, see `process_groups`) and prints
    one RESULT line per case."""
    first = cases[0]
    if first["model"] in MODELS:
        batch = BATCH_SIZES.get(first["model"], DEFAULT_BATCH)
    else:
        batch = settings["pipeline_batch"]
    if first["backend"] in BACKENDS:
        results = measure_keras(cases, settings, batch)
    else:
        (case,) = cases
        measure = {"pytorch-plain": measure_plain_pytorch, "pipeline": measure_pipeline}
        results = [measure[case["backend"]](case, settings, batch)]
    for case, result in zip(cases, results):
        summary = {"case": case, "batch": batch, "process": os.getpid(),
                   **{k: v for k, v in result.items() if k not in ("train", "infer")}}
        for phase in ("train", "infer"):
            if result[phase] is not None:
                first_seconds, rates = result[phase]
                summary[phase] = {"first_call_seconds": first_seconds,
                                  "images_per_second": rates,
                                  "median": statistics.median(rates), "min": min(rates),
                                  "max": max(rates)}
        print("RESULT " + json.dumps(summary))


# --- the orchestrating process -------------------------------------------------------------


def machine():
    from keras_pyramid.utils import versions

    model_name = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model_name = next(line.split(":", 1)[1].strip() for line in f
                              if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model_name, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions.versions()}


def process_key(case):
    """Cases with the same key share one measuring process: one model and
    backend, and the process-wide image data format and dtype policy."""
    if case["backend"] not in BACKENDS:
        return case_key(case)  # the yardstick and the pipeline run alone
    return (case["model"], case["backend"], case["data_format"], case["precision"])


def process_groups(planned):
    """`planned` split into the lists of cases each measuring process runs, in order."""
    groups = {}
    for case in planned:
        groups.setdefault(process_key(case), []).append(case)
    return list(groups.values())


def run_group(cases, settings, timeout):
    """Runs one measuring process; one result per case (an error result on failure)."""
    backend = cases[0]["backend"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if backend in BACKENDS:
        env["KERAS_BACKEND"] = backend
    else:
        env["KERAS_BACKEND"] = "torch" if backend == "pytorch-plain" else "tensorflow"
    command = [sys.executable, os.path.abspath(__file__), "--worker",
               json.dumps({"cases": cases, "settings": settings})]
    try:
        finished = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=timeout * len(cases), check=False)
    except subprocess.TimeoutExpired:
        return [{"case": case, "error": f"timed out after {timeout * len(cases)} s"}
                for case in cases]
    results = [json.loads(line[len("RESULT "):]) for line in finished.stdout.splitlines()
               if line.startswith("RESULT ")]
    measured = {case_key(result["case"]) for result in results}
    error = (finished.stderr or finished.stdout)[-2000:]
    return results + [{"case": case, "error": error} for case in cases
                      if case_key(case) not in measured]


def ratio(result, yardstick, phase):
    if not yardstick or phase not in result or phase not in yardstick:
        return None
    return result[phase]["median"] / yardstick[phase]["median"]


def table(results):
    """The Markdown table: one row per case, ratios against the model's yardstick."""
    yardsticks = {r["case"]["model"]: r for r in results
                  if r["case"]["backend"] == "pytorch-plain" and "error" not in r}
    lines = [("| model (batch) | backend | setting | train img/s median (min-max) | x yardstick "
              "| inference img/s median (min-max) | x yardstick | first step s |"),
             "|---|---|---|---|---|---|---|---|"]

    def cell(phase, result):
        if phase not in result:
            return "-"
        p = result[phase]
        return f"{p['median']:.1f} ({p['min']:.1f}-{p['max']:.1f})"

    for result in results:
        case = result["case"]
        if "error" in result:
            lines.append(f"| {case['model']} | {case['backend']} | {describe(case)} | "
                         f"failed: {result['error'].splitlines()[-1][:80]} | | | | |")
            continue
        yardstick = yardsticks.get(case["model"])
        ratios = [ratio(result, yardstick, phase) for phase in ("train", "infer")]
        ratios = ["-" if r is None else f"{r:.2f}" for r in ratios]
        lines.append(
            f"| {case['model']} ({result['batch']}) | {case['backend']} | {describe(case)} | "
            f"{cell('train', result)} | {ratios[0]} | {cell('infer', result)} | {ratios[1]} | "
            f"{result['train']['first_call_seconds']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(PAPER_MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--full", default="pyramidnet20_a48",
                        help="models that get every setting varied")
    parser.add_argument("--regularized", default="pyramidnet110_a48",
                        help="models that also get PyramidDrop and PyramidSepDrop")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", default=os.environ.get("KERAS_PYRAMID_TFDS_DIR"),
                        help="a tfds dir with cifar10, to measure the input pipeline")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds per case (a process measuring n cases gets n times it)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "speed.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return parser, args
    args.models = [m for m in args.models.split(",") if m]
    args.backends = [b for b in args.backends.split(",") if b]
    for name, values, valid in (("--models", args.models, MODELS),
                                ("--backends", args.backends, BACKENDS)):
        unknown = [v for v in values if v not in valid]
        if unknown or not values:
            parser.error(f"{name}: unknown {unknown or 'empty list'}; valid: {', '.join(valid)}")
    for name in ("repeats", "steps", "threads", "timeout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0. Received: {args.warmup}")
    return parser, args


def main(argv=None):
    _, args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        worker(job["cases"], job["settings"])
        return 0
    # Imported here: only the measuring processes choose a backend.
    from keras_pyramid.utils.files import atomic_write_json, read_json_or

    settings = {"threads": args.threads, "data_dir": args.data_dir, "pipeline_batch": 64,
                "timing": {"steps": args.steps, "warmup": args.warmup, "repeats": args.repeats}}
    planned = list(cases(args.models, args.backends, args.full.split(","),
                         args.regularized.split(",")))
    if args.data_dir:
        planned.insert(0, {"model": "cifar10 input pipeline", "backend": "pipeline"})
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    report = {"settings": settings, "machine": machine(), "results": []}
    previous = read_json_or(args.output, {})
    if previous.get("settings") == settings:  # same measurement: resume it
        report["results"] = [r for r in previous["results"] if "error" not in r]
        print(f"Resuming {args.output}: {len(report['results'])} cases kept")
    done = {case_key(r["case"]) for r in report["results"]}
    for group in process_groups(planned):
        group = [case for case in group if case_key(case) not in done]
        if not group:
            continue
        for case in group:
            print(f"[{planned.index(case) + 1}/{len(planned)}] {case['model']} "
                  f"{case['backend']} {describe(case)}", flush=True)
        report["results"].extend(run_group(group, settings, args.timeout))
        report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write_json(args.output, report)
    order = {case_key(case): i for i, case in enumerate(planned)}
    report["results"].sort(key=lambda r: order.get(case_key(r["case"]), len(order)))
    atomic_write_json(args.output, report)
    print(table([r for r in report["results"] if r["case"]["backend"] != "pipeline"]))
    for result in report["results"]:
        if result["case"]["backend"] == "pipeline" and "train" in result:
            print(f"\ninput pipeline (real CIFAR-10, batch {result['batch']}): "
                  f"{result['train']['median']:.0f} images/s")
    return 1 if any("error" in r for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
