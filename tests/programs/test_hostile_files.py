"""Corrupt and hostile model files get one line naming the file, exit status 2, in
every program: evaluate.py (a `.keras` model, `--weights` of a registered model),
train.py `--weights`, and convert_weights.py `--output` refused before converting.

The files are made once per module from one tiny model: its `.keras` cut in half
and random bytes; a `.keras` whose architecture holds a Lambda layer, and one whose
config names `os.system` (Keras' safe mode refuses both; the test checks that the
command did not run); its `.weights.h5` cut in half, random, and given to another
architecture. The programs run in this process (`main(argv)`), as in
test_command_line_errors.py. The cases that load a file touch tensors and run on
every backend; convert_weights.py's stop at its arguments and run once.
"""

import json
import os
import zipfile

import keras
import pytest
from helpers.data import write_image_folder
from helpers.models import tiny_model
from helpers.paths import REPO
from helpers.programs import refusal

from keras_pyramid.models.init import built_shapes_first
from keras_pyramid.training import finetune
from keras_pyramid.weights.files import UnloadableFile

PROGRAMS = {
    "train": os.path.join(REPO, "applications", "train.py"),
    "evaluate": os.path.join(REPO, "applications", "evaluate.py"),
    "convert_weights": os.path.join(REPO, "applications", "convert_weights.py"),
    "export": os.path.join(REPO, "applications", "export.py"),
}
REGISTERED = ["--model", "pyramidnet8_a24"]  # the smallest registered model
CONVERT = ["FILE", "--source", "pytorchcv", *REGISTERED, "--dataset", "cifar10", "--output"]

# (program, arguments, text the one error line must contain); upper-case words
# are the fixture's files. train.py's `.weights.h5` path (finetune.load_backbone)
# is tested on the library below: the program builds its model with initializers
# first, 15 s under JAX.
CASES = [
    ("evaluate", ["TRUNCATED.keras", "--dataset", "FOLDER"],
     "TRUNCATED.keras cannot be loaded: it is not a .keras archive (a zip file)"),
    ("evaluate", ["RANDOM.keras", "--dataset", "FOLDER"],
     "RANDOM.keras cannot be loaded: it is not a .keras archive (a zip file)"),
    ("evaluate", ["LAMBDA.keras", "--dataset", "FOLDER"],
     "LAMBDA.keras cannot be loaded: its architecture is refused (ValueError: Requested the "
     "deserialization of a `Lambda` layer"),
    ("evaluate", ["INJECTED.keras", "--dataset", "FOLDER"],
     "INJECTED.keras cannot be loaded: its architecture is refused (TypeError: Could not "
     "locate class 'system')"),
    ("evaluate", [*REGISTERED, "--weights", "RANDOM.weights.h5", "--dataset", "FOLDER"],
     "--weights: RANDOM.weights.h5 cannot be loaded: it is not a readable HDF5 weights file"),
    ("evaluate", [*REGISTERED, "--weights", "TRUNCATED.weights.h5", "--dataset", "FOLDER"],
     "--weights: TRUNCATED.weights.h5 cannot be loaded: it is not a readable HDF5 weights "
     "file"),
    ("evaluate", [*REGISTERED, "--weights", "TINY.weights.h5", "--dataset", "FOLDER"],
     "TINY.weights.h5 cannot be loaded: it holds weights of another architecture: layer "
     "'stage1_unit1_conv1' is (3, 3, 16, 24) in the model, (3, 3, 16, 18) in the file"),
    ("evaluate", [*REGISTERED, "--weights", "INJECTED.keras", "--dataset", "FOLDER"],
     "--weights: INJECTED.keras cannot be loaded: its architecture is refused"),
    ("train", ["--weights", "TRUNCATED.keras"],
     "--weights: TRUNCATED.keras cannot be loaded: it is not a .keras archive"),
    ("train", ["--weights", "RANDOM.keras"],
     "--weights: RANDOM.keras cannot be loaded: it is not a .keras archive"),
    ("train", ["--weights", "INJECTED.keras"],
     "--weights: INJECTED.keras cannot be loaded: its architecture is refused"),
    ("train", ["--weights", "LAMBDA.keras"],
     "--weights: LAMBDA.keras cannot be loaded: its architecture is refused"),
    # Refused in one line, the config not dumped (export.py once said three).
    ("export", ["INJECTED.keras"],
     "INJECTED.keras cannot be loaded: its architecture is refused (TypeError: Could not "
     "locate class 'system')"),
    ("export", ["TRUNCATED.keras"],
     "TRUNCATED.keras cannot be loaded: it is not a .keras archive (a zip file)"),
    ("convert_weights", [*CONVERT, "DIR.keras"], "--output 'DIR.keras' is a directory"),
    ("convert_weights", [*CONVERT, "FILE/out.keras"],
     "--output 'FILE/out.keras' cannot be written: FILE is a file, not a folder"),
    ("convert_weights", [*CONVERT, "FILE/deeper/out.weights.h5"],
     "cannot be written: FILE is a file, not a folder"),
]
# The words the fixture's paths replace (each file is named in lower case).
NAMES = ("TRUNCATED.keras", "RANDOM.keras", "LAMBDA.keras", "INJECTED.keras",
         "TRUNCATED.weights.h5", "RANDOM.weights.h5", "TINY.weights.h5", "DIR.keras",
         "FOLDER", "FILE")


