"""The real CIFAR-10 (the npz copy in ../shared/data) and image folders written from it."""

import os

import numpy as np

from helpers.paths import SHARED_DATA

SAMPLE_TRAIN_EXAMPLES, SAMPLE_TEST_EXAMPLES = 2000, 500


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


def load_cifar10_npz():
    """The real CIFAR-10 arrays from ../shared/data: (x_train, y_train, x_test, y_test)."""
    parts = [np.load(os.path.join(SHARED_DATA, f"cifar10_train_part{i}.npz")) for i in (1, 2)]
    test = np.load(os.path.join(SHARED_DATA, "cifar10_test.npz"))
    return (
        np.concatenate([p["x_train"] for p in parts]),
        np.concatenate([p["y_train"] for p in parts]),
        test["x_test"],
        test["y_test"],
    )


def write_image_folder(root, classes, per_class, offset=0, odd=True):
    """Real CIFAR-10 test images of `classes` as root/NAME/*.png|jpg: JPEG and
    PNG alternate and, with `odd`, some are grayscale, palette or RGBA, and
    some are resized to odd non-square sizes (what a user's folder holds)."""
    from PIL import Image

    test = np.load(os.path.join(SHARED_DATA, "cifar10_test.npz"))
    images, labels = test["x_test"], test["y_test"].ravel()
    for label in classes:
        folder = os.path.join(root, CIFAR10_NAMES[label])
        os.makedirs(folder, exist_ok=True)
        for j, index in enumerate(np.flatnonzero(labels == label)[offset:offset + per_class]):
            image = Image.fromarray(images[index])
            if odd and j % 6 == 1:
                image = image.convert("L")
            elif odd and j % 6 == 3:
                image = image.convert("P")
            elif odd and j % 6 == 5:
                image = image.convert("RGBA")
            if odd and j % 4 == 2:
                image = image.resize((45, 29))
            suffix = "jpg" if j % 2 == 0 and image.mode in ("RGB", "L") else "png"
            image.save(os.path.join(folder, f"{index:05d}.{suffix}"))
    return str(root)
