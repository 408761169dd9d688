"""Drop-rate schedules: the last unit's rate changing during training.

This project's extension (docs/architecture.md section 2; the papers keep the rate constant).
A schedule is a function `scale(step) -> [0, 1]` of the global training step;
every branch regularizer then drops with `scale * d_l`, so the linear rule
`d_l = (l / L) * scale * d_L` holds at every step. `DropRateSchedule` writes
the scale into the layers' `rate_scale` state before each step: no rebuild,
no retrace, and since the scale is a function of the optimizer's step, a
resumed run continues the schedule exactly. Inference and export always use
the target rate `d_L` (what the finished network is served with), so an
evaluation in the middle of a ramp scales the branches by `1 - d_l`, not by
that step's training keep probability.

    model.fit(..., callbacks=[DropRateSchedule(ramp(0.3, total_steps))])
    scale = scale_function(specs.parse_schedule("ramp:0.3"), total_steps)  # from the text
"""

import keras

from keras_pyramid.models.regularizers import PyramidSepDrop, ShakeDrop, StochasticDepth
from keras_pyramid.utils import checks

# The scale changes in steps of 1 / RESOLUTION: a ramp over thousands of
# steps then writes the state about RESOLUTION times, not at every step (a
# write costs a state sync under JAX).
RESOLUTION = 1000


def constant():
    """The papers' schedule: the target rate from the first step."""
    return lambda step: 1.0


def ramp(fraction, total_steps):
    """Linear from 0 to the target over the first `fraction` of `total_steps`,
    then the target (as scheduled drop-path does)."""
    if not checks.is_number(fraction) or not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1]. Received: fraction={fraction!r}")
    checks.check_int("total_steps", total_steps, minimum=1)
    ramp_steps = max(1, round(fraction * total_steps))
    return lambda step: min(1.0, step / ramp_steps)


def scale_function(schedule, total_steps):
    """The function `scale(step)` of a `specs.ScheduleSpec` over `total_steps`."""
    if schedule.constant:
        return constant()
    return ramp(schedule.fraction, total_steps)


def branch_regularizers(model):
    """Every drop-rate-carrying layer of `model`, also inside skippable branches
    (walked through the public `layers` of every layer that holds layers)."""
    kinds = (StochasticDepth, PyramidSepDrop, ShakeDrop)
    found = []
    for layer in model.layers:
        if isinstance(layer, kinds) and layer not in found:
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(inner for inner in branch_regularizers(layer) if inner not in found)
    return found


class DropRateSchedule(keras.callbacks.Callback):
    """Sets the regularizers' rate scale to `schedule(step)` before each
    training step, `step` the optimizer's global step (so a resumed fit goes
    on where it stopped).

    Args:
        schedule: a function of the global step (0-based) to a scale in
            [0, 1], e.g. `ramp(0.3, total_steps)`.
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.scale = None  # the value in the layers' state

    def on_train_begin(self, logs=None):
        # One on_train_batch_* call per step is what the step count relies on.
        if getattr(self.model, "steps_per_execution", 1) > 1:
            raise ValueError(
                "DropRateSchedule counts steps by batch callbacks, which run once per "
                "`steps_per_execution` steps: compile with steps_per_execution=1. Received: "
                f"steps_per_execution={self.model.steps_per_execution!r}"
            )
        self._layers = branch_regularizers(self.model)
        # Read once: under JAX the optimizer's variables live in the trainer's
        # state during an epoch. Counting batches from here is exact.
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.scale = None

    def on_train_batch_begin(self, batch, logs=None):
        scale = min(1.0, max(0.0, float(self.schedule(self.step))))
        scale = round(scale * RESOLUTION) / RESOLUTION
        if scale != self.scale:
            self._write(scale)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def _write(self, scale):
        if keras.backend.backend() == "jax":
            # The trainer holds the step's state; put it back into the
            # variables first, and the next step reads it again, scale included.
            self.model.jax_state_sync()
        for layer in self._layers:
            layer.rate_scale.assign(scale)
        self.scale = scale
