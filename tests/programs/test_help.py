"""`--help` answers at once: no program imports Keras, TensorFlow, JAX or
torch to parse its flags (importing `keras_pyramid` does, to register its
layers), and no help line says "(default: None)". The choices the programs
write out (applications/arguments.py) are the library's own.

Pure Python: runs once, under tensorflow.
"""

import json
import os
import sys

import keras
import pytest
from helpers.paths import REPO
from helpers.processes import run_python

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="pure Python: runs once, under tensorflow")

PROGRAMS = [os.path.join(REPO, "applications", name) for name in
            ("train.py", "evaluate.py", "export.py", "convert_weights.py", "compare.py",
             "demo.py")]
PROGRAMS.append(os.path.join(REPO, "tuning", "search.py"))

ALL_HELP = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, {applications!r})
texts = {{}}
for path in {programs!r}:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit:
            assert exit.code == 0, (path, exit.code)
    texts[path] = out.getvalue()
heavy = [name for name in ("keras", "tensorflow", "jax", "torch") if name in sys.modules]
print(json.dumps({{"heavy": heavy, "texts": texts}}))
"""


def test_help_imports_no_framework_and_never_says_default_none():
    code = ALL_HELP.format(applications=os.path.join(REPO, "applications"), programs=PROGRAMS)
    report = json.loads(run_python(code).strip().splitlines()[-1])
    assert report["heavy"] == []
    for path, text in report["texts"].items():
        assert "usage:" in text, path
        assert "(default: None)" not in " ".join(text.split()), path
        # A switch's own default says nothing ("--no-estimate ... (default: True)").
        assert "(default: True)" not in text and "(default: False)" not in text, path
    # compare.py's description is its docstring's whole first paragraph (it was
    # cut at "...over seeds,"), and its example keeps its lines.
    text = report["texts"][os.path.join(REPO, "applications", "compare.py")]
    assert "over seeds, with training and serving cost, in one report." in " ".join(text.split())
    assert "example:\n    python applications/compare.py --dataset folder:~/photos \\\n" in text


def test_the_programs_choices_are_the_librarys():
    sys.path.insert(0, os.path.join(REPO, "applications"))
    import arguments

    from keras_pyramid import evaluation, export
    from keras_pyramid.data.augment import REGIMES
    from keras_pyramid.training import config, device, distribution, recipe
    from keras_pyramid.tuning.hypermodel import TUNERS
    from keras_pyramid.weights.convert import SOURCES

    assert arguments.CHOICES == {
        "augment": REGIMES, "recipe": recipe.RECIPES, "mixed_precision": device.MIXED_PRECISION,
        "distribute": distribution.MODES, "jit_compile": tuple(config.JIT_COMPILE),
        "skip_dropped": tuple(config.SKIP_DROPPED), "split": evaluation.SPLITS,
        "tta": evaluation.TTA, "format": export.FORMATS, "tuner": TUNERS, "source": SOURCES}
