"""Trained weights by name (`weights=TAG`): fetch, check, convert once, cache.

No test downloads. A pytorchcv PyramidNet-8 alpha 24 with random weights is
"published" as a `.pth.zip` in a local folder, and a `TrainedWeights` entry
for it (a `file://` URL and the `.pth`'s SHA-1) replaces the registry's
entries of that configuration: the same `keras.utils.get_file` code fetches
it as it would the release asset. The cache is a fresh folder per test.
Without a pinned `converted_sha256` every load converts the `.pth` again;
with one (`pinned`), the converted file serves offline and without torch.
Neither trusts the cache's own record.
"""

import dataclasses
import hashlib
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from helpers.data import SAMPLE_TEST_EXAMPLES
from helpers.paths import REPO
from helpers.processes import run_python
from helpers.programs import load_program
from helpers.reference_nets import CIFAR_STATISTICS, CONVERSION_TOLERANCE, pytorchcv_probabilities
from helpers.served_weights import SERVED_NAME as NAME
from helpers.served_weights import file_sha1 as sha1
from helpers.served_weights import with_entry

import keras_pyramid
from keras_pyramid.models import presets
from keras_pyramid.weights import cache as weights
from keras_pyramid.weights import convert
from keras_pyramid.weights.assign import assign_by_name, weighted_layers

torch = pytest.importorskip("torch")
pyramidnet_cifar = pytest.importorskip("pytorchcv.models.pyramidnet_cifar")

BACKEND = keras.backend.backend()
EVALUATED = 64  # test images evaluate.py sees


def predictions(model, images):
    return model.predict(images, verbose=0)


def converted_digest(paths):
    """The digest of the cached converted file's tensors."""
    return convert.tensors_digest(convert.read_tensors(paths["converted"]))


def pinned(served):
    """The served entry with its converted tensors' digest pinned (the
    published conversion's: computed from the net, as a maintainer would
    from the fetched file)."""
    state = {k: v.numpy() for k, v in served["net"].state_dict().items()}
    digest = convert.tensors_digest(convert.converted_tensors(state, "pytorchcv", depth=8))
    return dataclasses.replace(served["entry"], converted_sha256=digest)


def assert_source_probabilities(model, served, count=16):
    difference = np.abs(predictions(model, served["images"][:count])
                        - served["probabilities"][:count]).max()
    assert difference < CONVERSION_TOLERANCE, difference


def test_first_load_fetches_converts_and_gives_the_source_probabilities(served):
    model = keras_pyramid.build(NAME, weights="cifar10")
    assert_source_probabilities(model, served)
    paths = served["paths"]
    assert sha1(paths["checkpoint"]) == served["entry"].sha1
    record = json.load(open(paths["record"]))
    assert record["tensors_sha256"] == converted_digest(paths)  # the value to pin
    assert record["source_sha1"] == served["entry"].sha1
    assert sorted(os.listdir(served["cache"])) == sorted(
        os.path.basename(p) for p in paths.values())  # the zip is gone, nothing torn


SECOND_LOAD = """
import dataclasses, json, sys
class BlockTorch:  # `import torch` raises ImportError
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked in this process")
if BLOCK_TORCH:
    sys.meta_path.insert(0, BlockTorch())
import keras, numpy as np
import keras_pyramid
from keras_pyramid.models import presets
entry = presets.TrainedWeights(**ENTRY)
presets.ARCHITECTURES = tuple(
    dataclasses.replace(a, weights=(entry,)) if a.name() == "NAME" else a
    for a in presets.ARCHITECTURES)
plain = keras_pyramid.build("NAME", weights="cifar10")
sepdrop = keras_pyramid.build("NAME_sepdrop", weights="cifar10")
backbone = keras_pyramid.build("NAME", weights="cifar10", include_top=False, pooling="avg")
from keras_pyramid.weights.assign import weighted_layers
def weight_difference(model):
    reference = {layer.name: layer.get_weights() for layer in weighted_layers(plain)}
    return max(float(np.abs(a - b).max()) for layer in weighted_layers(model)
               for a, b in zip(layer.get_weights(), reference[layer.name]))
images = np.load("IMAGES")
print(json.dumps({
    "torch_imported": "torch" in sys.modules,
    "probabilities": plain.predict(images, verbose=0).tolist(),
    "sepdrop_weight_difference": weight_difference(sepdrop),
    "backbone_weight_difference": weight_difference(backbone),
    "backbone_has_top": "predictions" in [layer.name for layer in backbone.layers],
}))
"""


