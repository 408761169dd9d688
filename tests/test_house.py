"""The house rules the code review asks for, checked on the source (pure
Python, no Keras tensor: runs once, under the tensorflow backend).

- The package's imports form no circle, counting function-local imports
  (a local import that only dodges a circle is a design bug), and they point
  down the layers: utils <- the model's parts (layers, blocks, presets) <-
  weights (fetch, convert: leaves that return data), data <- the builders
  that compose them (models.pyramidnet, models.hparams) <- applications
  (the registry) <- training <- evaluation, export <- tuning, compare.
- No function in keras_pyramid/ is over 80 lines.
- No test starts a process except through tests/helpers/processes.py.
"""

import ast
import os

import keras
import pytest
from helpers.paths import REPO

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="reads the source, no Keras tensor: runs once, under tensorflow")

PACKAGE = os.path.join(REPO, "keras_pyramid")
# The layer of each room (the longest matching prefix decides); a module may
# import its own layer or a lower one.
LAYERS = {"utils": 0, "models": 1, "layers": 1, "weights": 2, "data": 2,
          "training.run_layout": 0,  # a leaf: the names a run writes, imported everywhere
          "models.pyramidnet": 3, "models.hparams": 3, "applications": 4, "training": 5,
          "evaluation": 6, "export": 6, "tuning": 7, "compare": 7}
LONGEST_FUNCTION = 80


def package_modules():
    """{dotted name: path} of every module of keras_pyramid."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(path, modules):
    """The package modules `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            # `from package import module` imports the module; `from module
            # import name` imports the module alone.
            names = [n for n in names[:-1] if n in modules] or [node.module]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def import_graph():
    modules = package_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """A list of modules forming a circle, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module):
    """The layer of a package module; None for the package's own __init__."""
    name = module.removeprefix("keras_pyramid.")
    while name and name != "keras_pyramid":
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def test_the_package_imports_form_no_circle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_point_down_the_layers():
    upward = [f"{source} imports {target}" for source, targets in import_graph().items()
              for target in targets
              if None not in (layer_of(source), layer_of(target))
              and layer_of(target) > layer_of(source)]
    assert not upward, upward


def functions_longer_than(limit, root):
    found = []
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        length = node.end_lineno - node.lineno + 1
                        if length > limit:
                            found.append(f"{os.path.relpath(path, REPO)}:{node.lineno} "
                                         f"{node.name} ({length} lines)")
    return found


def test_no_library_function_is_over_80_lines():
    assert functions_longer_than(LONGEST_FUNCTION, PACKAGE) == []


def test_tests_start_processes_only_through_the_helper_module():
    calls = ("subprocess." + "run(", "subprocess." + "Popen(")  # not found in this file
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO, "tests")):
        for name in files:
            path = os.path.join(folder, name)
            helper = os.path.relpath(path, REPO) == os.path.join("tests", "helpers", "processes.py")
            if name.endswith(".py") and not helper and "fixtures" not in path:
                text = open(path, encoding="utf-8").read()
                if any(call in text for call in calls):
                    offenders.append(os.path.relpath(path, REPO))
    assert offenders == []
