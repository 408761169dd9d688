"""Every child process of a test goes through here (run_command, start_command,
run_python, run_kerastuner_cluster): one environment, one JAX compilation cache."""

import os
import socket
import subprocess
import sys
import tempfile

from helpers.paths import REPO

JAX_CACHE = os.path.join(tempfile.gettempdir(), "keras-pyramid-tests-jax-cache")


def free_port():
    """A TCP port free on 127.0.0.1 now (for test clusters of processes)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def subprocess_environment(backend=None, repository=True, **extra):
    """The environment of a test's child process: this checkout importable
    (unless `repository` is False), the backend chosen, `extra` variables set
    (None removes one), and one persistent JAX compilation cache shared by
    every child of the run (a program compiled by one child is not compiled
    again)."""
    env = dict(os.environ)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if backend:
        env["KERAS_BACKEND"] = backend
    if repository:
        # The checkout, and the programs' argument types (applications/arguments.py)
        # for a child that runs a program through runpy.
        env["PYTHONPATH"] = os.pathsep.join(
            [REPO, os.path.join(REPO, "applications"), env.get("PYTHONPATH", "")])
    env.setdefault("JAX_COMPILATION_CACHE_DIR", JAX_CACHE)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    return env


def run_command(command, timeout=900, backend=None, environment=None, repository=True,
                **kwargs):
    """Runs a command (argument list) as a child process, with `environment`'s
    variables added (see subprocess_environment); returns the CompletedProcess."""
    env = subprocess_environment(backend, repository, **(environment or {}))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)


def start_command(command, backend=None, environment=None, **kwargs):
    """Starts a command as a child process (a member of a test cluster) and
    returns its Popen: stdout and stderr piped as text unless `kwargs` say
    otherwise. The caller waits for it and kills it if it outlives the test."""
    arguments = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
    return subprocess.Popen(command, env=subprocess_environment(backend, **(environment or {})),
                            **arguments)


def run_kerastuner_cluster(command, tuner_ids, log_folder, timeout=600):
    """Runs `command` as a KerasTuner cluster on 127.0.0.1 (`chief` and the
    workers among `tuner_ids`), each process under a hard limit: a worker
    without its chief, or a chief without workers, waits forever. Returns
    ({tuner id: exit status}, {tuner id: its output})."""
    base = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    processes = {}
    try:
        for tuner_id in tuner_ids:
            log = open(os.path.join(log_folder, f"{tuner_id}.log"), "w")
            processes[tuner_id] = (start_command(
                command, environment={**base, "KERASTUNER_TUNER_ID": tuner_id},
                stdout=log, stderr=subprocess.STDOUT), log)
        codes = {tuner_id: process.wait(timeout=timeout)
                 for tuner_id, (process, _) in processes.items()}
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = {}
    for tuner_id in processes:
        with open(os.path.join(log_folder, f"{tuner_id}.log")) as log:
            logs[tuner_id] = log.read()
    return codes, logs


def run_python(code, backend=None, timeout=600, environment=None):
    """Runs `code` in a fresh Python process (optionally under another backend)
    and returns its stdout; a non-zero exit (a segfault is -11) fails the test."""
    result = run_command([sys.executable, "-c", code], timeout=timeout, backend=backend,
                         environment=environment)
    assert result.returncode == 0, (
        f"exit status {result.returncode}\n{result.stderr[-4000:]}")
    return result.stdout


def blocked_tensorflow_path(folder):
    """A folder whose `tensorflow` and `tensorflow_datasets` raise ImportError:
    first on a child's PYTHONPATH, the child runs as if neither were installed."""
    for name in ("tensorflow", "tensorflow_datasets"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "__init__.py"), "w") as f:
            f.write("raise ImportError('blocked: this run must not need TensorFlow')\n")
    return str(folder)


# `python -c` code: runs a program's main(argv) and SIGKILLs its own process
# right after the checkpoint commit (checkpoint/latest.json) of a global step,
# as a crash or the OOM killer would.
_KILL_AFTER_CHECKPOINT = """
import os, runpy, signal, sys
from keras_pyramid.training import fit

original = fit.atomic_write_json


def write_then_die(path, record):
    original(path, record)
    if path.endswith("latest.json") and record["global_step"] == {global_step}:
        os.kill(os.getpid(), signal.SIGKILL)  # right after the commit


fit.atomic_write_json = write_then_die
sys.exit(runpy.run_path({program!r})["main"](sys.argv[1:]))
"""


def killed_after_checkpoint(program, global_step, arguments, timeout=600):
    """Runs `program` (a path) with `arguments` in a child process killed right
    after it commits the checkpoint of `global_step`; its CompletedProcess."""
    code = _KILL_AFTER_CHECKPOINT.format(global_step=global_step, program=program)
    return run_command([sys.executable, "-c", code, *arguments], timeout=timeout)