def test_a_pinned_second_load_is_offline_needs_no_torch_and_fits_every_variant(served,
                                                                             tmp_path):
    """In a fresh process, with the URL pointing nowhere and the converted
    tensors' digest pinned in the entry: the converted file in the cache
    serves the plain model, its `_sepdrop` variant and the backbone; torch
    is not imported (blocked, except under the torch backend) and the
    PyTorch file is gone, so nothing can convert again."""
    keras_pyramid.build(NAME, weights="cifar10")  # the first load fills the cache
    os.remove(served["paths"]["checkpoint"])
    converted_at = os.stat(served["paths"]["converted"]).st_mtime_ns
    offline = dataclasses.asdict(pinned(served))
    offline["url"] = f"file://{tmp_path}/nowhere.pth.zip"
    np.save(tmp_path / "images.npy", served["images"][:16])
    code = (SECOND_LOAD.replace("BLOCK_TORCH", str(BACKEND != "torch"))
            .replace("ENTRY", repr(offline)).replace("NAME", NAME)
            .replace("IMAGES", str(tmp_path / "images.npy")))
    keras_home = str(served["cache"]).removesuffix(os.sep + weights.CACHE_SUBDIR)
    report = json.loads(run_python(code, environment={"KERAS_HOME": keras_home})
                        .strip().splitlines()[-1])
    assert os.stat(served["paths"]["converted"]).st_mtime_ns == converted_at
    assert report["torch_imported"] == (BACKEND == "torch")
    difference = np.abs(np.array(report["probabilities"]) - served["probabilities"][:16]).max()
    assert difference < CONVERSION_TOLERANCE
    assert report["sepdrop_weight_difference"] == 0.0  # regularizers have no weights
    assert report["backbone_weight_difference"] == 0.0 and not report["backbone_has_top"]


