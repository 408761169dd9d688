"""Converted PyTorch checkpoints give the source model's class probabilities.

pytorchcv builds the published networks (with random weights here: none can
be downloaded), its BatchNorm statistics moved by training-mode passes and
its BN affine terms drawn, so that a wrong mapping shows. The checkpoint
goes through `applications/convert_weights.py` (run in this process), and
the `.keras` it writes is loaded in a FRESH process after `import
keras_pyramid` alone; its probabilities on real CIFAR-10 test images (raw
uint8 in) must equal pytorchcv's (its own normalization in) within 1e-4.

Small models (one unit per stage, basic and bottleneck, both sources) run
on every backend. The published sizes (PyramidNet-110 alpha 48 for SVHN,
PyramidNet-272 alpha 200 for CIFAR-100 with 26M parameters, ImageNet
PyramidNet-101 alpha 360 with 42M) run under torch only, the backend that
builds them fastest (benchmarks/build_cost.py); elsewhere they are reported
as skipped, with that reason.
"""

import json
import os
import sys
import zipfile

import keras
import numpy as np
import pytest
from helpers.data import load_cifar10_npz
from helpers.paths import REPO
from helpers.processes import run_python
from helpers.programs import load_program
from helpers.reference_nets import (
    CIFAR_STATISTICS,
    CONVERSION_TOLERANCE,
    calibrate_head,
    pytorchcv_probabilities,
    randomize_batchnorm,
)

torch = pytest.importorskip("torch")
pyramidnet_cifar = pytest.importorskip("pytorchcv.models.pyramidnet_cifar")
pyramidnet_imagenet = pytest.importorskip("pytorchcv.models.pyramidnet")

BACKEND = keras.backend.backend()
IMAGES = 16  # real CIFAR-10 test images per case
IMAGENET_STATISTICS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def official_state_dict(reference):
    """The tests' own PyTorch reference (keyed by our layer names) saved the
    way the official train.py saves: `module.`-prefixed official keys inside
    a dict with `state_dict` (docs/architecture.md section 6)."""
    fixed = {"stem_conv": "conv1", "stem_bn": "bn1", "head_bn": "bn_final",
             "predictions": "fc"}
    renamed = {}
    for key, value in reference.state_dict().items():
        layer, tensor = key.removeprefix("layers.").rsplit(".", 1)
        if layer in fixed:
            official = fixed[layer]
        else:
            stage, unit, op = layer.split("_")
            official = f"layer{stage[5:]}.{int(unit[4:]) - 1}.{op}"
        renamed[f"module.{official}.{tensor}"] = value
    return {"epoch": 300, "arch": "pyramidnet", "state_dict": renamed, "best_prec1": 0.0}


def official_reference():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from torch_pyramidnet import TorchPyramidNet

    from keras_pyramid.models.pyramidnet import unit_widths

    return TorchPyramidNet(unit_widths(11, 24, True), True, classes=10)


def case_networks():
    """(case id, registered name, dataset, source, PyTorch network, statistics,
    image size, how the checkpoint is saved)."""
    cases = [
        ("basic-pytorchcv-pth", "pyramidnet8_a24", "cifar10", "pytorchcv",
         lambda: pyramidnet_cifar.get_pyramidnet_cifar(10, 8, 24, False), CIFAR_STATISTICS,
         32, "pth"),
        ("bottleneck-pytorchcv-zip", "pyramidnet11_a24", "cifar100", "pytorchcv",
         lambda: pyramidnet_cifar.get_pyramidnet_cifar(100, 11, 24, True), CIFAR_STATISTICS,
         32, "zip"),
        ("bottleneck-official-tar", "pyramidnet11_a24", "cifar10", "official",
         official_reference, None, 32, "official"),
        ("svhn-110-a48", "pyramidnet110_a48", "svhn", "pytorchcv",
             pyramidnet_cifar.pyramidnet110_a48_svhn, CIFAR_STATISTICS, 32, "zip"),
            ("cifar100-272-a200-26M", "pyramidnet272_a200", "cifar100", "pytorchcv",
             pyramidnet_cifar.pyramidnet272_a200_bn_cifar100, CIFAR_STATISTICS, 32, "pth"),
            ("imagenet-101-a360-42M", "pyramidnet101_a360_imagenet", "imagenet", "pytorchcv",
         pyramidnet_imagenet.pyramidnet101_a360, IMAGENET_STATISTICS, 224, "pth"),
    ]
    return cases


