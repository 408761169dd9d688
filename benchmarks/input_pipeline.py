"""Whether the input pipeline keeps up with training at 224 px, on this machine's CPUs.

    nice -n 5 python benchmarks/input_pipeline.py             # 4-6 min on 2 cores
    python benchmarks/input_pipeline.py --smoke               # a wiring check: tiny everything

Images/s of `keras_pyramid.data` reading a folder of JPEGs (decode, then the
ImageNet regime: random resized crop + flip for training, resize + centre
crop for evaluation), beside the yardstick it has to feed in the same run:
images/s of `train_on_batch` (and `predict_on_batch`) of an ImageNet-variant
PyramidNet at 224 px, and of `train_on_batch` fed by the training stream as
a real run is (pipeline and step then share the CPUs). The ratio pipeline /
step says whether the pipeline keeps up (> 1) and by how much.

The folder is made on the fly in a temporary directory: real CIFAR-10 test
images (`/work/shared/data/cifar10_test.npz`, or --cifar), an equal number
per class, upsampled (bicubic, PIL) to photo-like sizes of 256-500 px drawn
per image from `SHAPES` (seeded) and saved as JPEG quality 90. Upsampled
32x32 images are smoother than photographs, so their files are smaller and
decode somewhat faster than ImageNet's of the same size (the mean file size
is recorded to judge by): the pipeline figures are an upper bound.

Each figure is the median, with min-max, of --repeats timed passes of
--batches batches (--steps for the model) after a warm-up; tf.data's
threading is at its defaults (AUTOTUNE parallelism, the shared thread pool).
The backend of the model is Keras' (KERAS_BACKEND); the pipeline is
tf.data's whatever the backend. Results go to a JSON file (with the CPU
count and the versions) and a Markdown table on stdout. Not a test.
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # run from a checkout: `python benchmarks/input_pipeline.py`

CIFAR_TEST = "/work/shared/data/cifar10_test.npz"
SIZE = (224, 224)
# (height, width) of the JPEGs, one drawn per image: ImageNet's common shapes.
SHAPES = ((375, 500), (333, 500), (500, 375), (500, 333), (400, 500), (500, 400),
          (256, 341), (341, 256), (375, 375), (450, 300))
JPEG_QUALITY = 90


def make_folder(root, cifar, images, seed):
    """`images` JPEGs over the 10 CIFAR-10 classes (as equal as can be), in root/CLASS/.
    Returns (seconds, mean file size in bytes, mean pixels per image)."""
    import numpy as np
    from PIL import Image

    start = time.perf_counter()
    arrays = np.load(cifar)
    x, y = arrays["x_test"], arrays["y_test"]
    rng = np.random.default_rng(seed)
    sizes, pixels = [], []
    for label in range(10):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder)
        per_class = max(1, images // 10 + (label < images % 10))
        for k, index in enumerate(np.flatnonzero(y == label)[:per_class]):
            height, width = SHAPES[rng.integers(len(SHAPES))]
            path = os.path.join(folder, f"{k:05d}.jpg")
            Image.fromarray(x[index]).resize((width, height), Image.BICUBIC).save(
                path, quality=JPEG_QUALITY)
            sizes.append(os.path.getsize(path))
            pixels.append(height * width)
    return time.perf_counter() - start, float(np.mean(sizes)), float(np.mean(pixels))


def yardstick(smoke, depth, alpha):
    """The compiled model the pipeline feeds, and its description."""
    import keras

    import keras_pyramid

    if smoke:  # builds and traces in seconds; the figures mean nothing
        model = keras_pyramid.PyramidNet(8, 8, input_shape=SIZE + (3,), classes=10)
        described = "PyramidNet(8, 8) CIFAR variant at 224 px (smoke)"
    else:
        model = keras_pyramid.PyramidNet(depth, alpha, True, variant="imagenet", classes=10)
        described = f"PyramidNet({depth}, {alpha}, bottleneck, variant='imagenet', classes=10)"
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy")
    return model, f"{described}, {model.count_params():,} parameters"


def timed_passes(work, units, repeats, warmup):
    """Images/s of `repeats` passes of `units` calls of `work()` (each returns
    the images it handled), after `warmup` untimed calls."""
    for _ in range(warmup):
        work()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = sum(work() for _ in range(units))
        rates.append(done / (time.perf_counter() - start))
    return rates


def summary(rates):
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "passes": [round(r, 2) for r in rates]}


def measure(args, folder):
    import keras

    from keras_pyramid import data

    source = data.open_source(folder)
    everything = data.whole(source.parts["train"])
    regime = data.Preprocessing(SIZE, "imagenet")
    training = data.training_stream(source, everything, regime, args.batch_size, seed=args.seed)
    evaluation = data.evaluation_stream(source, everything, regime, args.batch_size,
                                        full_batches=True).repeat()
    model, described = yardstick(args.smoke, args.depth, args.alpha)
    x, y = next(iter(training))

    def pulled(dataset):  # a fresh iterator: no stream runs before it is timed
        stream = iter(dataset)
        return lambda: len(next(stream)[1])

    def train_step():
        model.train_on_batch(x, y)
        return len(y)

    def predict_step():
        model.predict_on_batch(x)
        return len(y)

    def fed(dataset):  # the step as `fit` runs it: each batch from the stream
        stream = iter(dataset)

        def step():
            images, labels = next(stream)
            model.train_on_batch(images, labels)
            return len(labels)
        return step

    passes = (args.batches, args.repeats, args.warmup)
    steps = (args.steps, args.repeats, 1)  # the first call traces (or compiles)
    rates = {
        "pipeline_training": timed_passes(pulled(training), *passes),
        "pipeline_evaluation": timed_passes(pulled(evaluation), *passes),
        "train_on_batch": timed_passes(train_step, *steps),
        "predict_on_batch": timed_passes(predict_step, *steps),
        "train_on_batch_fed": timed_passes(fed(training), *steps),
    }
    results = {name: summary(values) for name, values in rates.items()}
    ratios = {
        "training": results["pipeline_training"]["median"]
        / results["train_on_batch"]["median"],
        "evaluation": results["pipeline_evaluation"]["median"]
        / results["predict_on_batch"]["median"],
    }
    return {"backend": keras.backend.backend(), "model": described, "images": len(everything),
            "results": results, "ratios": ratios}


def versions():
    """The package's version report, with Pillow (it decodes the JPEGs here)."""
    from keras_pyramid.utils import versions

    return versions.versions((*versions.PACKAGES, "pillow"))


