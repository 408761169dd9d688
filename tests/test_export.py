"""Serving exports: parity in a TensorFlow-only process, signature, class names,
determinism, ONNX, any input size, and every bad input. Runs under each
backend: the model is trained (a few steps) and exported on the backend under
test."""

import errno
import json
import os
import re
import shutil
import sys

import keras
import numpy as np
import pytest
from helpers.models import tiny_model
from helpers.paths import REPO, SHARED_DATA
from helpers.processes import run_command, run_python
from helpers.programs import load_program

import keras_pyramid
from keras_pyramid import export as exporting
from keras_pyramid import export_parity

IMAGE_SHAPE = (32, 32, 3)
CLASSES = 10
# CIFAR-10's names, one with a space and a non-ASCII letter: the names must
# travel as UTF-8 through the graph constant, the asset file and the JSON.
NAMES = ("airplane", "automobile", "bird", "cat", "cerf élaphe", "dog", "frog", "horse", "ship",
         "truck")
# TensorFlow op types that draw random numbers (stateful and stateless).
RANDOM_TF_OP = re.compile(r"Random|Rng|Multinomial|Shuffle|Dropout")
# StableHLO ops a JAX random draw lowers to: XLA's generators, or threefry's
# bit arithmetic (xor and shifts appear nowhere else in a PyramidNet).
RANDOM_STABLEHLO_OP = re.compile(r"^(rng|rng_bit_generator|xor|shift_\w+)$")

# Runs in a fresh process where Keras and this package cannot be imported
# (TensorFlow itself imports parts of Keras when it can): the SavedModel must
# stand alone, as on a serving machine.
TENSORFLOW_ONLY_CHECK = """
import json, sys

HIDDEN = ("keras", "keras_pyramid", "tf_keras")

class Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()

sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
import numpy as np
import tensorflow as tf

def plain(value):
    value = value.numpy()
    return np.array([s.decode("utf-8") for s in value]) if value.dtype == object else value

folder, images_path, outputs_path = sys.argv[1:]
images = np.load(images_path)["images"]
loaded = tf.saved_model.load(folder)
signature = loaded.signatures["serving_default"]
outputs = signature(image=tf.constant(images))
again = signature(image=tf.constant(images))
np.savez(outputs_path, **{name: plain(value) for name, value in outputs.items()})
names_file = loaded.class_names_file.asset_path.numpy().decode()
with open(names_file, encoding="utf-8") as f:
    names_text = f.read()
print(json.dumps({
    "keras_modules": sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN),
    "identical_twice": all(np.array_equal(outputs[k].numpy(), again[k].numpy()) for k in outputs),
    "names_file": names_file,
    "names_text": names_text,
}))
"""


def cifar10_test_images(count):
    """The first `count` real CIFAR-10 test images, uint8 NHWC."""
    with np.load(os.path.join(SHARED_DATA, "cifar10_test.npz")) as test:
        return np.ascontiguousarray(test["x_test"][:count], dtype=np.uint8)


def keras_inference(model, images):
    """The Keras model's own inference outputs, computed without the export
    wrapper: logits from the classifier's weights in float64."""
    features_model = keras.Model(model.inputs, model.get_layer("predictions").input)
    features = keras.ops.convert_to_numpy(features_model(images.astype("float32"), training=False))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("predictions").weights)
    logits = features.astype("float64") @ kernel + bias
    probabilities = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    return logits, probabilities