CASES = [case[0] for case in case_networks()]
LARGE = set(CASES[3:])  # built on one backend only: CI time


def runs_here(case):
    return case not in LARGE or BACKEND == "torch"


def save_checkpoint(net, how, path_stem):
    if how == "official":
        path = path_stem + ".pth.tar"
        torch.save(official_state_dict(net), path)
        return path
    path = path_stem + ".pth"
    torch.save(net.state_dict(), path)
    if how == "zip":  # as published: NAME.pth inside NAME.pth.zip
        with zipfile.ZipFile(path + ".zip", "w") as archive:
            archive.write(path, os.path.basename(path))
        os.remove(path)
        return path + ".zip"
    return path


LOAD_AND_PREDICT = """
import json, sys
import keras, numpy as np
import keras_pyramid  # the only import a user needs
cases = json.loads(sys.argv[1])
out = {}
for case in cases:
    model = keras.saving.load_model(case["path"])
    images = np.load(case["images"])
    out[case["id"]] = model.predict(images, verbose=0).tolist()
print(json.dumps({"backend": keras.backend.backend(), "probabilities": out}))
"""


@pytest.fixture(scope="module")
def conversions(tmp_path_factory):
    """Every case converted by the program; their probabilities from PyTorch
    (here) and from the `.keras` files (a fresh process)."""
    folder = tmp_path_factory.mktemp("conversions")
    images = load_cifar10_npz()[2][:IMAGES]
    program = load_program(os.path.join(REPO, "applications", "convert_weights.py"))
    expected, loads = {}, []
    for index, (case, name, dataset, source, make, statistics, size, how) in enumerate(
            case_networks()):
        if not runs_here(case):
            continue
        torch.manual_seed(index)
        net = randomize_batchnorm(make(), seed=index, size=size)
        case_images = images if size == 32 else np.repeat(np.repeat(images, 7, 1), 7, 2)
        np.save(folder / f"{case}.npy", case_images.astype("float32"))
        if statistics is None:  # the official code's CIFAR statistics
            from keras_pyramid.models.pyramidnet import VARIANTS

            statistics = tuple(tuple(v / 255 for v in s) for s in
                               (VARIANTS["cifar"].mean, VARIANTS["cifar"].std))
        calibrate_head(net, case_images, statistics)
        expected[case] = pytorchcv_probabilities(net, case_images, statistics)
        checkpoint = save_checkpoint(net, how, str(folder / case))
        output = str(folder / f"{case}.keras")
        assert program.main([checkpoint, "--source", source, "--model", name,
                             "--dataset", dataset, "--output", output]) == 0
        loads.append({"id": case, "path": output, "images": str(folder / f"{case}.npy")})
        del net
    code = LOAD_AND_PREDICT.replace("sys.argv[1]", repr(json.dumps(loads)))
    result = json.loads(run_python(code).strip().splitlines()[-1])
    assert result["backend"] == BACKEND
    return expected, {k: np.array(v) for k, v in result["probabilities"].items()}


@pytest.mark.parametrize("case", CASES)
def test_converted_model_gives_the_source_probabilities(conversions, case):
    if not runs_here(case):
        pytest.skip("a published-size model: converted under the torch backend only (CI time)")
    expected, actual = conversions
    difference = np.abs(actual[case] - expected[case]).max()
    print(f"{BACKEND} {case}: max probability difference {difference:.2e}")
    assert actual[case].shape == expected[case].shape
    # Neither uniform nor one-hot (see calibrate_head): every weight shows.
    assert 100 * CONVERSION_TOLERANCE < np.ptp(expected[case]) and expected[case].max() < 0.999
    assert difference < CONVERSION_TOLERANCE
