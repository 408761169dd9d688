"""Defaults chosen per backend and device kind; each one overridable by its flag.

- mixed precision (`auto`): off on a CPU; bfloat16 on a GPU that has it
  (compute capability >= 8.0) and on a TPU. bf16 has float32's range (no
  loss scaling); the logits and loss stay float32 (the head is a float32
  layer).
- XLA (`--jit-compile auto`): Keras' own (on for JAX; off for TF on a CPU,
  on for TF on a GPU); measured on CPU (docs/performance.md), not on a GPU.
- skipping dropped branches (`--skip-dropped auto`): `skipping.skip_by_default`
  on every device; conds inside XLA measured slow on CPU, not measured on a GPU.

Nothing here is measured on a GPU in this repository (none was available):
`benchmarks/gpu_check.py` measures the GPU rows in one run.
"""

import keras

MIXED_PRECISION = ("auto", "off", "bfloat16", "float16")


def accelerator_kind():
    """"gpu", "tpu" or "cpu": the device the current backend computes on."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.devices()[0].platform
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    return "cpu"


def gpu_has_bfloat16():
    """Whether the first GPU computes in bfloat16 natively (Ampere or newer)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if backend == "jax":
        import jax

        capability = getattr(jax.devices()[0], "compute_capability", "0")
        return float(capability) >= 8.0
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return details.get("compute_capability", (0, 0)) >= (8, 0)
    return False


def resolve_mixed_precision(value, kind=None, has_bfloat16=None):
    """`value` with "auto" resolved: "bfloat16" on a GPU that has it (and on
    a TPU), else "off". `kind` and `has_bfloat16` default to this machine's."""
    if value not in MIXED_PRECISION:
        raise ValueError(f"`mixed_precision` must be one of {MIXED_PRECISION}. "
                         f"Received: mixed_precision={value!r}")
    if value != "auto":
        return value
    kind = accelerator_kind() if kind is None else kind
    if kind == "tpu":
        return "bfloat16"
    if kind != "gpu":
        return "off"
    has_bfloat16 = gpu_has_bfloat16() if has_bfloat16 is None else has_bfloat16
    return "bfloat16" if has_bfloat16 else "off"



def describe_device():
    """The device a run computes on, in words: "CPU (2 cores)", or the
    accelerator's kind and name."""
    import os
    import platform

    kind = accelerator_kind()
    if kind == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count())
        return f"CPU ({cores} cores{', ' + platform.processor() if platform.processor() else ''})"
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return f"GPU ({torch.cuda.get_device_name(0)})"
    if backend == "jax":
        import jax

        return f"{kind.upper()} ({jax.devices()[0].device_kind})"
    return kind.upper()


def reset_accelerator_peak_memory():
    """Starts the accelerator's peak-memory count afresh where the backend can."""
    if accelerator_kind() == "cpu":
        return
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def accelerator_peak_memory():
    """The first accelerator's peak allocated bytes since the last reset (JAX:
    since the process began), or None on a CPU or where the backend does
    not say."""
    if accelerator_kind() == "cpu":
        return None
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated())
    if backend == "tensorflow":
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