def table(report):
    results, ratios = report["results"], report["ratios"]

    def rate(name):
        r = results[name]
        return f"{r['median']:.1f} ({r['min']:.1f}-{r['max']:.1f})"

    return "\n".join([
        "| path | pipeline images/s | yardstick | yardstick images/s | pipeline / yardstick |",
        "|---|---|---|---|---|",
        (f"| training: decode + random resized crop + flip | {rate('pipeline_training')} | "
         f"train_on_batch | {rate('train_on_batch')} | {ratios['training']:.1f}x |"),
        (f"| evaluation: decode + resize + centre crop | {rate('pipeline_evaluation')} | "
         f"predict_on_batch | {rate('predict_on_batch')} | {ratios['evaluation']:.1f}x |"),
        (f"| training stream feeding train_on_batch | - | fed train_on_batch | "
         f"{rate('train_on_batch_fed')} | - |"),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="JPEGs, over 10 classes")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="16: a step of the default model takes ~3.5 s on 2 cores")
    parser.add_argument("--batches", type=int, default=20, help="pipeline batches per pass")
    parser.add_argument("--steps", type=int, default=3, help="model steps per pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes")
    parser.add_argument("--warmup", type=int, default=5, help="untimed pipeline batches")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--alpha", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cifar", default=CIFAR_TEST)
    parser.add_argument("--smoke", action="store_true",
                        help="64 images, 1 repeat of 2 batches, a tiny model")
    parser.add_argument("--output", default=None,
                        help="default results/input_pipeline.json; with --smoke, a temp file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.batch_size, args.batches, args.steps = 64, 8, 2, 1
        args.repeats, args.warmup = 1, 1
    if args.output is None:
        args.output = (os.path.join(tempfile.gettempdir(), "input_pipeline_smoke.json")
                       if args.smoke else os.path.join(HERE, "results", "input_pipeline.json"))

    start = time.perf_counter()
    root = tempfile.mkdtemp(prefix="input_pipeline_")
    try:
        seconds, file_bytes, pixels = make_folder(root, args.cifar, args.images, args.seed)
        report = measure(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.update({
        "size": list(SIZE), "batch_size": args.batch_size, "batches_per_pass": args.batches,
        "steps_per_pass": args.steps, "repeats": args.repeats, "smoke": args.smoke,
        "folder": {"images": args.images, "shapes": [list(s) for s in SHAPES],
                   "jpeg_quality": JPEG_QUALITY, "mean_file_kib": file_bytes / 1024,
                   "mean_megapixels": pixels / 1e6, "build_seconds": seconds},
        "tf_data_threading": "defaults (AUTOTUNE, shared thread pool)",
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "versions": versions(), "wall_seconds": time.perf_counter() - start,
    })
    from keras_pyramid.utils.files import atomic_write_json

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    atomic_write_json(args.output, report)
    print(f"{report['model']}; {report['backend']} backend; batch {args.batch_size}; "
          f"{os.cpu_count()} CPUs; {report['images']} JPEGs "
          f"({file_bytes / 1024:.0f} KiB, {pixels / 1e6:.2f} MP on average)\n")
    print(table(report))
    print(f"\nwall time {report['wall_seconds']:.0f} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
