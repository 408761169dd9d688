"""Real skipping: a residual branch that is not computed when its gates are closed.

PyramidDrop multiplies the branch output `F(x)` by a gate `b`; with `b = 0`
the unit is `y = S(x)` and computing `F` was wasted work, forward and
backward. `SkippableBranch` holds the branch's layers and its regularizer,
draws the gates first and computes `F` only when one of them is open:

    training:  g = R.draw_gates()
               R_g(F(x))                  if any gate in g is open
               0 (F's output shape)       otherwise: F is not run at all
    inference: R(F(x)) = (1 - d) F(x)

The two training cases have equal values (a closed gate multiplies by 0), so
the network computes the same function as with the flat layers; a skipped
branch leaves its weights and BatchNorm statistics untouched, as in
Huang et al.'s own implementation.

The choice is `keras.ops.cond`. Its branches may not assign variables under
JAX (the assignment would leak a tracer out of `lax.cond`), so the computed
branch runs in a nested `keras.StatelessScope`: it returns its BatchNorm
statistics as values, and they are assigned after the cond; the skipped
branch returns the current ones. The same code then runs on every backend.
Per-batch gates only: a per-example gate closes for the whole batch too
rarely to pay for the cond. ShakeDrop is never skipped (a closed gate still
passes `alpha * F`).

Whether skipping pays depends on the backend and device: where a cond
branch is compiled by XLA on CPU, its convolution gradients run far slower
than outside a cond. `applications/train.py --skip-dropped auto` therefore
turns it on only where `benchmarks/speed.py` measured it faster.
"""

import keras
from keras import ops

from keras_pyramid.models.regularizers import PyramidSepDrop, StochasticDepth

SKIPPABLE = (StochasticDepth, PyramidSepDrop)


def can_skip(regularizer):
    """Whether a unit with this regularizer gains from skipping."""
    # A gate that never closes (rate 0) never lets the whole branch go.
    return (
        isinstance(regularizer, SKIPPABLE)
        and regularizer.granularity == "batch"
        and min(regularizer.gate_drop_rates) > 0.0
    )


@keras.saving.register_keras_serializable(package="keras_pyramid")
class SkippableBranch(keras.layers.Layer):
    """A residual branch `F` (a sequence of layers) and its regularizer `R`,
    which skips `F` when `R` closes all its gates (see the module doc).

    Args:
        branch: list of layers, applied in order: the branch `F`.
        regularizer: a `StochasticDepth` or `PyramidSepDrop` layer with
            `granularity="batch"`.

    Call arguments:
        inputs: the unit's input `x`.
        training: bool; gates and skipping (True) or `(1 - d) F(x)` (False).
    """

    def __init__(self, branch, regularizer, **kwargs):
        super().__init__(**kwargs)
        if not can_skip(regularizer):
            raise ValueError(
                "`regularizer` must be a StochasticDepth or PyramidSepDrop layer with "
                "granularity='batch' and drop rates > 0. "
                f"Received: regularizer={regularizer!r}"
            )
        self.branch = list(branch)
        self.regularizer = regularizer

    def build(self, input_shape):
        shape = input_shape
        for layer in self.branch:
            if not layer.built:  # layers may be shared with another model
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        if not self.regularizer.built:
            self.regularizer.build(shape)
        self._branch_shape = tuple(shape)

    @property
    def layers(self):
        """The layers it holds, branch then regularizer, as `keras.Model.layers`
        lists a model's: what a walk over a network's layers descends into."""
        return [*self.branch, self.regularizer]

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.branch:
            shape = layer.compute_output_shape(shape)
        return shape

    def _run_branch(self, x, training):
        for layer in self.branch:
            x = layer(x, training=training)
        return x

    def call(self, inputs, training=False):
        if not training:
            return self.regularizer(self._run_branch(inputs, False), training=False)
        gates = self.regularizer.draw_gates((1,) * len(self._branch_shape), self.compute_dtype)
        any_open = ops.greater(ops.max(ops.stack([ops.reshape(g, ()) for g in gates])), 0)
        variables = self.branch_variables()
        current = [variable.value for variable in variables]
        statistics = [v for v in variables if not v.trainable]  # what the branch assigns
        unchanged = [value for v, value in zip(variables, current) if not v.trainable]

        def computed():
            # Reads see `current`; assignments (BatchNorm statistics) are
            # collected here and returned as values.
            with keras.StatelessScope(state_mapping=list(zip(variables, current))) as scope:
                output = self.regularizer.apply_gates(self._run_branch(inputs, True), gates)
            new = [scope.get_current_value(v) for v in statistics]
            return output, [o if n is None else n for n, o in zip(new, unchanged)]

        def skipped():
            shape = (ops.shape(inputs)[0],) + self._branch_shape[1:]
            return ops.zeros(shape, dtype=self.compute_dtype), unchanged

        output, new_statistics = ops.cond(any_open, computed, skipped)
        for variable, value in zip(statistics, new_statistics):
            variable.assign(value)
        return output

    def branch_variables(self):
        return [v for layer in self.branch for v in layer.variables]

    def get_config(self):
        return {
            **super().get_config(),
            "branch": [keras.saving.serialize_keras_object(layer) for layer in self.branch],
            "regularizer": keras.saving.serialize_keras_object(self.regularizer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["branch"] = [keras.saving.deserialize_keras_object(c) for c in config["branch"]]
        config["regularizer"] = keras.saving.deserialize_keras_object(config["regularizer"])
        return cls(**config)


def skip_by_default(jit_compile="auto", replicas=1):
    """Whether training should skip dropped branches here (`--skip-dropped auto`).

    Measured with `benchmarks/speed.py` on CPU (benchmarks/results/README.md): skipping
    speeds the training step up without XLA (PyTorch, TensorFlow without
    jit) and slows it down under XLA, where a convolution's gradient inside
    a taken cond branch is far slower than outside one. With accelerators
    nothing was measured, so XLA keeps the flat layers there too. Several
    replicas keep them as well (untested with conds).
    """
    if replicas > 1:
        return False
    return not _uses_xla(jit_compile)


def _uses_xla(jit_compile):
    """The jit_compile that Keras' `compile(jit_compile=...)` will settle on."""
    if jit_compile != "auto":
        return bool(jit_compile)
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        import tensorflow as tf  # this backend only: the package never imports it otherwise

        # Keras turns XLA off on machines with CPUs only.
        return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    return False
