"""Data-parallel training on two simulated devices: JAX with 2 host devices,
TensorFlow with 2 logical CPUs (each in a fresh process: the device count is
fixed at start-up), and PyTorch's clear refusal. Each backend's run checks its
own engine."""

import json
import os
import sys

import keras
import pytest
from helpers.paths import REPO, TINY_HPARAMS
from helpers.processes import free_port, run_command, run_python, start_command

from keras_pyramid.models.regularizers import StochasticDepth
from keras_pyramid.training import distribution

TRAIN = os.path.join(REPO, "applications", "train.py")

# A step on 2 devices against the same step on one device (no regularization),
# and the per-batch gates of each replica over 16 training calls.
COMMON = """
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.join({repo!r}, "tests"))
{setup}
import keras
from helpers.models import tiny_model
from keras_pyramid.training import distribution
from keras_pyramid.models.regularizers import StochasticDepth

rng = np.random.default_rng(0)
x = rng.integers(0, 256, (8, 16, 16, 3)).astype("float32")
y = rng.integers(0, 10, 8)


def one_step(model):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def largest_difference(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


single = tiny_model(None, classes=10)
initial = single.get_weights()
expected = one_step(single)
plan = distribution.data_parallel("data-parallel")
report = {{"replicas": plan.replicas, "engine": plan.engine}}
{body}
print(json.dumps(report))
"""

JAX_SETUP = 'os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"'
JAX_BODY = """
import jax
with plan.scope():
    parallel = tiny_model(None, classes=10)
parallel.set_weights(initial)
report["difference"] = {"global": largest_difference(expected, one_step(parallel))}

layer = StochasticDepth(0.5, seed=3)
inputs = keras.Input((4, 4, 3))
probe = keras.Model(inputs, layer(inputs))
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
batch = jax.device_put(np.ones((8, 4, 4, 3), "float32"),
                       jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))
step = jax.jit(lambda state, v: probe.stateless_call(state[0], state[1], v, training=True))
state = ([v.value for v in probe.trainable_variables],
         [v.value for v in probe.non_trainable_variables])
report["kept"] = []
for _ in range(16):
    out, non_trainable = step(state, batch)
    state = (state[0], non_trainable)
    report["kept"].append([float(np.asarray(s.data).mean()) for s in out.addressable_shards])
"""

TF_SETUP = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
TF_BODY = """
report["difference"] = {}
for mode in ("per_replica", "synchronized"):
    with plan.scope():
        parallel = tiny_model(None, classes=10)
        if mode == "synchronized":
            parallel = distribution.synchronized_batch_norm(parallel)
        parallel.set_weights(initial)
        report["difference"][mode] = largest_difference(expected, one_step(parallel))

with plan.scope():
    layer = StochasticDepth(0.5, seed=3)
    layer.build((None, 4, 4, 3))
batches = plan.strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensors(tf.ones((8, 4, 4, 3))).repeat(16))


@tf.function
def draw(batch):
    return plan.strategy.run(lambda v: layer(v, training=True), args=(batch,))


report["kept"] = [[float(tf.reduce_mean(out)) for out in
                   plan.strategy.experimental_local_results(draw(batch))] for batch in batches]
"""


def run_check(setup, body):
    code = COMMON.format(repo=REPO, setup=setup, body=body)
    return json.loads(run_python(code).strip().splitlines()[-1])


def assert_replicas_share_gates(kept):
    """Per shard, the kept fraction of an all-ones batch: 1 (kept) or 0
    (dropped), the same on both replicas, and both outcomes occur."""
    assert all(len(step) == 2 and step[0] == step[1] and step[0] in (0.0, 1.0)
               for step in kept), kept
    assert {step[0] for step in kept} == {0.0, 1.0}, kept


def train_command(tmp_path, data_dir, *extra):
    return [sys.executable, TRAIN, "--hparams", TINY_HPARAMS, "--data-dir",
            data_dir, "--no-download", "--output-dir", str(tmp_path / "run"), "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "16", "--eval-steps", "1",
            "--verbose", "2", *extra]


def run_train(command, **env):
    return run_command(command, environment=env)


