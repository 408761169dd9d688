"""Data-parallel training over every visible device, with each backend's own engine.

    plan = data_parallel("auto")           # before building the model
    with plan.scope():
        model = build(...); model.compile(...)
    model.fit(...)                         # batches are GLOBAL batches

- JAX: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`.
  The jitted step is one SPMD program over the global batch, so BatchNorm
  statistics are computed over the global batch and a per-batch gate is one
  draw shared by every device. Several machines (or processes): set
  KERAS_DISTRIBUTION_JOB_ADDRESSES ("host0:port,host1:port", the first one
  coordinates), KERAS_DISTRIBUTION_NUM_PROCESSES and
  KERAS_DISTRIBUTION_PROCESS_ID on each; `keras.distribution.initialize()`
  joins them (CPU processes all-reduce through gloo) and the devices of all
  processes form one data-parallel mesh.
- TensorFlow: `tf.distribute.MirroredStrategy` on one machine. Every replica
  runs the step on its shard. Several machines (`TF_CONFIG`) are refused:
  Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585; reproduced here, and a first workaround only moved
  the failure to the reduction of the logs). BatchNorm statistics are per replica (what the
  papers' multi-GPU Torch runs did) unless `synchronized_batch_norm` is used.
  Per-batch gates agree because every replica reads the same mirrored seed
  state; per-SAMPLE gates would repeat across shards, so that combination is
  refused.
- PyTorch: Keras 3.15 has no data-parallel engine for torch; asking for one
  raises `DistributionError` naming the backends that have.

The batch size is the global batch (split evenly over the replicas, so it must
divide), and the learning rate is not rescaled: for a global batch of k x 128
the linear scaling rule suggests k times the paper's rate (`--lr`).
"""

import contextlib
import dataclasses
import json
import os

import keras

MODES = ("none", "auto", "data-parallel")


class DistributionError(ValueError):
    """Data parallelism cannot be set up as asked."""


@dataclasses.dataclass
class Plan:
    """How a run is spread: `replicas` devices, and the scope to build in."""

    mode: str
    replicas: int = 1
    engine: str = "single device"
    strategy: object = None
    processes: int = 1

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def check_batch_size(self, batch_size):
        if batch_size % self.replicas:
            raise DistributionError(
                f"the global batch size must divide evenly over {self.replicas} replicas "
                f"({self.engine}). Received: batch_size={batch_size}"
            )


def _tf_cluster():
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise DistributionError(
            f"TF_CONFIG must be JSON. Received: TF_CONFIG={os.environ['TF_CONFIG']!r}"
        ) from None
    return config.get("cluster", {}) if isinstance(config, dict) else {}


def data_parallel(mode="auto"):
    """A `Plan` for `mode`: "none", "auto" (data-parallel when there is more
    than one device, or several JAX processes) or "data-parallel" (required)."""
    if mode not in MODES:
        raise DistributionError(f"`distribute` must be one of {MODES}. Received: distribute={mode!r}")
    if mode == "none":
        return Plan(mode)
    backend = keras.backend.backend()
    if backend == "jax":
        processes = 1
        if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
            processes = _join_jax_processes()
        devices = keras.distribution.list_devices()
        if len(devices) < 2 and mode == "auto":
            return Plan(mode)
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        engine = f"JAX DataParallel over {len(devices)} devices"
        if processes > 1:
            engine += f" in {processes} processes"
        return Plan(mode, len(devices), engine, processes=processes)
    if backend == "tensorflow":
        import tensorflow as tf

        if _tf_cluster():
            raise DistributionError(
                "TF_CONFIG names a cluster, but Keras 3.15 cannot train under "
                "MultiWorkerMirroredStrategy (keras-team/keras#20585); train on several "
                "machines with the jax backend (README). "
                f"Received: TF_CONFIG={os.environ['TF_CONFIG']!r}"
            )
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if len(devices) < 2 and mode == "auto":
            return Plan(mode)
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        engine = f"MirroredStrategy over {len(devices)} devices"
        return Plan(mode, strategy.num_replicas_in_sync, engine, strategy)
    if mode == "auto":
        return Plan(mode)
    raise DistributionError(
        f"data-parallel training needs the jax or tensorflow backend: Keras "
        f"{keras.__version__} has no data-parallel engine for {backend}. "
        f"Set KERAS_BACKEND=jax or tensorflow. Received: distribute={mode!r}"
    )


def _join_jax_processes():
    """Joins the processes named by the KERAS_DISTRIBUTION_* variables;
    returns their number. Must run before JAX computes anything."""
    import jax

    try:
        processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", ""))
        int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", ""))
    except ValueError:
        raise DistributionError(
            "KERAS_DISTRIBUTION_JOB_ADDRESSES is set, so KERAS_DISTRIBUTION_NUM_PROCESSES and "
            "KERAS_DISTRIBUTION_PROCESS_ID must be ints. Received: "
            f"{os.environ.get('KERAS_DISTRIBUTION_NUM_PROCESSES')!r}, "
            f"{os.environ.get('KERAS_DISTRIBUTION_PROCESS_ID')!r}"
        ) from None
    # CPU processes need a collectives library to all-reduce between them;
    # accelerators bring their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()
    return processes


def check_gates(model, plan):
    """Refuses per-sample gates under TensorFlow replicas (see module doc)."""
    if plan.strategy is None:
        return
    for layer in model.layers:
        if getattr(layer, "granularity", None) == "sample":
            raise DistributionError(
                f"per-sample gates would repeat on every replica under {plan.engine}: "
                f"use granularity='batch' or the jax backend. Received: granularity='sample' "
                f"in layer {layer.name!r}"
            )


def synchronized_batch_norm(model):
    """A copy of `model` whose BatchNormalization layers compute their
    statistics over the global batch across TensorFlow replicas
    (`synchronized=True`). Build it inside the plan's scope."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
