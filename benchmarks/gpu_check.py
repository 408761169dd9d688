"""One command, one GPU, one short lease: what a GPU gives this project.

    python benchmarks/gpu_check.py --data gpu_data/cifar10_subset.npz --output gpu_check.json
    python benchmarks/gpu_check.py --smoke --output smoke.json     # the same paths, CPU, tiny

Needs only torch and/or JAX, keras and its pure-Python dependencies (no
TensorFlow): each available backend runs in a child process of this script.
For each backend, float32 and bfloat16 (mixed precision, float32 logits and
loss), it measures training-step and inference images/s of
PyramidNet-110 alpha 48 at batch 128 and PyramidNet-272 alpha 200 at batch
64, beside a plain PyTorch yardstick of the same networks on the same GPU
in the same run (`torch_pyramidnet.py`; bfloat16 by autocast). Then it
trains PyramidNet-110 alpha 48 with the paper's recipe on the real CIFAR-10
subset in `--data` (device-resident, augmented in the step) for
`--train-seconds`, and reports images/s, the test accuracy reached, and the
projected wall time of the full 300-epoch CIFAR-10 run and of one
PyramidNet-272 epoch. Timings are medians of `--repeats` timed steps after
warm-up (compilation excluded), with min and max, taken by speed.py's own
measurements (benchmarks/results/README.md's speed table). Writes one JSON and a
Markdown table (`--output`, and the same name with .md).

The data subset travels with the repository (docs/development.md, "GPU check"): 10,000
training and 2,000 test images of the real CIFAR-10, 36 MB uncompressed.
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
sys.path.insert(0, HERE)  # speed.py: the timing and the yardstick
FULL = {"networks": [("pyramidnet110_a48", 128), ("pyramidnet272_a200", 64)],
        "train": ("pyramidnet110_a48", 128), "warmup": 3}
# The same code paths at a size a 2-core CPU runs in seconds.
# The same code paths at a size a 2-core CPU runs in seconds (one network:
# the second would take the same paths again).
SMOKE = {"networks": [("pyramidnet8_a24", 8)],
         "train": ("pyramidnet8_a24", 16), "warmup": 1}
CIFAR10_TRAIN, EPOCHS = 50_000, 300


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def measured(networks, backend, repeats, warmup, measure):
    """Each network in float32 and bfloat16, timed by speed.py's `measure`
    (its Keras or its plain-PyTorch measurement): one step per timing."""

    settings = {"threads": os.cpu_count(),
                "timing": {"steps": 1, "warmup": warmup, "repeats": repeats}}
    rows = []
    for name, batch in networks:
        for precision in ("float32", "bfloat16"):
            case = {"backend": backend, "model": name, "precision": precision,
                    "data_format": "channels_last", "regularization": None,
                    "skip_dropped": False, "jit": "auto"}
            result = measure(case, settings, batch)
            rows.append({"model": name, "batch": batch, "precision": precision,
                         "train_images_per_s": spread(result["train"][1]),
                         "inference_images_per_s": spread(result["infer"][1])})
    return rows


def keras_worker(settings, repeats, data_path, train_seconds):
    """Runs in a child process whose KERAS_BACKEND is set: Keras' figures."""
    import keras
    import speed

    from keras_pyramid.training import device

    def measure_keras(case, timing, batch):
        try:
            return speed.measure_keras([case], timing, batch)[0]
        finally:
            keras.config.set_dtype_policy("float32")  # it sets the case's policy

    backend = keras.backend.backend()
    report = {"backend": backend, "device": device.accelerator_kind(),
              "networks": measured(settings["networks"], backend, repeats,
                                   settings["warmup"], measure_keras)}
    if data_path:
        report["training"] = train_for(settings, data_path, train_seconds)
    return report


