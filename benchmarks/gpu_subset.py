"""Writes the real CIFAR-10 subset that travels to a GPU machine with the repository.

    python benchmarks/gpu_subset.py gpu_data/cifar10_subset.npz --train 10000 --test 2000

The first N training images of each of the two npz parts in ../shared/data
(balanced halves) and the first M test images, in the keras.datasets layout
(x_train, y_train, x_test, y_test, class_names), uncompressed (CIFAR's pixels
do not compress: 36 MB for 10,000 + 2,000). Written atomically.
"""

import argparse
import json
import os
import sys

import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                      "shared", "data")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--test", type=int, default=2_000)
    parser.add_argument("--shared", default=SHARED)
    args = parser.parse_args(argv)
    parts = [np.load(os.path.join(args.shared, f"cifar10_train_part{i}.npz")) for i in (1, 2)]
    half = args.train // 2
    x_train = np.concatenate([p["x_train"][:half] for p in parts])
    y_train = np.concatenate([p["y_train"][:half] for p in parts]).reshape(-1)
    test = np.load(os.path.join(args.shared, "cifar10_test.npz"))
    names = json.load(open(os.path.join(args.shared, "cifar_meta.json")))["cifar10"][
        "class_names"]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    from keras_pyramid.utils.files import atomic_path

    # A file object, not a name: np.savez would add ".npz" to a name without it.
    with atomic_path(args.output) as temporary, open(temporary, "wb") as f:
        np.savez(f, x_train=x_train, y_train=y_train, x_test=test["x_test"][:args.test],
                 y_test=test["y_test"][:args.test].reshape(-1), class_names=np.array(names))
    print(f"{args.output}: {len(x_train)} training, {args.test} test images, "
          f"{os.path.getsize(args.output) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