def trained_tiny_classifier(regularization="sepdrop"):
    """Depth 8 at 32x32, trained 3 steps so that the BatchNorm moving
    statistics (what inference uses) are no longer their initial values.
    SepDrop gets two rates: the served graph must scale each channel group
    by its own keep probability."""
    rates = {"new_drop_rate": 0.2} if regularization == "sepdrop" else {}
    # The initial weights follow Keras' global seed, which the tests run
    # before (a training run in-process) leave wherever they left it; seed 3
    # predicts 3 to 5 classes on the 64 test images on every backend.
    keras.utils.set_random_seed(3)
    model = tiny_model(regularization, input_shape=IMAGE_SHAPE, classes=CLASSES, **rates)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, *IMAGE_SHAPE)).astype("float32")
    labels = rng.integers(0, CLASSES, 24)
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained tiny SepDrop classifier and its export (SavedModel + ONNX,
    with NAMES)."""
    model = trained_tiny_classifier()
    directory = tmp_path_factory.mktemp("exports") / "tiny"
    folder = exporting.export(model, directory, 1, formats=("saved_model", "onnx"),
                              class_names=NAMES)
    return model, folder


def saved_model_op_types(folder):
    """Every op type in the SavedModel's graph and functions, plus, for a JAX
    export, the StableHLO ops inside its XlaCallModule nodes."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(folder, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    tf_ops, stablehlo_ops = set(), set()
    for graph in saved.meta_graphs:
        nodes = list(graph.graph_def.node)
        for function in graph.graph_def.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            tf_ops.add(node.op)
            if node.op == "XlaCallModule":
                stablehlo_ops |= _stablehlo_ops(node.attr["module"].s)
    return tf_ops, stablehlo_ops


def _stablehlo_ops(module_bytes):
    from jaxlib.mlir import ir
    from jaxlib.mlir.dialects import stablehlo

    context = ir.Context()
    stablehlo.register_dialect(context)
    text = str(stablehlo.deserialize_portable_artifact(context, module_bytes))
    return set(re.findall(r"stablehlo\.([a-z_]+)", text)) | {
        f"custom_call:{target}" for target in re.findall(r"call_target_name = \"(\w+)\"", text)
    }


def random_ops(folder):
    tf_ops, stablehlo_ops = saved_model_op_types(folder)
    return sorted({op for op in tf_ops if RANDOM_TF_OP.search(op)}
                  | {op for op in stablehlo_ops
                     if RANDOM_STABLEHLO_OP.match(op) or "threefry" in op})


def test_a_tensorflow_only_process_reproduces_the_keras_model(exported, tmp_path):
    model, folder = exported
    images = cifar10_test_images(64)
    np.savez(tmp_path / "images.npz", images=images)
    script = tmp_path / "serve.py"
    script.write_text(TENSORFLOW_ONLY_CHECK)
    finished = run_command(
        [sys.executable, str(script), folder, str(tmp_path / "images.npz"),
         str(tmp_path / "outputs.npz")], timeout=300,
        # Nothing of this repository is importable there.
        environment={"PYTHONPATH": ""}, repository=False, cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["keras_modules"] == []
    assert report["identical_twice"]
    assert report["names_file"] == os.path.join(folder, "assets", "class_names.txt")
    assert report["names_text"] == "".join(f"{name}\n" for name in NAMES)

    served = np.load(tmp_path / "outputs.npz")
    logits, probabilities = keras_inference(model, images)
    assert served["logits"].dtype == np.float32 and served["class_id"].dtype == np.int32
    np.testing.assert_allclose(served["logits"], logits, rtol=0, atol=1e-4)
    np.testing.assert_allclose(served["probabilities"], probabilities, rtol=0, atol=1e-5)
    top_two = np.sort(logits, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-3  # ties may break either way
    assert clear.sum() >= 60
    np.testing.assert_array_equal(served["class_id"][clear], logits.argmax(axis=1)[clear])
    # The served names are the names of the served ids, for several classes.
    assert len(set(served["class_id"].tolist())) >= 3
    np.testing.assert_array_equal(served["class_name"], np.array(NAMES)[served["class_id"]])


def test_signature_names_dtypes_and_dynamic_batch(exported):
    import tensorflow as tf

    _, folder = exported
    loaded = tf.saved_model.load(folder)
    assert sorted(loaded.signatures) == ["serve_unchecked", "serving_default"]
    signature = loaded.signatures["serving_default"]
    (_, inputs) = signature.structured_input_signature
    assert list(inputs) == ["image"]
    assert inputs["image"].dtype == tf.uint8
    assert inputs["image"].shape.as_list() == [None, *IMAGE_SHAPE]
    outputs = signature.structured_outputs
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in outputs.items()} == {
        "logits": (tf.float32, [None, CLASSES]),
        "probabilities": (tf.float32, [None, CLASSES]),
        "class_id": (tf.int32, [None]),
        "class_name": (tf.string, [None]),
    }
    for batch in (1, 5):  # any batch size
        result = signature(image=tf.zeros((batch, *IMAGE_SHAPE), tf.uint8))
        assert result["class_id"].shape == (batch,)


def test_saved_model_cli_shows_the_serving_signature(exported):
    _, folder = exported
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable)) or shutil.which(
        "saved_model_cli")
    assert cli, "saved_model_cli (installed with tensorflow) not found"
    finished = run_command([cli, "show", "--dir", folder, "--tag_set", "serve",
                            "--signature_def", "serving_default"], timeout=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    shown = finished.stdout
    assert re.search(r"inputs\['image'\] tensor_info:\s+dtype: DT_UINT8\s+"
                     r"shape: \(-1, 32, 32, 3\)", shown), shown
    for name, dtype, shape in (("logits", "DT_FLOAT", r"\(-1, 10\)"),
                               ("probabilities", "DT_FLOAT", r"\(-1, 10\)"),
                               ("class_id", "DT_INT32", r"\(-1\)"),
                               ("class_name", "DT_STRING", r"\(-1\)")):
        assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: {dtype}\s+"
                         rf"shape: {shape}", shown), shown


