"""The papers' CIFAR training recipe (SPEC section 4), as data plus one function.

SGD with Nesterov momentum 0.9, batch 128, 300 epochs, learning rate 0.1
(CIFAR-10) or 0.5 (CIFAR-100) times 0.1 at 50% and 75% of training, and a
coupled weight decay of 1e-4 on every parameter. The decay is not the
optimizer's: Keras' `SGD(weight_decay=...)` is decoupled and about 10x weaker
under momentum 0.9, so the model carries an L2 penalty `1e-4 / 2 * sum(w^2)`
(see `PyramidNet(weight_decay=...)`), whose gradient is Torch's coupled decay.
"""

import dataclasses

import keras

# Learning rate by dataset (PyramidNet paper; the SepDrop code used 0.5 for both).
PAPER_LEARNING_RATES = {"cifar10": 0.1, "cifar100": 0.5}


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int = 300
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9  # Nesterov, dampening 0
    nesterov: bool = True
    weight_decay: float = 1e-4  # coupled (Torch-style), on all parameters
    milestones: tuple = (0.5, 0.75)  # fractions of training where the lr decays
    decay_factor: float = 0.1

    def __post_init__(self):
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be an int >= 1. Received: {field}={value!r}")
        if not self.learning_rate > 0:
            raise ValueError(
                f"`learning_rate` must be > 0. Received: learning_rate={self.learning_rate!r}"
            )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(
                f"`weight_decay` must be >= 0. Received: weight_decay={self.weight_decay!r}"
            )

    def milestone_epochs(self):
        """The epochs (0-based) from which each decay applies: 150 and 225 of 300."""
        return [int(round(fraction * self.epochs)) for fraction in self.milestones]


def paper_recipe(dataset, **overrides):
    """The recipe for "cifar10" or "cifar100"; `None` overrides keep the default."""
    if dataset not in PAPER_LEARNING_RATES:
        raise ValueError(
            f"`dataset` must be one of {sorted(PAPER_LEARNING_RATES)}. "
            f"Received: dataset={dataset!r}"
        )
    arguments = {"learning_rate": PAPER_LEARNING_RATES[dataset]}
    arguments.update({k: v for k, v in overrides.items() if v is not None})
    return Recipe(**arguments)


def learning_rate_schedule(recipe, steps_per_epoch):
    """`lr(step) = initial * factor ** (number of milestones m with step >= m * S)`.

    Keras' `PiecewiseConstantDecay` (a built-in class, so a saved model loads
    with `compile=True` in any process) takes value `i` while
    `boundaries[i - 1] < step <= boundaries[i]`; optimizer steps are integers,
    so boundaries `m * S - 1` make epoch `m` (0-based) the first at the
    decayed rate: Torch's `MultiStepLR([150, 225], 0.1)` stepped per epoch.
    """
    boundaries = [epoch * steps_per_epoch - 1 for epoch in recipe.milestone_epochs()]
    values = [recipe.learning_rate * recipe.decay_factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(recipe, steps_per_epoch):
    """SGD with Nesterov momentum on the step-decay schedule.

    Keras' Nesterov update (v = m v - lr g; w += m v - lr g) equals Torch's
    (b = m b + g; w -= lr (g + m b)) at a constant learning rate.
    """
    return keras.optimizers.SGD(
        learning_rate=learning_rate_schedule(recipe, steps_per_epoch),
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )


@keras.saving.register_keras_serializable(package="keras_pyramid")
class StepDecay:
    """Loads the schedule of a `model.keras` written before 0.1.0's
    `PiecewiseConstantDecay`: its config (`initial_learning_rate`,
    `boundaries`, `factor`, with `factor ** (number of boundaries <= step)`)
    becomes the same `PiecewiseConstantDecay`. Never built by this package."""

    @classmethod
    def from_config(cls, config):
        boundaries = [int(b) - 1 for b in config["boundaries"]]
        values = [config["initial_learning_rate"] * config["factor"] ** i
                  for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)

    def get_config(self):  # Keras registers only classes that have one
        raise NotImplementedError("StepDecay only loads old files: see from_config")
