"""Where the time of a JAX training step goes, without gates, with PyramidDrop, with PyramidSepDrop.

    python benchmarks/profile_jax_step.py            # PyramidNet-110 alpha 48, batch 64 (~10 min)
    python benchmarks/profile_jax_step.py --depth 20 --rounds 3

For each regularizer (none, PyramidDrop and PyramidSepDrop at drop rate 0.5,
per-batch gates, dropped branches computed as JAX does by default) it
compiles Keras' own train step (`model.train_step` under `jax.jit`, exactly
what `fit` runs) and reports:

- XLA's cost analysis of the compiled step: floating-point operations and
  bytes accessed. The gates add `L` (PyramidDrop) or `2L` (SepDrop) random
  draws of one number and one multiply of the branch output per unit, so
  their share is expected to be a fraction of a percent.
- images/s over `--rounds` timings of `--steps` steps, the three steps taking
  turns round by round (so a slow spell of a shared machine hits them alike).
- XLA profiles (`jax.profiler.trace`) of `--steps` steps, `--traces` per
  step taken in turns, summed per operation and grouped: convolutions (XLA
  CPU hands them to XNNPACK or oneDNN fusions), layout transposes, and
  everything else (batch norm, ReLU, adds, the gates, the optimizer). Times are
  thread-milliseconds per
  step (the median over the traces): XLA's pool runs ops on every core, so
  they can add up to more than the wall time.

The last trace of each step stays under `--output` (open it with
TensorBoard's profile plugin or Perfetto), next to `profile.json`.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"  # the profile is of XLA's compiled step

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

REGULARIZATIONS = (None, "drop", "sepdrop")
DROP_RATE = 0.5
CLASSES = 10
# Host-side events of the trace (Python frames, the runtime's bookkeeping),
# as opposed to the compiled step's operations.
HOST_EVENT_PREFIXES = ("$", "PjitFunction", "ThunkExecutor", "SlinkyThreadPool",
                       "CommonPjRtClient")


def category(operation):
    """The group an XLA CPU operation's time is reported under."""
    name = operation.lower()
    if any(word in name for word in ("ynn", "onednn", "convolution", "xnn", "dot")):
        return "convolutions"
    if "transpose" in name:
        return "transposes"
    return "other operations"


def compiled_train_step(model, batch):
    """Keras' train step for `model`, compiled by XLA, and its initial state."""
    import jax

    model._symbolic_build(data_batch=batch)
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    start = time.perf_counter()
    step = jax.jit(model.train_step, donate_argnums=0).lower(state, batch).compile()
    return step, state, time.perf_counter() - start


def thread_milliseconds_per_category(trace_dir, steps):
    """Sum of each group's operation durations in a `jax.profiler` trace, per step."""
    (path,) = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz"))
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    totals = collections.Counter()
    for event in events:
        if event.get("ph") != "X" or event["name"].startswith(HOST_EVENT_PREFIXES):
            continue
        totals[category(event["name"])] += event["dur"] / 1000.0 / steps
    return dict(totals)


def profile(args):
    import jax
    import keras
    import numpy as np

    import keras_pyramid
    from keras_pyramid.utils import versions

    rng = np.random.default_rng(0)
    batch = (rng.uniform(0, 255, (args.batch, 32, 32, 3)).astype("float32"),
             rng.integers(0, CLASSES, args.batch).astype("int32"), None)
    units = "bottleneck" if args.bottleneck else "basic"
    report = {"model": f"PyramidNet-{args.depth} alpha {args.alpha} ({units} units)",
              "batch": args.batch,
              "drop_rate": DROP_RATE, "devices": [str(d) for d in jax.devices()],
              "versions": versions.versions(), "steps": {}}
    runs = {}
    for regularization in REGULARIZATIONS:
        name = regularization or "none"
        keras.utils.set_random_seed(0)
        model = keras_pyramid.PyramidNet(args.depth, args.alpha, args.bottleneck,
                                         classes=CLASSES, regularization=regularization,
                                         drop_rate=DROP_RATE, weight_decay=1e-4)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                      loss=keras.losses.SparseCategoricalCrossentropy())
        step, state, compile_seconds = compiled_train_step(model, batch)
        cost = step.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per device
        report["steps"][name] = {"compile_seconds": compile_seconds, "flops": cost["flops"],
                                 "bytes_accessed": cost["bytes accessed"]}
        logs, state = step(state, batch)  # the first call allocates; not timed
        jax.block_until_ready(logs)
        runs[name] = [step, state]
        print(f"{name}: compiled in {compile_seconds:.0f} s", flush=True)

    rates = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs, run[1] = run[0](run[1], batch)
            jax.block_until_ready(logs)
            rates[name].append(args.batch * args.steps / (time.perf_counter() - start))

    # Thread time in one short trace varied by up to 30% here (a shared machine), so the
    # steps are traced in turns too, and each group's median over the traces is reported.
    samples = {name: collections.defaultdict(list) for name in runs}
    for _ in range(args.traces):
        for name, run in runs.items():
            trace_dir = os.path.join(args.output, f"trace_{name}")
            shutil.rmtree(trace_dir, ignore_errors=True)  # keeps the last trace only
            with jax.profiler.trace(trace_dir):
                for _ in range(args.steps):
                    logs, run[1] = run[0](run[1], batch)
                jax.block_until_ready(logs)
            for group, ms in thread_milliseconds_per_category(trace_dir, args.steps).items():
                samples[name][group].append(ms)
    for name in runs:
        report["steps"][name].update(
            images_per_second=rates[name], median=statistics.median(rates[name]),
            thread_ms_per_step={group: statistics.median(values)
                                for group, values in samples[name].items()},
            thread_ms_per_step_traces=dict(samples[name]))
    return report


def table(report):
    none = report["steps"]["none"]
    lines = [f"{report['model']}, batch {report['batch']}, drop rate {report['drop_rate']}:", "",
             ("| step | GFLOP | x none | GB accessed | img/s median (min-max) "
              "| convolutions ms | transposes ms | other ops ms |"),
             "|---|---|---|---|---|---|---|---|"]
    for name, step in report["steps"].items():
        ms = step["thread_ms_per_step"]
        rates = step["images_per_second"]
        lines.append(
            f"| {name} | {step['flops'] / 1e9:.2f} | {step['flops'] / none['flops']:.4f} "
            f"| {step['bytes_accessed'] / 1e9:.2f} | {step['median']:.2f} "
            f"({min(rates):.2f}-{max(rates):.2f}) | {ms.get('convolutions', 0):.0f} "
            f"| {ms.get('transposes', 0):.0f} | {ms.get('other operations', 0):.0f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--alpha", type=int, default=48)
    parser.add_argument("--bottleneck", action="store_true", help="bottleneck units (272 etc.)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="timings per step, interleaved")
    parser.add_argument("--steps", type=int, default=2, help="steps per timing and per trace")
    parser.add_argument("--traces", type=int, default=3, help="profiles per step, interleaved")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "profile_jax"))
    args = parser.parse_args(argv)
    for name in ("alpha", "batch", "rounds", "steps", "traces"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from keras_pyramid.utils.files import atomic_write_json

    os.makedirs(args.output, exist_ok=True)
    report = profile(args)
    atomic_write_json(os.path.join(args.output, "profile.json"), report)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