def test_each_weight_is_stored_once(exported):
    """keras-team/keras#23553 writes every weight twice on TensorFlow; the
    export works around it (the torch path exports under TensorFlow too)."""
    model, folder = exported
    stored = os.path.getsize(os.path.join(folder, "variables", "variables.data-00000-of-00001"))
    weights = 4 * model.count_params()  # float32, BN statistics included
    assert weights <= stored < 1.1 * weights + 4096


def test_the_exported_graph_has_no_random_op(exported):
    _, folder = exported
    tf_ops, _ = saved_model_op_types(folder)
    assert "Conv2D" in tf_ops or "XlaCallModule" in tf_ops  # the detector sees the network
    assert random_ops(folder) == []


TRAINING_MODE_EXPORT = """
import sys, keras
sys.path.insert(0, TESTS)
from helpers.models import tiny_model
model = tiny_model("sepdrop", input_shape=(32, 32, 3), classes=10)
archive = keras.export.ExportArchive()
archive.track(model)
kwargs = {"is_static": False} if keras.backend.backend() == "jax" else {}
signature = [keras.InputSpec(shape=(None, 32, 32, 3), dtype="float32")]
archive.add_endpoint("serve", lambda x: model(x, training=True), input_signature=signature,
                     **kwargs)
archive.write_out(sys.argv[1], verbose=False)
"""


def test_the_random_op_detector_finds_the_training_graph_randomness(tmp_path):
    """Control for the test above: the same layers exported in TRAINING mode
    must show their random draws to the same detector. (A torch model's
    graph is written by TensorFlow, so the torch run checks that.)"""
    backend = keras.backend.backend()
    folder = str(tmp_path / "training")
    code = TRAINING_MODE_EXPORT.replace("sys.argv[1]", repr(folder)).replace(
        "TESTS", repr(os.path.join(REPO, "tests")))
    run_python(code, backend="tensorflow" if backend == "torch" else backend)
    assert random_ops(folder) != []


def test_onnx_matches_the_keras_model_under_onnxruntime(exported):
    import onnxruntime

    model, folder = exported
    session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert sorted(o.name for o in session.get_outputs()) == sorted(exporting.OUTPUT_NAMES)
    assert json.loads(session.get_modelmeta().custom_metadata_map["class_names"]) == list(NAMES)
    images = cifar10_test_images(64)
    onnx_logits, onnx_probabilities = session.run(["logits", "probabilities"], {"image": images})
    logits, probabilities = keras_inference(model, images)
    np.testing.assert_allclose(onnx_logits, logits, rtol=0, atol=1e-4)
    np.testing.assert_allclose(onnx_probabilities, probabilities, rtol=0, atol=1e-5)


