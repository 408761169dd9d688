"""Before launch: how long the cells still to train will take, from a few
timed steps of each candidate on this machine.

    plan = estimate(cells_to_train, settings, facts)
    print(describe(plan))      # "12 cells to train: about 1h40m (...)"

Per trained candidate, its network is built at the comparison's size and
compiled as a cell's is (the recipe fitted to the data: batch, epochs,
steps), then `TIMED_STEPS` training steps on random images are timed after
one untimed step, which compiles. A cell then costs

    compile + epochs * steps_per_epoch * median_step * (1 + EVALUATION_SHARE)

where EVALUATION_SHARE stands for the per-epoch and final evaluations and the
BatchNorm re-estimation (forward passes only, roughly a third of a training
step each, over a hold-out and a test split of about the training split's
size). It is a rough figure: data loading, a shared machine and the first
epoch's caches are not in it, which the report's measured times are.
"""

import dataclasses
import statistics as python_statistics
import time
import types

import keras
import numpy as np

from keras_pyramid.compare import cells as cells_module
from keras_pyramid.training import config as run_config
from keras_pyramid.training import distribution, experiment, network, progress, run_data

TIMED_STEPS = 3
EVALUATION_SHARE = 0.35


@dataclasses.dataclass(frozen=True)
class CandidateTiming:
    candidate: str
    epochs: int
    batch_size: int
    steps_per_cell: int
    compile_seconds: float
    step_seconds: float

    @property
    def cell_seconds(self):
        steps = self.steps_per_cell * self.step_seconds * (1 + EVALUATION_SHARE)
        return self.compile_seconds + steps


def estimate(cells, settings, facts):
    """{"cells": how many, "seconds": the total, "per_candidate": [...]} for
    `cells` (the ones still to train)."""
    timings = {}
    for cell in cells:
        if cell.candidate.name not in timings:
            timings[cell.candidate.name] = time_candidate(cell, settings, facts)
    total = sum(timings[cell.candidate.name].cell_seconds for cell in cells)
    return {"cells": len(cells), "seconds": total,
            "per_candidate": [dataclasses.asdict(t) | {"cell_seconds": t.cell_seconds}
                              for t in timings.values()]}


def time_candidate(cell, settings, facts):
    """The `CandidateTiming` of `cell`'s candidate (see the module doc)."""
    config = cells_module.cell_config(cell, settings, verbose=0)
    specs = run_config.check(config)
    _, splits = run_data.open_data(config)
    data = types.SimpleNamespace(train_examples=len(splits.train),
                                 recipe_dataset=_recipe_dataset(settings))
    spread = distribution.data_parallel("none")
    plan = experiment.run_recipe(config, data, spread, print_function=lambda text: None)
    steps_per_epoch = config.steps_per_epoch or len(splits.train) // plan.batch_size
    keras.backend.clear_session()
    shape = network.input_shape_of(tuple(facts["image_size"]))
    model, _ = network.build_model(config, specs.model, len(facts["class_names"]), shape,
                                   {"mean": None, "std": None}, False, plan.weight_decay)
    model.compile(optimizer=keras.optimizers.SGD(plan.learning_rate, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (plan.batch_size, *shape)).astype("float32")
    labels = rng.integers(0, len(facts["class_names"]), plan.batch_size)
    seconds = []
    for _ in range(TIMED_STEPS + 1):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        seconds.append(time.perf_counter() - started)
    step = python_statistics.median(seconds[1:])
    keras.backend.clear_session()
    return CandidateTiming(cell.candidate.name, plan.epochs, plan.batch_size,
                           plan.epochs * steps_per_epoch,
                           max(seconds[0] - step, 0.0), step)


def _recipe_dataset(settings):
    spec = settings.run.dataset
    return spec if spec in run_data.PAPER_STATISTICS_DATASETS else "other"


def describe(plan):
    """The estimate in one line, and one per candidate."""
    lines = [f"{plan['cells']} cells to train: about "
             f"{progress.format_duration(plan['seconds'])} on this machine (estimated from "
             f"{TIMED_STEPS} timed steps per candidate)"]
    for timing in plan["per_candidate"]:
        steps, epochs = timing["steps_per_cell"], timing["epochs"]
        lines.append(f"  {timing['candidate']}: {epochs} epoch{'s' if epochs != 1 else ''}, "
                     f"{steps:,} step{'s' if steps != 1 else ''} of batch "
                     f"{timing['batch_size']} per cell at {timing['step_seconds']:.3f} s, about "
                     f"{progress.format_duration(timing['cell_seconds'])} per cell")
    return "\n".join(lines)