def train_for(settings, data_path, seconds):
    """The paper's recipe on the subset, device-resident, for about `seconds`."""
    import keras

    import keras_pyramid
    from keras_pyramid.data import resident
    from keras_pyramid.training import recipe

    name, batch = settings["train"]
    x_train, y_train, x_test, y_test, names = resident.load_npz(data_path)
    train = resident.ResidentData(x_train, y_train, batch, seed=0)
    test = resident.ResidentData(x_test, y_test, min(256, len(x_test)), seed=0)
    plan = recipe.paper_recipe("cifar10", batch_size=batch)
    model = keras_pyramid.build(name + "_sepdrop", classes=len(names),
                                weight_decay=plan.weight_decay, seed=0)
    trainer = resident.with_augmentation(model, seed=0)
    trainer.compile(optimizer=recipe.make_optimizer(plan, train.steps_per_epoch),
                    loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    stream = train.training_stream()
    trainer.fit(stream, steps_per_epoch=2, epochs=1, verbose=0)  # compile
    epochs, images, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        trainer.fit(stream, steps_per_epoch=train.steps_per_epoch, epochs=1, verbose=0)
        epochs += 1
        images += train.steps_per_epoch * batch
    elapsed = time.perf_counter() - started
    _, accuracy = trainer.evaluate(test.evaluation_stream(), steps=test.evaluation_steps,
                                   verbose=0)
    rate = images / elapsed
    return {"model": name + "_sepdrop", "batch": batch, "train_examples": train.count,
            "test_examples": test.count, "epochs": epochs, "seconds": elapsed,
            "images_per_s": rate, "test_accuracy": float(accuracy),
            "projected_full_run_hours": CIFAR10_TRAIN * EPOCHS / rate / 3600}


def yardstick(settings, repeats):
    """Plain PyTorch, the same networks, on the same device (speed.py's)."""
    import speed
    import torch

    return {"backend": "pytorch (plain)", "device": "cuda" if torch.cuda.is_available()
            else "cpu", "networks": measured(settings["networks"], "torch", repeats,
                                             settings["warmup"],
                                             speed.measure_plain_pytorch)}


def environment():
    from keras_pyramid.utils.versions import versions

    found = {**versions(("torch", "jax", "jaxlib", "keras", "numpy")),
             "machine": platform.machine()}
    try:
        import torch

        if torch.cuda.is_available():
            found["gpu"] = torch.cuda.get_device_name(0)
            found["gpu_bfloat16"] = torch.cuda.is_bf16_supported()
    except ImportError:
        pass
    return found


def settings_of(report):
    return SMOKE if report["smoke"] else FULL


def markdown(report):
    lines = [f"GPU check, {report['date']}: {report['environment'].get('gpu', 'no GPU (CPU)')}"
             f"{' (SMOKE: tiny sizes, not a measurement)' if report['smoke'] else ''}", "",
             "| backend | model | batch | precision | train img/s (median, min-max) | "
             "inference img/s | train vs PyTorch |", "|---|---|---|---|---|---|---|"]
    plain = {(r["model"], r["precision"]): r for r in report["yardstick"].get("networks", [])}
    for run in [*report["backends"], report["yardstick"]]:
        for row in run.get("networks", []):
            t, i = row["train_images_per_s"], row["inference_images_per_s"]
            reference = plain.get((row["model"], row["precision"]))
            ratio = (f"{t['median'] / reference['train_images_per_s']['median']:.2f}x"
                     if reference else "-")
            lines.append(f"| {run['backend']} | {row['model']} | {row['batch']} | "
                         f"{row['precision']} | {t['median']:.0f} ({t['min']:.0f}-"
                         f"{t['max']:.0f}) | {i['median']:.0f} | {ratio} |")
    for run in [*report["backends"], report["yardstick"]]:
        for row in run.get("networks", []):
            if row["model"] == settings_of(report)["networks"][-1][0]:
                minutes = CIFAR10_TRAIN / row["train_images_per_s"]["median"] / 60
                lines.append(f"- {run['backend']}, {row['model']} {row['precision']}: one "
                             f"CIFAR-10 epoch (50,000 images) projected at {minutes:.1f} min")
    for run in report["backends"]:
        if "training" in run:
            t = run["training"]
            lines.append("")
            lines.append(f"{run['backend']}: {t['model']} trained {t['seconds']:.0f} s "
                         f"({t['epochs']} epochs of {t['train_examples']} images) at "
                         f"{t['images_per_s']:.0f} img/s, test accuracy "
                         f"{100 * t['test_accuracy']:.1f}% on {t['test_examples']}; "
                         f"projected 300 CIFAR-10 epochs: {t['projected_full_run_hours']:.1f} h")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="the JSON report (and .md beside it)")
    parser.add_argument("--data", default=None, help="an .npz (keras.datasets layout)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CPUs and CI")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--train-seconds", type=float, default=None)
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    repeats = args.repeats or (2 if args.smoke else 20)
    seconds = args.train_seconds if args.train_seconds is not None else (
        2.0 if args.smoke else 150.0)
    if args.worker:  # a child: one backend, its report on stdout's last line
        result = (yardstick(settings, repeats) if args.worker == "yardstick" else
                  keras_worker(settings, repeats, args.data, seconds))
        print(json.dumps(result))
        return 0
    backends = [b for b in args.backends.split(",") if b]
    # This process imports Keras only to write the report: on a backend it has.
    os.environ.setdefault("KERAS_BACKEND", backends[0] if backends else "torch")
    report = {"date": time.strftime("%Y-%m-%d"), "smoke": args.smoke,
              "environment": environment(), "backends": [], "yardstick": {}}
    print(json.dumps(report["environment"]), flush=True)
    children = backends + ["yardstick"]
    for child in children:
        env = dict(os.environ, KERAS_BACKEND="torch" if child == "yardstick" else child,
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, os.path.abspath(__file__), "--worker", child,
                   "--output", args.output, "--repeats", str(repeats),
                   "--train-seconds", str(seconds)] + (["--smoke"] if args.smoke else []) + (
                       ["--data", args.data] if args.data else [])
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{child}: failed ({result.stderr.strip().splitlines()[-1:]})", flush=True)
            report.setdefault("failures", {})[child] = result.stderr[-2000:]
            continue
        found = json.loads(result.stdout.strip().splitlines()[-1])
        found["seconds"] = time.perf_counter() - started
        if child == "yardstick":
            report["yardstick"] = found
        else:
            report["backends"].append(found)
        print(f"{child}: done in {found['seconds']:.0f} s", flush=True)
    from keras_pyramid.utils.files import atomic_write_json, atomic_write_text

    atomic_write_json(args.output, report)
    atomic_write_text(os.path.splitext(args.output)[0] + ".md", markdown(report))
    print(markdown(report))
    return 1 if report.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