def test_serving_rejects_images_of_the_wrong_shape_or_dtype(exported):
    import tensorflow as tf

    _, folder = exported
    signature = tf.saved_model.load(folder).signatures["serving_default"]
    refused = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(refused, match="uint8") as wrong_dtype:
        signature(image=tf.zeros((2, *IMAGE_SHAPE), tf.float32))
    assert "float" in str(wrong_dtype.value)
    with pytest.raises(refused, match=r"\[2,32,32,1\].*expected shape \[\?,32,32,3\]"):
        signature(image=tf.zeros((2, 32, 32, 1), tf.uint8))
    with pytest.raises(refused, match=r"\[2,16,16,3\].*expected shape \[\?,32,32,3\]"):
        signature(image=tf.zeros((2, 16, 16, 3), tf.uint8))


def test_an_existing_version_is_refused_then_replaced_whole(exported, tmp_path):
    model, _ = exported
    directory = tmp_path / "served"
    first = exporting.export(model, directory, 3)
    marker = os.path.join(first, "old-version-marker")
    open(marker, "w").close()
    # The library names its argument; export.py maps it to --overwrite.
    with pytest.raises(FileExistsError, match="pass overwrite=True$"):
        exporting.export(model, directory, 3)
    assert os.path.exists(marker)

    def fail_halfway(serving, folder, formats, verbose, class_names):
        os.makedirs(os.path.join(folder, "variables"))
        raise RuntimeError("disk full")

    original = exporting._write
    exporting._write = fail_halfway
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            exporting.export(model, directory, 3, overwrite=True)
    finally:
        exporting._write = original
    assert os.path.exists(marker), "a failed overwrite touched the old version"
    assert sorted(os.listdir(directory)) == ["3"], "a staging folder was left behind"

    exporting.export(model, directory, 3, overwrite=True)
    assert not os.path.exists(marker)
    assert os.path.exists(os.path.join(first, "saved_model.pb"))
    assert sorted(os.listdir(directory)) == ["3"]


@pytest.mark.parametrize("version", [0, -1, 1.5, True, "1"])
def test_bad_versions_are_refused(exported, tmp_path, version):
    with pytest.raises(ValueError, match=re.escape(f"version={version!r}")):
        exporting.export(exported[0], tmp_path, version)


def test_a_model_without_classifier_is_refused(tmp_path):
    features = tiny_model(include_top=False, pooling="avg")
    with pytest.raises(exporting.ExportError, match="include_top"):
        exporting.export(features, tmp_path / "x", 1)
    assert not os.path.exists(tmp_path / "x")


def test_a_model_of_unfixed_input_size_is_refused(tmp_path):
    # A PyramidNet with input_shape=(None, None, 3) builds in 20 s on JAX;
    # the refusal only reads the input shape and the classifier.
    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(pooled))
    with pytest.raises(exporting.ExportError, match=r"must be fixed.*\(None, None, 3\)"):
        exporting.export(model, tmp_path / "x", 1)
    assert not os.path.exists(tmp_path / "x")


def test_a_free_size_model_with_its_own_head_name_is_served_at_the_size_given(tmp_path):
    """A user's model: any input size, its classifier a Dense named "logits"
    with a separate softmax on top. Found by its role and served at the size
    asked (it was refused: "a Dense layer named 'predictions'", then the size)."""
    import tensorflow as tf

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    with pytest.raises(exporting.ExportError, match=r"must be fixed.*\(None, None, 3\)"):
        exporting.export(model, tmp_path / "x", 1)
    folder = exporting.export(model, tmp_path / "free", 1, image_size=(20, 24))
    signature = tf.saved_model.load(folder).signatures["serving_default"]
    assert signature.structured_input_signature[1]["image"].shape.as_list() == [None, 20, 24, 3]
    images = np.random.default_rng(0).integers(0, 256, (4, 20, 24, 3), dtype=np.uint8)
    served = signature(image=tf.constant(images))
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=0, atol=1e-5)


def run_export_cli(*arguments):
    return run_command(
        [sys.executable, os.path.join(REPO, "applications", "export.py"), *arguments],
        timeout=600)