def test_data_parallel_training_on_two_devices(tmp_path, cifar10_sample_tfds_dir):
    backend = keras.backend.backend()
    if backend == "torch":
        with pytest.raises(distribution.DistributionError, match="jax or tensorflow"):
            distribution.data_parallel("data-parallel")
        assert distribution.data_parallel("auto").replicas == 1
        refused = run_train(train_command(tmp_path, cifar10_sample_tfds_dir,
                                          "--distribute", "data-parallel"))
        assert refused.returncode == 2
        assert "needs the jax or tensorflow backend" in refused.stderr
        assert "Traceback" not in refused.stderr
        return

    if backend == "jax":
        report = run_check(JAX_SETUP, JAX_BODY)
        assert report["engine"] == "JAX DataParallel over 2 devices"
        # One SPMD program over the global batch: BatchNorm sees all 8 images.
        assert report["difference"]["global"] < 1e-5
    else:
        report = run_check(TF_SETUP, TF_BODY)
        assert report["engine"] == "MirroredStrategy over 2 devices"
        # Per-replica statistics (the default) differ from one device's;
        # synchronized ones match it.
        assert report["difference"]["per_replica"] > 1e-3
        assert report["difference"]["synchronized"] < 1e-5
    assert report["replicas"] == 2
    assert_replicas_share_gates(report["kept"])

    if backend == "tensorflow":  # several machines: two workers through TF_CONFIG
        two_workers = train_in_two_processes(tmp_path, cifar10_sample_tfds_dir,
                                             tf_worker_environment, "--sync-batch-norm",
                                             "--epochs", "2")
        # Without skipping, as the two workers (several replicas never skip):
        # skipped branches keep their BN statistics, which the evaluation uses.
        one_process = run_train(train_command(tmp_path, cifar10_sample_tfds_dir, "--distribute",
                                              "none", "--epochs", "2", "--skip-dropped", "off"))
        assert one_process.returncode == 0, one_process.stderr[-3000:]
        single = json.loads((tmp_path / "run" / "results.json").read_text())
        # Each worker trains on half of every global batch; with global
        # BatchNorm the two together train the one-process model.
        for results in two_workers:
            assert results["final_loss"] == pytest.approx(single["final_loss"], abs=1e-4)
            assert results["final_train_error"] == pytest.approx(
                single["final_train_error"], abs=1e-6)
        assert two_workers[0]["final_loss"] == two_workers[1]["final_loss"]

    if backend == "jax":  # the program end to end (TF needs its devices split in-process)
        two_devices = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        trained = run_train(train_command(tmp_path, cifar10_sample_tfds_dir, "--distribute",
                                          "data-parallel"), **two_devices)
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "JAX DataParallel over 2 devices" in trained.stdout
        assert (tmp_path / "run" / "results.json").exists()
        odd = run_train(train_command(tmp_path, cifar10_sample_tfds_dir, "--batch-size", "15",
                                      "--restart"), **two_devices)
        assert odd.returncode == 2
        assert "divide evenly over 2 replicas" in odd.stderr and "batch_size=15" in odd.stderr
        one_process = json.loads((tmp_path / "run" / "results.json").read_text())
        two_processes = train_in_two_processes(tmp_path, cifar10_sample_tfds_dir,
                                               jax_process_environment)
        # Each process reports the global step's metrics: the same as one
        # process driving both devices.
        for results in two_processes:
            assert results["final_loss"] == pytest.approx(one_process["final_loss"], abs=1e-5)
            assert results["final_train_error"] == pytest.approx(
                one_process["final_train_error"], abs=1e-6)


def jax_process_environment(index, addresses):
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses[0],  # the coordinator
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}


def tf_worker_environment(index, addresses):
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                     "task": {"type": "worker", "index": index}})}


ENGINES = {jax_process_environment: "JAX DataParallel over 2 devices in 2 processes",
           tf_worker_environment: "MultiWorkerMirroredStrategy over 2 replicas in 2 processes"}


def train_in_two_processes(tmp_path, data_dir, environment_of, *extra):
    """Two processes on 127.0.0.1 (one device each) train one model
    together; each gets a hard limit, since one waits forever for the other."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    try:
        for index in (0, 1):
            command = train_command(tmp_path / f"process{index}", data_dir, *extra)
            processes.append(start_command(
                command, environment={**environment_of(index, addresses), "XLA_FLAGS": None}))
        outputs = [process.communicate(timeout=600) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert ENGINES[environment_of] in stdout
    return [json.loads((tmp_path / f"process{index}" / "run" / "results.json").read_text())
            for index in (0, 1)]


def test_per_sample_gates_are_refused_under_tensorflow_replicas():
    plan = distribution.Plan(2, "MirroredStrategy over 2 devices",
                             strategy=object())
    model = keras.Sequential([keras.Input((4, 4, 3)), StochasticDepth(0.2, "sample")])
    with pytest.raises(distribution.DistributionError, match="granularity='sample'"):
        distribution.check_gates(model, plan)
    distribution.check_gates(model, distribution.Plan())  # one device: fine


def test_unknown_modes_and_uneven_batches_are_refused():
    with pytest.raises(distribution.DistributionError, match="distribute='mirror'"):
        distribution.data_parallel("mirror")
    with pytest.raises(distribution.DistributionError, match="batch_size=15"):
        distribution.Plan(2, "two devices").check_batch_size(15)


def test_a_malformed_tf_config_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{worker: 1")
    with pytest.raises(distribution.DistributionError,
                       match=r"TF_CONFIG must be JSON.*\{worker: 1"):
        distribution._tf_cluster()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}))
    assert distribution._tf_cluster() == {"worker": ["a:1", "b:2"]}
