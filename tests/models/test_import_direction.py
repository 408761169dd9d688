"""Imports point down: utils <- models <- weights <- applications (the
registry, which composes them) and training. Read from the source, so a
function-local import counts as much as a module-level one."""

import ast
import os

from helpers import REPO

PACKAGE = os.path.join(REPO, "keras_pyramid")
# What each layer must never import (its upper floors).
FORBIDDEN = {
    "utils": ("models", "weights", "applications", "training", "tuning", "data"),
    "models": ("weights", "applications", "training", "tuning", "data"),
    "weights": ("applications", "training", "tuning", "data"),
}


def imported_modules(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_layer_imports_one_above_it():
    upward = []
    for layer, above in FORBIDDEN.items():
        folder = os.path.join(PACKAGE, layer)
        for file_name in sorted(os.listdir(folder)):
            if not file_name.endswith(".py"):
                continue
            for module in imported_modules(os.path.join(folder, file_name)):
                parts = module.split(".")
                if parts[0] == "keras_pyramid" and len(parts) > 1 and parts[1] in above:
                    upward.append(f"{layer}/{file_name} imports {module}")
    assert not upward, upward


def test_the_weighted_layer_names_are_the_builders():
    import keras_pyramid
    from keras_pyramid.models.pyramidnet import weighted_layer_names
    from keras_pyramid.weights.assign import weighted_layers

    for depth, bottleneck in ((8, False), (11, True)):
        model = keras_pyramid.PyramidNet(depth, 24, bottleneck, regularization="sepdrop",
                                         skip_dropped=True)
        assert [layer.name for layer in weighted_layers(model)] == weighted_layer_names(
            depth, bottleneck)
