"""What a large registered model costs to build and to run once, per backend.

    python benchmarks/build_cost.py --model pyramidnet200_a300_imagenet

Each backend runs in a fresh process: the build (with its initializers, as a
user gets it), then inference on one 224x224 image (the first call includes
tracing or XLA compilation; the second is the steady cost). Under JAX, Keras'
initializers compile one XLA program per weight shape, which makes a plain
build of a deep network take minutes; the cheap way, measured instead, builds
under `keras.StatelessScope(initialize_variables=False)` (shapes only) and
fills the variables with `keras_pyramid.models.init.initialize_with_numpy` (the
same distributions, drawn by NumPy).
Results go to a JSON file and a Markdown table on stdout. Not a test.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")


def measure(name, size):
    import keras
    import numpy as np

    import keras_pyramid
    from keras_pyramid.models.init import initialize_with_numpy

    backend = keras.backend.backend()
    start = time.perf_counter()
    if backend == "jax":
        with keras.StatelessScope(initialize_variables=False):
            model = keras_pyramid.build(name, input_shape=(size, size, 3))
        initialize_with_numpy(model)
        how = "stateless build + initialize_with_numpy"
    else:
        model = keras_pyramid.build(name, input_shape=(size, size, 3))
        how = "build with Keras' initializers"
    build = time.perf_counter() - start
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        model.predict_on_batch(x)
        timings.append(time.perf_counter() - start)
    parameters = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"backend": backend, "model": name, "size": size, "how": how,
            "parameters": parameters, "build_seconds": build,
            "first_inference_seconds": timings[0], "inference_seconds": timings[1]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pyramidnet200_a300_imagenet")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "build_cost.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(measure(args.model, args.size)))
        return 0
    results = []
    for backend in args.backends.split(","):
        finished = subprocess.run(
            [sys.executable, __file__, "--worker", "--model", args.model, "--size",
             str(args.size)], capture_output=True, text=True, check=False,
            env=dict(os.environ, KERAS_BACKEND=backend,
                     PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")))
        lines = [line for line in finished.stdout.splitlines() if line.startswith("RESULT ")]
        if finished.returncode or not lines:
            print(f"{backend}: failed (exit {finished.returncode})\n{finished.stderr[-2000:]}")
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    from keras_pyramid.utils.files import atomic_write_json

    atomic_write_json(args.output, {"cores": os.cpu_count(), "results": results})
    print("| backend | how | parameters | build (s) | first inference (s) | inference (s) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['how']} | {r['parameters']:,} | {r['build_seconds']:.1f} | "
              f"{r['first_inference_seconds']:.1f} | {r['inference_seconds']:.2f} |")
    return 0 if len(results) == len(args.backends.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
