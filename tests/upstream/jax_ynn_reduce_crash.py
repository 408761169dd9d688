"""Minimal reproduction of a jaxlib 0.10.2 CPU segfault (for openxla/xla), without Keras.

    JAX_PLATFORMS=cpu python tests/upstream/jax_ynn_reduce_crash.py   # -> Segmentation fault
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-reduce \
        JAX_PLATFORMS=cpu python tests/upstream/jax_ynn_reduce_crash.py   # -> (1, 16, 16, 62)

Found on jax/jaxlib 0.10.2, x86-64 CPU (AVX-512), Python 3.11. XLA's YNN "reduce"
library fusion pulls the `reduce-window` (a 2x2 average pool) into one
`__ynn_fusion` together with its producers; executing it crashes in
`ynn::multiply_add_fp32_fp32_fp32_x86_avx512f_avx512bw` on an Eigen worker thread.
Each part is needed: remove either channel scale, the zero-channel pad plus add, or
the pool, and it runs; so does the same chain with 8 -> 16 -> 24 channels. Batch 1
is enough. `lax.optimization_barrier` before the pool does not avoid it, nor does a
reshape-mean pool; four strided slices added together do (keras_pyramid's
workaround, `layers.average_pool_2x2_by_slices`).
"""

import jax
import jax.numpy as jnp
from jax import lax


def conv3x3(x, kernel):
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def trigger(x, scale_in, kernel_in, scale_mid, kernel_mid):
    y = conv3x3(x * scale_in, kernel_in)                          # 31 -> 47 channels
    padded = jnp.pad(y, ((0, 0), (0, 0), (0, 0), (0, 62 - 47)))   # zero channels appended
    z = padded + conv3x3(y * scale_mid, kernel_mid)               # 47 -> 62 channels
    return lax.reduce_window(z, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4


if __name__ == "__main__":
    arguments = (jnp.ones((1, 32, 32, 31)), jnp.ones(31), jnp.ones((3, 3, 31, 47)),
                 jnp.ones(47), jnp.ones((3, 3, 47, 62)))
    print(jax.jit(trigger)(*arguments).block_until_ready().shape)
