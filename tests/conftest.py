"""Fixtures shared by every test (helpers: tests/helpers/, one module per concern).
The suite runs once per backend."""

import os
import sys
import zipfile

import keras
import pytest
from helpers.data import (
    SAMPLE_TEST_EXAMPLES,
    SAMPLE_TRAIN_EXAMPLES,
    load_cifar10_npz,
    write_image_folder,
)
from helpers.paths import SHARED_DATA
from helpers.processes import run_command
from helpers.reference_nets import (
    CIFAR_STATISTICS,
    calibrate_head,
    pytorchcv_probabilities,
    randomize_batchnorm,
)
from helpers.served_weights import file_sha1, with_entry


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from float32, channels_last and a fixed global seed."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


@pytest.fixture(scope="session")
def cifar10_tfds_dir(tmp_path_factory):
    """A tfds data dir with the real CIFAR-10, built offline from ../shared/data.

    CI builds it once and names it in KERAS_PYRAMID_TFDS_DIR; otherwise it is
    built here (about a minute). Never downloads.
    """
    prepared = os.environ.get("KERAS_PYRAMID_TFDS_DIR")
    if prepared and os.path.isdir(os.path.join(prepared, "cifar10")):
        return prepared
    directory = str(tmp_path_factory.mktemp("tfds"))
    made = run_command([sys.executable, os.path.join(SHARED_DATA, "make_tfds.py"), directory,
                        "--no-verify"], timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    return directory


@pytest.fixture(scope="session")
def cifar10_sample_tfds_dir(cifar10_tfds_dir, tmp_path_factory):
    """A tfds 'cifar10' data dir holding the first 2,000 training and 500 test
    images of the real CIFAR-10, for the program tests.

    tfds' stock builder reads it like the full one (same name, version and
    features), and a program decodes it in 0.3 s instead of 5 s: the program
    tests start about 20 training processes per backend.
    """
    import tensorflow_datasets as tfds

    full = tfds.builder("cifar10", data_dir=cifar10_tfds_dir)
    directory = str(tmp_path_factory.mktemp("tfds-sample"))
    tfds.dataset_builders.store_as_tfds_dataset(
        name="cifar10", version=full.info.version, features=full.info.features,
        split_datasets={
            "train": full.as_dataset(split=f"train[:{SAMPLE_TRAIN_EXAMPLES}]"),
            "test": full.as_dataset(split=f"test[:{SAMPLE_TEST_EXAMPLES}]"),
        },
        data_dir=directory, disable_shuffling=True)
    return directory


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """5 classes (CIFAR-10's dog..truck) x 24 real images, mixed formats, modes and sizes."""
    return write_image_folder(tmp_path_factory.mktemp("folder"), range(5, 10), 24)


@pytest.fixture(scope="session")
def image_folder_with_test(tmp_path_factory):
    """train/ (3 classes x 16) and test/ (3 x 6) trees of real images."""
    root = tmp_path_factory.mktemp("folder-splits")
    write_image_folder(root / "train", range(3), 16)
    write_image_folder(root / "test", range(3), 6, offset=100)
    return str(root)


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """The served zip (a file:// URL), its TrainedWeights entry, the net, 16 real
    CIFAR-10 test images and the net's probabilities on them."""
    torch = pytest.importorskip("torch")
    pyramidnet_cifar = pytest.importorskip("pytorchcv.models.pyramidnet_cifar")
    from keras_pyramid.models import presets

    folder = tmp_path_factory.mktemp("server")
    torch.manual_seed(5)
    net = randomize_batchnorm(pyramidnet_cifar.get_pyramidnet_cifar(10, 8, 24, False))
    images = load_cifar10_npz()[2][:16]
    calibrate_head(net, images, CIFAR_STATISTICS)
    probabilities = pytorchcv_probabilities(net, images, CIFAR_STATISTICS)
    pth = folder / "pyramidnet8_a24_cifar10-0000-00000000.pth"
    torch.save(net.state_dict(), pth)
    with zipfile.ZipFile(str(pth) + ".zip", "w") as archive:
        archive.write(pth, pth.name)
    entry = presets.TrainedWeights(
        dataset="cifar10", source="pytorchcv", source_name="pyramidnet8_a24_cifar10",
        file_name=pth.name, url=f"file://{pth}.zip", sha1=file_sha1(pth), classes=10,
        input_size=32, mean=presets.IMGCLSMOB_CIFAR_MEAN, std=presets.IMGCLSMOB_CIFAR_STD,
        error=0.0, metric="top-1 error %", licence="test", parameters=0)
    os.remove(pth)  # only the zip is served
    return {"entry": entry, "net": net, "images": images.astype("float32"),
            "probabilities": probabilities, "zip": str(pth) + ".zip"}


@pytest.fixture
def served(published, tmp_path, monkeypatch):
    """The registry serves the test entry; the cache is empty."""
    from keras_pyramid.models import presets
    from keras_pyramid.weights import cache as weights

    cache = tmp_path / "keras_home" / weights.CACHE_SUBDIR
    monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(published["entry"]))
    monkeypatch.setattr(weights, "cache_dir", lambda: str(cache))
    return dict(published, cache=cache, paths=weights.cached_paths(published["entry"],
                                                                   str(cache)))
