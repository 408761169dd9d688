"""The programs (applications/*.py, tuning/search.py) run in this process: no
Python start-up, and a traceback fails the test."""

import importlib.util
import os
import sys

from helpers.paths import REPO


def load_program(path):
    """A program as a module: its main(argv) runs in this process."""
    name = "program_" + os.path.splitext(os.path.basename(path))[0]
    # As `python applications/x.py` would have it: the program's folder (and
    # its argument types, applications/arguments.py) importable.
    for folder in (os.path.join(REPO, "applications"), os.path.dirname(os.path.abspath(path))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refusal(program, argv, capsys):
    """Runs `program`'s main(argv) in this process and returns the one
    "error:" line of its refusal, asserting exit status 2 and exactly one
    such line (argparse's errors exit through SystemExit)."""
    try:
        status = load_program(program).main(argv)
    except SystemExit as exit:
        status = exit.code
    stderr = capsys.readouterr().err
    assert status == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]
