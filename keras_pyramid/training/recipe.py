"""The training recipes, as data plus the functions that turn one into an optimizer.

`paper_recipe` is the papers' (docs/architecture.md section 4): SGD with Nesterov momentum
0.9, batch 128, 300 epochs, learning rate 0.1 (CIFAR-10) or 0.5 (CIFAR-100)
times 0.1 at 50% and 75% of training, and a coupled weight decay of 1e-4 on
every parameter. The decay is not the optimizer's: Keras' `SGD(weight_decay=...)`
is decoupled and about 10x weaker under momentum 0.9, so the model carries an
L2 penalty `1e-4 / 2 * sum(w^2)` (see `PyramidNet(weight_decay=...)`), whose
gradient is Torch's coupled decay.

`finetune_recipe` starts from trained weights (see `keras_pyramid.training.finetune`):
a 10x lower rate on a cosine decay, fewer epochs, smaller batches, and the
backbone frozen for the first epochs. `recipe_named` picks one by name.
"""

import dataclasses

import keras

from keras_pyramid.utils import checks

# Learning rate by dataset (PyramidNet paper; the SepDrop code used 0.5 for both).
PAPER_LEARNING_RATES = {"cifar10": 0.1, "cifar100": 0.5}
# Any other dataset (a tfds name, a folder): the paper's CIFAR-10 rate. 0.5
# was the paper's choice for CIFAR-100 alone; 0.1 is also the rate SGD-trained
# ResNets start from (He et al. 2016), so it is the safer guess for data of
# unknown difficulty (a rate too high diverges, one too low only trains slower).
DEFAULT_PAPER_LEARNING_RATE = 0.1
SCHEDULES = ("step", "cosine")
RECIPES = ("paper", "finetune")


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int = 300
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9  # Nesterov, dampening 0
    nesterov: bool = True
    weight_decay: float = 1e-4  # coupled (Torch-style), on all parameters
    schedule: str = "step"  # "step": x decay_factor at milestones; "cosine": to 0
    milestones: tuple = (0.5, 0.75)  # fractions of training where the lr decays ("step")
    decay_factor: float = 0.1
    # The fraction of the epochs, at the start, that trains the classifier
    # alone on the frozen backbone (`finetune.set_backbone_trainable`): a
    # fraction, as the milestones, so that it scales with `epochs`. 0 trains
    # everything from the first step, 1 only ever the classifier.
    freeze_backbone: float = 0.0

    def __post_init__(self):
        for field in ("epochs", "batch_size"):
            checks.check_int(field, getattr(self, field), minimum=1)
        checks.check_number("freeze_backbone", self.freeze_backbone, minimum=0, maximum=1)
        checks.check_choice("schedule", self.schedule, SCHEDULES)
        checks.check_number("learning_rate", self.learning_rate, positive=True)
        checks.check_number("momentum", self.momentum, minimum=0, below=1)
        checks.check_number("weight_decay", self.weight_decay, minimum=0)

    def milestone_epochs(self):
        """The epochs (0-based) from which each decay applies: 150 and 225 of 300."""
        return [int(round(fraction * self.epochs)) for fraction in self.milestones]

    def __str__(self):
        """The repr without `freeze_backbone`: a run states its head-only
        epochs itself ("1 of 2 epochs"), which a flag may set, not 0.1667."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                  if field.name != "freeze_backbone"}
        return f"Recipe({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    def frozen_epochs(self):
        """How many epochs, from the first, train the classifier alone: 5 of 30."""
        return int(round(self.freeze_backbone * self.epochs))


def _recipe(defaults, overrides):
    """A Recipe of `defaults` with the overrides that are not None."""
    return Recipe(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})


def paper_recipe(dataset, **overrides):
    """The papers' recipe for `dataset` (any name: "cifar100" gets the rate
    0.5, every other 0.1); `None` overrides keep the default."""
    if not isinstance(dataset, str):
        checks.fail("dataset", "be a dataset name", dataset)
    rate = PAPER_LEARNING_RATES.get(dataset, DEFAULT_PAPER_LEARNING_RATE)
    return _recipe({"learning_rate": rate}, overrides)


# Fine-tuning from trained weights: every value with its reason. Not tuned
# here (no dataset to tune on); starting points to override.
FINETUNE_DEFAULTS = {
    "momentum": 0.9,  # SGD with Nesterov momentum, as the paper trains
    "nesterov": True,
    # 10x below the paper's from-scratch 0.1: the usual transfer-learning
    # choice (a low rate in Keras' transfer-learning guide and in timm's
    # fine-tuning practice), so that the gradients of a random head do not
    # wreck trained features.
    "learning_rate": 0.01,
    # Cosine to 0 over all steps (timm's default): no milestones to place
    # in a run this short.
    "schedule": "cosine",
    "epochs": 30,  # a tenth of the from-scratch 300: the features are trained
    "batch_size": 64,  # small datasets: enough steps per epoch
    "weight_decay": 1e-4,  # coupled (an L2 penalty in the model), as the paper
    # The new head alone first, on the frozen backbone (linear probing, then
    # fine-tuning: Kumar et al., ICLR 2022, "Fine-Tuning can Distort
    # Pretrained Features"; Keras' guide trains the head on a frozen base
    # first). A sixth of the epochs: 5 of 30.
    "freeze_backbone": 1 / 6,
}


def finetune_recipe(**overrides):
    """The fine-tuning recipe (`FINETUNE_DEFAULTS`); `None` overrides keep the default."""
    return _recipe(FINETUNE_DEFAULTS, overrides)


def recipe_named(name, dataset, **overrides):
    """The recipe "paper" (for `dataset`) or "finetune"; `None` overrides keep the default."""
    checks.check_choice("recipe", name, RECIPES)
    if name == "paper":
        return paper_recipe(dataset, **overrides)
    return finetune_recipe(**overrides)


# Small data: the papers' batch of 128 gives a 200-image folder one update per
# epoch, and its runs stay at chance. A recipe's batch is halved until an
# epoch has this many steps, down to MIN_BATCH_SIZE (BatchNorm's statistics
# grow noisy below it).
MIN_STEPS_PER_EPOCH = 10
MIN_BATCH_SIZE = 8


def fitted_to_data(recipe, train_examples, keep_batch_size=False, keep_learning_rate=False):
    """(recipe, note): `recipe` with its batch size B halved while
    `train_examples / B < MIN_STEPS_PER_EPOCH` and `B / 2 >= MIN_BATCH_SIZE`,
    and its learning rate scaled by the same factor (the linear scaling rule,
    Goyal et al. 2017: lr proportional to B). `note` says what was chosen and
    why (None when nothing changed). `keep_*`: values the user set stay."""
    batch_size = recipe.batch_size
    while (not keep_batch_size and train_examples / batch_size < MIN_STEPS_PER_EPOCH
           and batch_size // 2 >= MIN_BATCH_SIZE):
        batch_size //= 2
    if batch_size == recipe.batch_size:
        return recipe, None
    scale = batch_size / recipe.batch_size
    learning_rate = recipe.learning_rate if keep_learning_rate else recipe.learning_rate * scale
    steps = train_examples // recipe.batch_size
    note = (f"batch size {batch_size} instead of the recipe's {recipe.batch_size}: "
            f"{train_examples:,} training images would give {steps} "
            f"step{'' if steps == 1 else 's'} per epoch")
    if not keep_learning_rate:
        note += (f"; learning rate {learning_rate:g} ({recipe.learning_rate:g} x "
                 f"{batch_size}/{recipe.batch_size}, the linear scaling rule)")
    note += ". `batch_size` sets it"
    return dataclasses.replace(recipe, batch_size=batch_size, learning_rate=learning_rate), note


def learning_rate_schedule(recipe, steps_per_epoch):
    """The recipe's learning rate by optimizer step (S = `steps_per_epoch`).

    "cosine": Keras' `CosineDecay` from the rate at step 0 to 0 at step
    `epochs * S` (half the rate half-way).

    "step": `lr(step) = initial * factor ** (number of milestones m with
    step >= m * S)`. Keras' `PiecewiseConstantDecay` takes value `i` while
    `boundaries[i - 1] < step <= boundaries[i]`; optimizer steps are integers,
    so boundaries `m * S - 1` make epoch `m` (0-based) the first at the
    decayed rate: Torch's `MultiStepLR([150, 225], 0.1)` stepped per epoch.

    Both are built-in Keras classes: a saved model loads with `compile=True`
    in any process.
    """
    if recipe.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            recipe.learning_rate, decay_steps=recipe.epochs * steps_per_epoch, alpha=0.0)
    boundaries = [epoch * steps_per_epoch - 1 for epoch in recipe.milestone_epochs()]
    values = [recipe.learning_rate * recipe.decay_factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(recipe, steps_per_epoch):
    """SGD with Nesterov momentum on the recipe's schedule.

    Keras' Nesterov update (v = m v - lr g; w += m v - lr g) equals Torch's
    (b = m b + g; w -= lr (g + m b)) at a constant learning rate.
    """
    return keras.optimizers.SGD(
        learning_rate=learning_rate_schedule(recipe, steps_per_epoch),
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )

