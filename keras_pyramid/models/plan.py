"""The stage plan: how many units, how wide, and what their layers are named.

Architecture facts derived from a configuration alone (depth, alpha,
bottleneck, variant, widening), without building anything: the builder
(`pyramidnet`) lays the network out from them, and the converter
(`weights.convert`) keys trained tensors by the same layer names.
"""

import math

import keras

from keras_pyramid.models.blocks import UNIT_LAYERS
from keras_pyramid.models.presets import IMAGENET_STAGE_UNITS, VARIANTS, WIDENINGS
from keras_pyramid.utils.checks import check_bool, check_choice, check_number, fail, is_int

# The classifier's layer name: our models', and every model a run trains or
# serves (training.foreign names the head of others so; export serves it).
CLASSIFIER = "predictions"


def find_classifier(model):
    """The model's classifier, found by its role: the layer named CLASSIFIER
    where there is one, else the top layer when it is a Dense of >= 2 units,
    or the Dense just under a final Activation (a softmax on logits); None
    when the model ends otherwise. A user's model need not name its head as
    ours do."""
    names = [layer.name for layer in model.layers]
    if CLASSIFIER in names:
        return model.get_layer(CLASSIFIER)
    layers = model.layers
    top = layers[-1] if layers else None
    if isinstance(top, keras.layers.Activation) and len(layers) > 1:
        top = layers[-2]
    if isinstance(top, keras.layers.Dense) and top.units >= 2:
        return top
    return None


def units_per_stage(depth, bottleneck):
    """`n` of docs/architecture.md section 1 (CIFAR): `(depth - 2) / 6` basic,
    `(depth - 2) / 9` bottleneck."""
    divisor = VARIANTS["cifar"].num_stages * (3 if bottleneck else 2)
    if not is_int(depth) or depth < divisor + 2 or (depth - 2) % divisor:
        examples = "164, 200, 236, 272" if bottleneck else "110"
        fail("depth", f"be an int with (depth - 2) % {divisor} == 0 and at least "
                      f"{divisor + 2} for {'bottleneck' if bottleneck else 'basic'} units "
                      f"(e.g. {examples})", depth)
    return (depth - 2) // divisor


def stage_plan(depth, bottleneck=False, variant="cifar"):
    """The number of units in each stage.

    CIFAR: three stages of `n = units_per_stage(depth, bottleneck)`.
    ImageNet: bottleneck units only, in ResNet's four stages
    (`IMAGENET_STAGE_UNITS`, e.g. 101 -> (3, 4, 23, 3)).
    """
    check_choice("variant", variant, VARIANTS)
    check_bool("bottleneck", bottleneck)
    if variant == "cifar":
        return (units_per_stage(depth, bottleneck),) * VARIANTS["cifar"].num_stages
    if not bottleneck:
        fail("bottleneck", "be True for variant='imagenet' (the ImageNet PyramidNets have "
                           "bottleneck units only)", bottleneck)
    if not is_int(depth) or depth not in IMAGENET_STAGE_UNITS:
        fail("depth", f"be one of {tuple(IMAGENET_STAGE_UNITS)} for variant='imagenet' "
                      "(ResNet's unit counts)", depth)
    return IMAGENET_STAGE_UNITS[depth]


def unit_widths(depth, alpha, bottleneck=False, *, variant="cifar", widening="additive"):
    """Width `D_k` of every unit k = 1 .. N (inner width for bottleneck units).

    From `c_0` (16 for CIFAR, 64 for ImageNet), kept as a float:
    additive `c_k = c_{k-1} + alpha / N`, so the last unit is `c_0 + alpha`
    wide (alpha is the total widening); multiplicative
    `c_k = c_{k-1} * alpha ** (1 / N)`, so the last is `c_0 * alpha` wide.
    `D_k = floor(c_k + 0.5)` (round half up), as all official code does.
    """
    check_number("alpha", alpha, positive=True)
    check_choice("widening", widening, WIDENINGS)
    num_units = sum(stage_plan(depth, bottleneck, variant))
    width = float(VARIANTS[variant].stem_width)
    widths = []
    for _ in range(num_units):
        if widening == "additive":
            width += alpha / num_units
        else:
            width *= alpha ** (1.0 / num_units)
        widths.append(int(math.floor(width + 0.5)))
    return widths


def unit_positions(stages):
    """(stage, unit), both from 0, of every unit of a stage plan, in order."""
    return [(stage, unit) for stage, count in enumerate(stages) for unit in range(count)]


def unit_name(stage, unit):
    """`stage{S}_unit{U}`, both counted from 1: the prefix of the unit's layers."""
    return f"stage{stage + 1}_unit{unit + 1}"


def weighted_layer_names(depth, bottleneck=False, variant="cifar"):
    """The names of the conv, BatchNorm and dense layers `PyramidNet` builds, in
    order: the names trained weights are keyed by (`weights.convert`)."""
    branch = [f"{unit_name(*position)}_{suffix}"
              for position in unit_positions(stage_plan(depth, bottleneck, variant))
              for suffix in UNIT_LAYERS[bottleneck]]
    return ["stem_conv", "stem_bn", *branch, "head_bn", CLASSIFIER]
