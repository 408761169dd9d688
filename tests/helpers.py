"""Shared test helpers (the one helper module): tiny models, backends' gradients, child
processes (every test's subprocess goes through run_command / start_command), programs
run in-process, the real CIFAR-10 arrays, image folders and the PyTorch reference nets.

Fixtures live in conftest.py; tests import helpers from here.
"""

import dataclasses
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np

import keras_pyramid

BACKENDS = ("tensorflow", "jax", "torch")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


# A 3-unit PyramidSepDrop for the program tests (train.py --hparams): every
# code path of a run at a fraction of a registered model's cost.
TINY_HPARAMS = os.path.join(REPO, "tests", "tiny_hparams.json")


JAX_CACHE = os.path.join(tempfile.gettempdir(), "keras-pyramid-tests-jax-cache")


def tiny_model(regularization=None, **kwargs):
    """A 3-unit PyramidNet (depth 8, basic) on 16x16 images: cheap on every backend."""
    arguments = dict(input_shape=(16, 16, 3), seed=7, drop_rate=0.5)
    arguments.update(kwargs)
    depth = arguments.pop("depth", 8)
    alpha = arguments.pop("alpha", 6)
    return keras_pyramid.PyramidNet(
        depth, alpha, regularization=regularization, **arguments
    )


def random_images(count, size=16, seed=0, channels_first=False):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3)).astype("float32")
    return images.transpose(0, 3, 1, 2) if channels_first else images


def trainable_parameter_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def gradient_of_sum(function, x):
    """d sum(function(x)) / dx on the current backend, as a numpy array."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(function(x))
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: function(v).sum())(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    function(x).sum().backward()
    return x.grad.numpy()


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


# What a user does with a finished run directory, in a fresh process and with
# the consumer's defaults: `load_model(path)` (compile=True), then
# `model.load_weights` of the last checkpoint.
RELOAD_RUN_DIRECTORY = """
import glob, json, os, sys
import keras, numpy as np
import keras_pyramid  # the only import a user needs
run_dir = sys.argv[1]
model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
x = np.random.default_rng(0).uniform(0, 255, (2, *model.inputs[0].shape[1:])).astype("float32")
saved = model.predict(x, verbose=0)
checkpoints = glob.glob(os.path.join(run_dir, "checkpoint", "*.weights.h5"))
model.load_weights(checkpoints[0])
print(json.dumps({
    "backend": keras.backend.backend(),
    "optimizer": type(model.optimizer).__name__,
    "schedule": type(model.optimizer._learning_rate).__name__,
    "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
    "checkpoints": len(checkpoints),
    "difference": float(np.abs(model.predict(x, verbose=0) - saved).max()),
}))
"""


def assert_run_directory_reloads(run_dir, steps, schedule="PiecewiseConstantDecay"):
    """The run's model.keras loads compiled in a fresh process, its optimizer
    at `steps` with the recipe's schedule, and the last checkpoint's weights
    load into it and give the same predictions (they are the final weights)."""
    report = json.loads(run_python(RELOAD_RUN_DIRECTORY.replace(
        "sys.argv[1]", repr(str(run_dir)))).strip().splitlines()[-1])
    assert report["backend"] == keras.backend.backend()
    assert report["optimizer"] == "SGD" and report["schedule"] == schedule
    assert report["iterations"] == steps and report["checkpoints"] == 1
    assert report["difference"] < 1e-5, report


SAMPLE_TRAIN_EXAMPLES, SAMPLE_TEST_EXAMPLES = 2000, 500


def load_cifar10_npz():
    """The real CIFAR-10 arrays from ../shared/data: (x_train, y_train, x_test, y_test)."""
    parts = [np.load(os.path.join(SHARED_DATA, f"cifar10_train_part{i}.npz")) for i in (1, 2)]
    test = np.load(os.path.join(SHARED_DATA, "cifar10_test.npz"))
    return (
        np.concatenate([p["x_train"] for p in parts]),
        np.concatenate([p["y_train"] for p in parts]),
        test["x_test"],
        test["y_test"],
    )


def load_program(path):
    """A program (applications/*.py, tuning/search.py) as a module: its main(argv)
    runs in this process (no Python start-up; a traceback fails the test)."""
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


def blocked_tensorflow_path(folder):
    """A folder whose `tensorflow` and `tensorflow_datasets` raise ImportError:
    first on a child's PYTHONPATH, the child runs as if neither were installed."""
    for name in ("tensorflow", "tensorflow_datasets"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        with open(os.path.join(folder, name, "__init__.py"), "w") as f:
            f.write("raise ImportError('blocked: this run must not need TensorFlow')\n")
    return str(folder)


# The PyTorch side of the conversion tests (pytorchcv's networks).
# Converted weights must give the source's class probabilities to this.
CONVERSION_TOLERANCE = 1e-4
CIFAR_STATISTICS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # imgclsmob's


def randomize_batchnorm(net, seed=0, size=32):
    """Drawn BN affine terms, and running statistics moved away from 0 and 1
    by training-mode passes; then eval mode."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, size, size, generator=generator) * 1.5 + 0.3)
    return net.eval()


def normalized(images, statistics):
    import torch

    mean, std = (torch.tensor(v)[:, None, None] for v in statistics)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def calibrate_head(net, images, statistics):
    """Scales the head so that the logits have a standard deviation of 2: a
    deep random network's logits are huge, and one-hot probabilities would
    hide a wrong mapping."""
    import torch

    head = net.output if hasattr(net, "output") else net.layers["predictions"]
    with torch.no_grad():
        scale = 2.0 / net(normalized(images, statistics)).std()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    return net


def pytorchcv_probabilities(net, images, statistics):
    """The source's probabilities: its own normalization in."""
    import torch

    with torch.no_grad():
        return torch.softmax(net(normalized(images, statistics)), dim=-1).numpy()


CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


def write_image_folder(root, classes, per_class, offset=0, odd=True):
    """Real CIFAR-10 test images of `classes` as root/NAME/*.png|jpg: JPEG and
    PNG alternate and, with `odd`, some are grayscale, palette or RGBA, and
    some are resized to odd non-square sizes (what a user's folder holds)."""
    from PIL import Image

    test = np.load(os.path.join(SHARED_DATA, "cifar10_test.npz"))
    images, labels = test["x_test"], test["y_test"].ravel()
    for label in classes:
        folder = os.path.join(root, CIFAR10_NAMES[label])
        os.makedirs(folder, exist_ok=True)
        for j, index in enumerate(np.flatnonzero(labels == label)[offset:offset + per_class]):
            image = Image.fromarray(images[index])
            if odd and j % 6 == 1:
                image = image.convert("L")
            elif odd and j % 6 == 3:
                image = image.convert("P")
            elif odd and j % 6 == 5:
                image = image.convert("RGBA")
            if odd and j % 4 == 2:
                image = image.resize((45, 29))
            suffix = "jpg" if j % 2 == 0 and image.mode in ("RGB", "L") else "png"
            image.save(os.path.join(folder, f"{index:05d}.{suffix}"))
    return str(root)


# A random pytorchcv PyramidNet-8 alpha 24 served as the "cifar10" trained
# weights of this configuration (test_weights.py, test_finetune.py).
SERVED_NAME = "pyramidnet8_a24"


def file_sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def with_entry(entry):
    """presets.ARCHITECTURES with `entry` as SERVED_NAME's only weights."""
    from keras_pyramid.models import presets

    return tuple(dataclasses.replace(a, weights=(entry,)) if a.name() == SERVED_NAME else a
                 for a in presets.ARCHITECTURES)