def test_the_cli_exports_a_run_directory_and_checks_it(exported, tmp_path):
    model, _ = exported
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    with open(run_dir / "data.json", "w", encoding="utf-8") as f:
        json.dump({"dataset": "cifar10", "class_names": list(NAMES), "image_size": [32, 32]}, f)
    finished = run_export_cli(str(run_dir), "--output", str(tmp_path / "out"),
                              "--version", "2", "--check-images", "4")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert os.path.exists(tmp_path / "out" / "2" / "saved_model.pb")
    assert f"class names from {run_dir / 'data.json'}" in finished.stdout.splitlines()[0]
    with open(tmp_path / "out" / "2" / "assets" / "class_names.txt", encoding="utf-8") as f:
        assert f.read().splitlines() == list(NAMES)
    report = json.loads(finished.stdout[finished.stdout.index("{"):])
    assert report["saved_model"]["logits"] < 1e-4
    assert report["saved_model"]["class_id"] == 0.0
    assert report["saved_model"]["class_name"] == 0.0

    again = run_export_cli(str(run_dir), "--output", str(tmp_path / "out"), "--version", "2")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def test_the_cli_refuses_class_names_it_cannot_use(exported, tmp_path, capsys):
    """One line naming the flag and the value, exit 2, nothing written; in
    this process (`main(argv)`: a traceback would fail the test)."""
    model, _ = exported
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "data.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    (tmp_path / "three.txt").write_text("cat\ndog\nbird\n")
    program = load_program(os.path.join(REPO, "applications", "export.py"))
    for arguments, expected in [
        (["--class-names", str(tmp_path / "three.txt")],
         f"--class-names {tmp_path / 'three.txt'}: 3 class names for a model with 10 classes"),
        (["--class-names", str(tmp_path / "none.txt")],
         f"--class-names {tmp_path / 'none.txt'}: cannot read class names from it"),
        ([], f"{run_dir / 'data.json'} (override it with --class-names FILE): 2 class names "
             f"for a model with 10 classes"),
    ]:
        status = program.main([str(run_dir), "--output", str(tmp_path / "out"), *arguments])
        stderr = capsys.readouterr().err
        assert status == 2, stderr
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
        assert expected in stderr, stderr
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the file is refused before any tensor: runs once, under tensorflow")
def test_the_cli_names_a_missing_or_broken_model_file(tmp_path):
    missing = run_export_cli(str(tmp_path / "nothing.keras"), "--output", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert "no model file" in missing.stderr and "nothing.keras" in missing.stderr

    broken = tmp_path / "broken.keras"
    broken.write_text("not a zip archive")
    finished = run_export_cli(str(broken), "--output", str(tmp_path / "o"))
    assert finished.returncode == 2
    assert "broken.keras cannot be loaded: it is not a .keras archive" in finished.stderr
    assert sum("error:" in line for line in finished.stderr.splitlines()) == 1
    assert "Traceback" not in finished.stderr
    assert not os.path.exists(tmp_path / "o")


def test_a_channels_first_model_is_served_channels_last_images(tmp_path):
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    model = tiny_model(None, input_shape=(3, 16, 16), classes=CLASSES)
    folder = exporting.export(model, tmp_path / "nchw", 1)
    images = cifar10_test_images(8)[:, 8:24, 8:24, :]  # real images, 16x16 crops, NHWC
    differences = export_parity.compare(model, folder, images)["saved_model"]
    assert differences["logits"] < 1e-4 and differences["class_id"] == 0.0
    # compare() feeds the Keras model NCHW itself; check that path against a
    # direct call too, so a wrong transpose cannot cancel out.
    direct = keras.ops.convert_to_numpy(model(images.transpose(0, 3, 1, 2).astype("float32")))
    served = export_parity.reference_outputs(model, images)["probabilities"]
    np.testing.assert_allclose(served, direct, rtol=0, atol=1e-6)


def test_a_non_square_model_with_its_own_classes_is_served_with_its_names(tmp_path):
    import tensorflow as tf

    model = keras_pyramid.PyramidNet(8, 6, input_shape=(48, 64, 3), classes=5, seed=0)
    names = ["ant", "bee", "cat", "dog", "eel"]
    folder = exporting.export(model, tmp_path / "wide", 1, class_names=names)
    signature = tf.saved_model.load(folder).signatures["serving_default"]
    assert signature.structured_input_signature[1]["image"].shape.as_list() == [None, 48, 64, 3]
    assert signature.structured_outputs["logits"].shape.as_list() == [None, 5]
    with open(os.path.join(folder, "assets", "class_names.txt"), encoding="utf-8") as f:
        assert f.read() == "ant\nbee\ncat\ndog\neel\n"
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    served = signature(image=tf.constant(images))
    logits, probabilities = keras_inference(model, images)
    np.testing.assert_allclose(served["logits"].numpy(), logits, rtol=0, atol=1e-4)
    np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, rtol=0, atol=1e-5)
    assert [name.decode() for name in served["class_name"].numpy()] == [
        names[i] for i in served["class_id"].numpy()]
    assert export_parity.compare(model, folder, images, names)["saved_model"]["class_name"] == 0.0
    rotated = names[1:] + names[:1]  # every id gets a wrong name: compare must see it
    assert export_parity.compare(model, folder, images, rotated)["saved_model"]["class_name"] == 1.0


