"""Builds PyramidNet-272 (alpha 200) with PyramidSepDrop, prints it, runs one training step.

    python applications/demo.py [--batch-size 8] [--classes 100] [--no-summary]

A smoke test of the model zoo on whatever backend `KERAS_BACKEND` selects.
"""

import argparse
import time

import arguments as cli


def parse_args(argv=None):
    """Checked before Keras is imported: a bad value is refused in a second,
    not after minutes of building a 272-layer model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=cli.positive_int, default=8)
    parser.add_argument("--classes", type=cli.positive_int, default=100)
    parser.add_argument("--no-summary", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np

    from keras_pyramid.applications import PyramidNet272SepDrop

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")

    start = time.perf_counter()
    model = PyramidNet272SepDrop(classes=args.classes, seed=0)
    print(f"built {model.name} in {time.perf_counter() - start:.1f} s")
    if not args.no_summary:
        model.summary(line_length=110)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"trainable parameters: {trainable:,}")

    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        keras.losses.SparseCategoricalCrossentropy(),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, args.classes, args.batch_size)
    start = time.perf_counter()
    loss = float(model.train_on_batch(images, labels))
    print(
        f"one training step on {args.batch_size} images: loss {loss:.4f}, "
        f"{time.perf_counter() - start:.1f} s (includes tracing)"
    )


if __name__ == "__main__":
    main()