def _rewrite_config(source, destination, edit):
    """A copy of the `.keras` archive `source` whose config.json `edit` changed."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w") as copy:
        for member in original.namelist():
            content = original.read(member)
            if member == "config.json":
                content = json.dumps(edit(json.loads(content))).encode()
            copy.writestr(member, content)


def _write_halves_and_noise(path, root, stem):
    """STEM cut in half (TRUNCATED) and random bytes (RANDOM) beside `path`."""
    data = path.read_bytes()
    (root / f"truncated{stem}").write_bytes(data[:len(data) // 2])
    (root / f"random{stem}").write_bytes(os.urandom(4096))


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    # Alpha 6: not pyramidnet8_a24's widths. Shapes first: no initializer
    # compiles (seconds under JAX), and the values do not matter here.
    model = built_shapes_first(tiny_model, None, classes=10)
    model.save(root / "tiny.keras")
    model.save_weights(root / "tiny.weights.h5")
    _write_halves_and_noise(root / "tiny.keras", root, ".keras")
    _write_halves_and_noise(root / "tiny.weights.h5", root, ".weights.h5")
    image = keras.Input((16, 16, 3))
    keras.Model(image, keras.layers.Lambda(lambda x: x * 2.0)(image)).save(
        root / "lambda.keras")

    def inject(config):  # the first layer after the input becomes os.system(...)
        config["config"]["layers"][1].update(
            module="os", class_name="system", registered_name=None,
            config={"command": f"touch {root / 'pwned'}"})
        return config

    _rewrite_config(root / "tiny.keras", root / "injected.keras", inject)
    write_image_folder(root / "folder", range(5, 10), 2, odd=False)
    (root / "dir.keras").mkdir()  # a folder named like the file to write
    (root / "file").write_text("a file, not a folder nor a checkpoint")
    return root


def substitute(text, root):
    for name in NAMES:
        text = text.replace(name, str(root / name.lower()))
    return text


def runs_here(program):
    return (program not in ("convert_weights", "export")
            or keras.backend.backend() == "tensorflow")


@pytest.mark.parametrize("program, arguments, expected", CASES,
                         ids=[f"{p}:{' '.join(a)}" for p, a, _ in CASES])
def test_a_bad_file_gets_one_line_naming_it(places, program, arguments, expected, capsys,
                                            monkeypatch):
    if not runs_here(program):
        pytest.skip("argument checks before any tensor: runs once, under tensorflow")
    before = sorted(os.listdir(places))
    arguments = [substitute(a, places) for a in arguments]
    defaults = {
        "train": ["--dataset", str(places / "folder"), *REGISTERED, "--image-size", "32",
                  "--batch-size", "4", "--output-dir", str(places / "run")],
        "evaluate": ["--output-dir", str(places / "evaluation")],
        "export": ["--output", str(places / "exported")],
    }.get(program, [])
    monkeypatch.chdir(places)
    error = refusal(PROGRAMS[program], [*defaults, *arguments], capsys)
    assert substitute(expected, places) in error, error
    assert not os.path.exists(places / "pwned")  # the injected command never ran
    created = set(os.listdir(places)) - set(before) - {"run", "evaluation", "exported"}
    assert not created, created  # no temporary file left behind


@pytest.mark.parametrize("name, expected", [
    ("truncated.keras", "it is not a .keras archive"),
    ("lambda.keras", "its architecture is refused (ValueError: Requested the deserialization"),
    ("injected.keras", "its architecture is refused (TypeError: Could not locate class"),
    ("random.weights.h5", "it is not a readable HDF5 weights file: truncated or corrupt"),
    ("truncated.weights.h5", "it is not a readable HDF5 weights file: truncated or corrupt"),
])
def test_the_weights_layer_names_the_file(places, name, expected):
    """What the programs print comes from the weights layer: fine-tuning
    (`finetune.load_backbone`, `weights_statistics`) raises the one-line
    `UnloadableFile` naming the file, a ValueError the programs map to their
    flag."""
    model = built_shapes_first(tiny_model, None, classes=10)
    path = str(places / name)
    with pytest.raises(UnloadableFile) as caught:
        if name.endswith(".keras"):
            finetune.weights_statistics(None, path)
        else:
            finetune.load_backbone(model, None, path)
    assert str(caught.value).startswith(f"{path} cannot be loaded: {expected}")
    assert "\n" not in str(caught.value)