@pytest.mark.parametrize("class_names", [
    NAMES[:2], "".join(name[0] for name in NAMES), (*NAMES[:-1], 5), (*NAMES[:-1], "truck\nlorry"),
    CLASSES,
], ids=["too-few", "a-str", "not-str", "line-break", "not-a-sequence"])
def test_class_names_of_the_wrong_count_or_type_are_refused(exported, tmp_path, class_names):
    with pytest.raises(ValueError, match=re.escape(f"class_names={class_names!r}")) as refused:
        exporting.export(exported[0], tmp_path / "x", 1, class_names=class_names)
    assert "\n" not in str(refused.value)
    assert not os.path.exists(tmp_path / "x")


def fake_write(serving, folder, formats, verbose, class_names):
    """A stand-in for `_write` that writes only a marker: what is tested
    around it (staging, cleanup, replacement) costs no real export."""
    os.makedirs(folder)
    open(os.path.join(folder, "saved_model.pb"), "w").close()


def dead_pid():
    """A PID above the kernel's limit: never a live process."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + 1


def test_stale_staging_folders_of_dead_processes_are_removed(exported, tmp_path, monkeypatch):
    """An export killed mid-write left `.tmp-VERSION-PID` forever: the next
    export removes a dead process's staging folder, puts back a version a
    killed overwrite had renamed aside, and leaves a live process's alone."""
    monkeypatch.setattr(exporting, "_write", fake_write)
    directory = tmp_path / "served"
    dead, live = dead_pid(), os.getppid()
    for name in (f".tmp-1-{dead}", f".tmp-2-{live}", f".tmp-1-{dead}-old", f".tmp-3-{dead}-old",
                 ".tmp-notes", f"tmp-1-{dead}", "1"):
        (directory / name).mkdir(parents=True)
        (directory / name / "saved_model.pb").write_text(name)
    exporting.export(exported[0], directory, 4)
    assert sorted(os.listdir(directory)) == sorted(
        [f".tmp-2-{live}", ".tmp-notes", f"tmp-1-{dead}", "1", "3", "4"])
    # Version 3 is the one a killed overwrite took aside: back in its place.
    assert (directory / "3" / "saved_model.pb").read_text() == f".tmp-3-{dead}-old"
    assert (directory / "1" / "saved_model.pb").read_text() == "1"


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("the TensorFlow export subprocess failed:\n... write failed: No space left on "
                 "device"),  # TensorFlow's writer and the export subprocess say it in words
], ids=["errno", "message"])
def test_a_full_disk_is_one_error_and_replaces_nothing(exported, tmp_path, monkeypatch, failure):
    model, _ = exported
    directory = tmp_path / "served"
    monkeypatch.setattr(exporting, "_write", fake_write)
    exporting.export(model, directory, 1)

    def fill_the_disk(serving, folder, formats, verbose, class_names):
        os.makedirs(os.path.join(folder, "variables"))
        raise failure

    monkeypatch.setattr(exporting, "_write", fill_the_disk)
    with pytest.raises(exporting.ExportError, match="no space left on the device of "
                       f"{re.escape(str(directory))} while writing version 1: nothing was "
                       "replaced") as refused:
        exporting.export(model, directory, 1, overwrite=True)
    assert "\n" not in str(refused.value)
    assert sorted(os.listdir(directory)) == ["1"], "the staging folder was left behind"
    assert os.listdir(directory / "1") == ["saved_model.pb"]