def test_a_skipping_network_gets_the_same_weights(served):
    """skip_dropped nests each branch's layers in one layer: loaded by name."""
    plain = keras_pyramid.build(NAME, weights="cifar10")
    skipping = keras_pyramid.build(NAME + "_sepdrop", weights="cifar10", skip_dropped=True)
    layers = weighted_layers(skipping)
    assert len(layers) == len(weighted_layers(plain))
    for layer in layers:
        for a, b in zip(layer.get_weights(), plain.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_corrupt_cached_files_are_refused_and_replaced(served):
    keras_pyramid.build(NAME, weights="cifar10")
    paths = served["paths"]
    with open(paths["checkpoint"], "r+b") as f:  # truncated
        f.truncate(1000)
    with open(paths["converted"], "r+b") as f:  # one byte changed
        f.seek(os.path.getsize(paths["converted"]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    model = keras_pyramid.build(NAME, weights="cifar10")
    assert_source_probabilities(model, served)
    assert sha1(paths["checkpoint"]) == served["entry"].sha1  # fetched again
    record = json.load(open(paths["record"]))
    assert record["tensors_sha256"] == converted_digest(paths)


def random_tensors(paths):
    """Random values of the converted file's names and shapes: a network that
    was never trained, in the cached file's format."""
    rng = np.random.default_rng(0)
    return {name: [rng.normal(size=value.shape).astype(value.dtype) for value in values]
            for name, values in convert.read_tensors(paths["converted"]).items()}


def self_signed_random_file(paths):
    """The cache's converted file replaced by random weights (the test then
    signs it in the record): what anyone who can write the cache can do."""
    tensors = random_tensors(paths)
    convert.save_tensors(paths["converted"], tensors)
    return tensors


def corrupt_file_with_matching_record(paths):
    """One byte of the converted file changed (it no longer reads), and its
    record rewritten to match it."""
    with open(paths["converted"], "r+b") as f:
        f.seek(os.path.getsize(paths["converted"]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    return None


@pytest.mark.parametrize("pin", [False, True], ids=["unpinned", "pinned"])
@pytest.mark.parametrize("tamper", [self_signed_random_file, corrupt_file_with_matching_record])
def test_the_cache_trusts_the_presets_never_its_own_record(served, monkeypatch, pin, tamper):
    """A converted file that is not the published weights' conversion is
    refused whatever its record says, deleted, and derived again from the
    SHA-1-checked `.pth`: checked against the pinned digest, or (no pin)
    against a conversion of the `.pth` made at load."""
    paths = served["paths"]
    keras_pyramid.build(NAME, weights="cifar10")
    right = converted_digest(paths)
    if pin:
        monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(pinned(served)))
    tensors = tamper(paths)
    record = json.load(open(paths["record"]))
    record["sha256"] = hashlib.sha256(open(paths["converted"], "rb").read()).hexdigest()
    if tensors is not None:
        record["tensors_sha256"] = convert.tensors_digest(tensors)
    json.dump(record, open(paths["record"], "w"))
    model = keras_pyramid.build(NAME, weights="cifar10")
    assert_source_probabilities(model, served)
    assert converted_digest(paths) == right  # replaced by the published conversion
    assert json.load(open(paths["record"]))["tensors_sha256"] == right


def test_a_conversion_without_the_pinned_digest_is_refused(served, monkeypatch):
    entry = dataclasses.replace(served["entry"], converted_sha256="0" * 64)
    monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(entry))
    with pytest.raises(weights.ChecksumMismatch, match="not the pinned 0000"):
        keras_pyramid.build(NAME, weights="cifar10")
    assert not os.path.exists(served["paths"]["converted"])  # nothing served


def test_a_download_with_the_wrong_checksum_is_refused(served, tmp_path, monkeypatch):
    wrong = tmp_path / "wrong.pth.zip"
    with zipfile.ZipFile(wrong, "w") as archive:
        archive.writestr(served["entry"].file_name, b"not the published file")
    entry = dataclasses.replace(served["entry"], url=f"file://{wrong}")
    monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(entry))
    with pytest.raises(weights.ChecksumMismatch, match="does not have its SHA-1"):
        keras_pyramid.build(NAME, weights="cifar10")
    assert os.listdir(served["cache"]) == []  # nothing kept, nothing loaded


def test_without_network_or_cache_the_error_says_what_to_put_where(served, tmp_path,
                                                                  monkeypatch):
    entry = dataclasses.replace(served["entry"], url=f"file://{tmp_path}/missing.pth.zip")
    monkeypatch.setattr(presets, "ARCHITECTURES", with_entry(entry))
    with pytest.raises(weights.WeightsUnavailable) as caught:
        keras_pyramid.build(NAME, weights="cifar10")
    message = str(caught.value)
    assert "\n" not in message
    for part in (entry.file_name, entry.sha1, str(served["cache"]), entry.url):
        assert part in message


@pytest.mark.parametrize("arguments, message", [
    (dict(weights="cifar1000"), "`weights` must be None, a dataset tag"),
    (dict(weights="imagenet"), "No trained weights 'imagenet' for pyramidnet8_a24; it has "
                               "('cifar10',)"),
    (dict(weights="cifar10", classes=100), "`classes` must be 10 (or None)"),
    (dict(weights="cifar10", depth=20, alpha=48), "No trained weights for pyramidnet20_a48; "
                                                  "these configurations have some: "),
    (dict(weights="missing.keras"), "`weights` must be a file that exists"),
])
def test_bad_weights_arguments_are_value_errors(served, arguments, message):
    arguments = {"depth": 8, "alpha": 24, **arguments}
    with pytest.raises(ValueError) as caught:
        keras_pyramid.PyramidNet(arguments.pop("depth"), arguments.pop("alpha"), **arguments)
    assert message in str(caught.value)
    assert not os.path.exists(served["cache"])  # refused before anything was fetched


def test_the_registry_knows_which_models_have_weights():
    pretrained = keras_pyramid.list_models(pretrained=True)
    assert "pyramidnet272_a200_sepdrop" in pretrained and "pyramidnet20_a48" not in pretrained
    assert len([n for n in pretrained if "drop" not in n]) == 8  # configurations
    assert keras_pyramid.applications.trained_weights(
        "pyramidnet272_a200_shakedrop", "cifar100").sha1.startswith("98bc2f48")
    with pytest.raises(ValueError, match=r"it has \('imagenet',\)"):
        keras_pyramid.applications.trained_weights("pyramidnet101_a360_imagenet", "cifar10")


def test_the_weights_table_is_the_sources_model_store():
    """Every entry against pytorchcv's own model store (its
    model_metainfos.csv): file name, SHA-1, release, parameter count; and a
    pytorchcv constructor of that name exists."""
    import csv

    import pytorchcv.models.common.model_store as store
    import pytorchcv.models.pyramidnet as pyramidnet_imagenet

    rows = {row[0]: row for row in csv.reader(open(store.get_model_metainfos_file_path()))}
    entries = [e for a in presets.ARCHITECTURES for e in a.weights]
    assert len(entries) == 22
    for entry in entries:
        name, parameters, error, sha, release = rows[entry.source_name][:5]
        assert entry.file_name == f"{name}-{error}-{sha[:8]}.pth"
        assert entry.sha1 == sha and f"/{release}/" in entry.url
        assert entry.parameters == int(parameters)
        module = pyramidnet_imagenet if entry.dataset == "imagenet" else pyramidnet_cifar
        assert callable(getattr(module, entry.source_name))
        classes = 100 if entry.dataset == "cifar100" else 1000 if entry.dataset == "imagenet" \
            else 10
        assert entry.classes == classes


def test_a_checkpoint_of_another_configuration_names_the_first_misfit(published, tmp_path,
                                                                     capsys):
    torch.manual_seed(0)
    wider = pyramidnet_cifar.get_pyramidnet_cifar(10, 8, 30, False)
    model = keras_pyramid.build(NAME)
    tensors = convert.converted_tensors({k: v.numpy() for k, v in wider.state_dict().items()},
                                        "pytorchcv", depth=8, bottleneck=False)
    with pytest.raises(ValueError) as caught:  # shapes are checked where they are assigned
        assign_by_name(tensors, model)
    assert "layer 'stage1_unit1_conv1' is [(3, 3, 16, 24)]" in str(caught.value)
    assert "[(3, 3, 16, 26)] in the source" in str(caught.value)
    # Its own tensors plus a second unit's: one too many.
    extra = {k: v.numpy() for k, v in
             pyramidnet_cifar.get_pyramidnet_cifar(10, 8, 24, False).state_dict().items()}
    extra["features.stage1.unit2.bn.weight"] = np.ones(24, "float32")
    with pytest.raises(convert.CheckpointMismatch,
                       match=r"1 tensor a cifar PyramidNet-8 has no place for, e.g. "
                             "'features.stage1.unit2.bn.weight'"):
        convert.converted_tensors(extra, "pytorchcv", depth=8)
    del extra["features.stage1.unit2.bn.weight"], extra["features.stage1.unit1.bn.bias"]
    with pytest.raises(convert.CheckpointMismatch,
                       match="no 'features.stage1.unit1.bn.bias' for layer 'stage1_unit1_bn3'"):
        convert.converted_tensors(extra, "pytorchcv", depth=8)
    checkpoint = tmp_path / "wider.pth"
    torch.save(wider.state_dict(), checkpoint)
    with pytest.raises(SystemExit) as exit_status:
        load_program(os.path.join(REPO, "applications", "convert_weights.py")).main([
            str(checkpoint), "--source", "pytorchcv", "--model", NAME, "--dataset", "cifar10",
            "--output", str(tmp_path / "out.keras")])
    assert exit_status.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "does not fit" in error and "Traceback" not in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out.keras")


def test_a_keras_file_initialises_another_regularization_and_a_new_head(served, tmp_path):
    """Fine-tuning: a converted `.keras` file gives its weights and its
    preprocessing to a `_sepdrop` model, with a 5-class head."""
    source_path = str(tmp_path / "converted.keras")
    keras_pyramid.build(NAME, weights="cifar10").save(source_path)
    tuned = keras_pyramid.build(NAME + "_sepdrop", weights=source_path, include_top=False,
                                pooling="avg")
    plain = keras_pyramid.build(NAME, weights="cifar10", include_top=False, pooling="avg")
    np.testing.assert_allclose(
        predictions(keras_pyramid.build(NAME + "_sepdrop", weights=source_path,
                                        drop_rate=0.0), served["images"][:8]),
        served["probabilities"][:8], atol=CONVERSION_TOLERANCE)  # rate 0: the plain network
    for layer in weighted_layers(tuned):
        for a, b in zip(layer.get_weights(), plain.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError,
                       match=r"another architecture: layer 'predictions' is \[\(40, 5\)"):
        keras_pyramid.build(NAME, weights=source_path, classes=5)


def test_evaluate_measures_a_preset_and_records_the_claim(served, cifar10_sample_tfds_dir,
                                                         tmp_path):
    assert EVALUATED <= SAMPLE_TEST_EXAMPLES
    output = tmp_path / "evaluation"
    status = load_program(os.path.join(REPO, "applications", "evaluate.py")).main([
        "--model", NAME, "--weights", "cifar10", "--dataset", "cifar10",
        "--data-dir", cifar10_sample_tfds_dir, "--max-examples", str(EVALUATED),
        "--batch-size", "32", "--output-dir", str(output)])
    assert status == 0
    report = json.load(open(output / "evaluation-test.json"))
    import tensorflow_datasets as tfds

    images, labels = next(iter(tfds.as_numpy(tfds.builder(
        "cifar10", data_dir=cifar10_sample_tfds_dir).as_dataset(
        split=f"test[:{EVALUATED}]", batch_size=EVALUATED, as_supervised=True,
        shuffle_files=False))))
    source = pytorchcv_probabilities(served["net"], images, CIFAR_STATISTICS)
    expected = float(np.mean(source.argmax(-1) != labels))
    assert report["examples"] == EVALUATED and report["error"] == pytest.approx(expected)
    assert report["source_claim"]["file"] == served["entry"].file_name
