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
- TensorFlow: `tf.distribute.MirroredStrategy` on one machine, and
  `MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster. Every
  replica runs the step on its shard. Keras 3.15's `fit` fails under the
  multi-worker strategy (keras-team/keras#20585) in two places, both worked
  around here for that strategy only (`_repair_keras_multi_worker`): it
  averages a sample batch across workers just to learn its shapes (an eager
  collective that fails), and it averages the scalar logs "along axis 0".
  BatchNorm statistics are per replica (what the
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

    replicas: int = 1
    engine: str = "single device"
    strategy: object = None
    processes: int = 1

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    @property
    def multi_worker(self):
        return self.strategy is not None and self.processes > 1

    def shard(self, dataset):
        """`dataset` (of GLOBAL batches) as this plan feeds it: across
        TensorFlow workers every worker reads the whole stream and keeps its
        share of each batch (the split's files are too few to deal out)."""
        if not self.multi_worker:
            return dataset
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        return dataset.with_options(options)

    def prepare(self, model, make_dataset):
        """Builds a compiled `model` from one local batch of `make_dataset()`
        before `fit`, so that Keras does not average a batch across workers to
        learn its shapes (keras-team/keras#20585). A function, so that no
        pipeline is made when there is nothing to prepare."""
        if not self.multi_worker:
            return
        batch = next(iter(make_dataset()))
        with self.strategy.scope():
            model._symbolic_build(data_batch=batch)
        model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

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
        raise DistributionError(f"`distribute` must be one of {MODES}. "
                                f"Received: distribute={mode!r}")
    if mode == "none":
        return Plan()
    backend = keras.backend.backend()
    if backend == "jax":
        processes = 1
        if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
            processes = _join_jax_processes()
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            return _single_device(mode, devices)
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        engine = f"JAX DataParallel over {len(devices)} devices"
        if processes > 1:
            engine += f" in {processes} processes"
        return Plan(len(devices), engine, processes=processes)
    if backend == "tensorflow":
        import tensorflow as tf

        cluster = _tf_cluster()
        if cluster:
            workers = sum(len(cluster.get(role, ())) for role in ("chief", "worker"))
            _repair_keras_multi_worker()
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            replicas = strategy.num_replicas_in_sync
            engine = f"MultiWorkerMirroredStrategy over {replicas} replicas in {workers} processes"
            return Plan(replicas, engine, strategy, processes=workers)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if len(devices) < 2:
            return _single_device(mode, [d.name for d in devices])
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        engine = f"MirroredStrategy over {len(devices)} devices"
        return Plan(strategy.num_replicas_in_sync, engine, strategy)
    if mode == "auto":
        return Plan()
    raise DistributionError(
        f"data-parallel training needs the jax or tensorflow backend: Keras "
        f"{keras.__version__} has no data-parallel engine for {backend}. "
        f"Set KERAS_BACKEND=jax or tensorflow. Received: distribute={mode!r}"
    )


def _single_device(mode, devices):
    """One device: "auto" trains on it; "data-parallel" asked for more."""
    if mode == "auto":
        return Plan()
    raise DistributionError(
        f"data-parallel training needs more than one device; this process sees "
        f"{len(devices)} ({', '.join(map(str, devices))}). Use auto or none. "
        f"Received: distribute={mode!r}")


def _repair_keras_multi_worker():
    """Keras 3.15 averages each scalar log across TensorFlow workers with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar
    (keras-team/keras#20585). Under a multi-worker strategy, scalars are
    averaged over replicas instead (axis=None); everything else is unchanged."""
    try:
        from keras.src.backend.tensorflow import trainer
        original = trainer.reduce_per_replica
        is_multi_worker = trainer._collective_all_reduce_multi_worker
        is_per_replica = trainer._is_per_replica_instance
    except (ImportError, AttributeError) as error:
        raise DistributionError(
            f"Keras {keras.__version__} changed the internals that the multi-worker repair "
            f"for keras-team/keras#20585 relies on ({error}); check whether the bug is fixed"
        ) from error
    if getattr(original, "repairs_scalar_logs", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if is_multi_worker(strategy) and reduction in ("auto", "mean"):
            def mean(value):
                local = value.values[0] if is_per_replica(value) else value
                if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return original(value, strategy, reduction)
            return keras.tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.repairs_scalar_logs = True
    trainer.reduce_per_replica = reduce_per_replica


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