def test_a_full_disk_is_one_line_from_the_program(exported, tmp_path, monkeypatch, capsys):
    model, _ = exported
    model.save(tmp_path / "model.keras")

    def fill_the_disk(serving, folder, formats, verbose, class_names):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exporting, "_write", fill_the_disk)
    program = load_program(os.path.join(REPO, "applications", "export.py"))
    status = program.main([str(tmp_path / "model.keras"), "--output", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert stderr.startswith("error: no space left on ") and stderr.count("\n") == 1, stderr
    assert os.listdir(tmp_path / "out") == []


MOUNT_FAILED = 77  # the exit status the shell gives when it cannot mount


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="one real full disk is enough: runs once, under tensorflow")
@pytest.mark.skipif(shutil.which("unshare") is None,
                    reason="unshare (util-linux) is not installed: no private tmpfs to fill")
def test_a_real_full_disk_is_one_line(exported, tmp_path):
    """export.py into a 200 KB tmpfs mounted in a private user and mount
    namespace (`unshare -r -m`): TensorFlow's own writer hits ENOSPC."""
    exported[0].save(tmp_path / "model.keras")
    (tmp_path / "disk").mkdir()
    script = (f"mount -t tmpfs -o size=200k tmpfs disk || exit {MOUNT_FAILED}; "
              f"{sys.executable} {os.path.join(REPO, 'applications', 'export.py')} model.keras "
              f"--output disk/x --check-images 0; status=$?; ls -A disk/x; exit $status")
    finished = run_command(["unshare", "-r", "-m", "sh", "-c", script], timeout=300,
                           cwd=tmp_path)
    if finished.returncode == MOUNT_FAILED or "unshare:" in finished.stderr:
        pytest.skip(f"unshare -r -m cannot mount a tmpfs here: {finished.stderr.strip()[-200:]}")
    assert finished.returncode == 2, finished.stderr[-3000:]
    errors = [line for line in finished.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no space left on" in errors[0], finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr
    assert finished.stdout.strip() == "", "the staging folder was left on the full disk"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="pure TensorFlow (tf.image, no Keras tensor): runs once, under "
                           "tensorflow")
def test_the_client_resizing_in_the_docs_is_the_training_one(tmp_path):
    """docs/serving.md's `client_image` gives what evaluation fed the model,
    to uint8 rounding, for both resizing regimes and an image already of size."""
    import tensorflow as tf
    from PIL import Image

    from keras_pyramid.data.augment import Preprocessing

    with open(os.path.join(REPO, "docs", "serving.md"), encoding="utf-8") as f:
        code = re.search(r"```python\n(import json\n.*?)```", f.read(), re.S).group(1)
    image = Image.fromarray(cifar10_test_images(1)[0]).resize((57, 41))
    image.save(tmp_path / "image.png")
    for augment, size in (("cifar", (32, 32)), ("imagenet", (48, 40)), ("none", (41, 57))):
        (tmp_path / "data.json").write_text(json.dumps({"image_size": size,
                                                        "augment": augment}))
        namespace = {}
        exec(code.replace("runs/photos/data.json", str(tmp_path / "data.json")), namespace)
        served = namespace["client_image"](str(tmp_path / "image.png")).numpy()
        trained = Preprocessing(size, augment).evaluation(tf.constant(np.asarray(image)))
        assert served.dtype == np.uint8 and served.shape == (*size, 3)
        assert np.abs(served - trained.numpy()).max() <= 0.5
