"""A PyramidNet described by hyperparameter values: what a search tunes and
what `applications/train.py --hparams FILE` reads (no KerasTuner needed).

    {"depth": 110, "alpha": 48, "regularization": "sepdrop", "drop_rate": 0.5,
     "new_drop_rate": null, "learning_rate": 0.1, "batch_size": 128}

`new_drop_rate` (PyramidSepDrop's rate for the new channels, this project's
extension) is optional: null, or absent, ties it to `drop_rate` (the paper).
"""

import json
import math

from keras_pyramid.models.drop_rates import TWO_GATES
from keras_pyramid.models.presets import default_name
from keras_pyramid.models.pyramidnet import PyramidNet
from keras_pyramid.models.regularizers import REGULARIZED

HPARAM_NAMES = ("depth", "alpha", "regularization", "drop_rate", "new_drop_rate",
                "learning_rate", "batch_size")
# Names a file or a search may leave out, and what that means: tied rates.
OPTIONAL_DEFAULTS = {"new_drop_rate": None}
# `regularizers.REGULARIZATIONS` as a file or a search writes it: "none" for None.
REGULARIZATIONS = ("none", *REGULARIZED)


def effective(values):
    """`values` with `new_drop_rate` None unless the model is "sepdrop"
    (`drop_rates.TWO_GATES`): the other regularizers have no new-channels
    gate, so a value a search drew for them means nothing (and is not
    reported or written). A model given one is refused (`check_drop_rates`)."""
    if values.get("regularization") != TWO_GATES and values.get("new_drop_rate") is not None:
        return {**values, "new_drop_rate": None}
    return values


def model_name(values):
    """`pyramidnet{depth}_a{alpha}[_{regularization}]`, as in the registry."""
    regularization = None if values["regularization"] == "none" else values["regularization"]
    return default_name(values["depth"], values["alpha"], regularization)


def build_model(values, classes=10, input_shape=None, weight_decay=0.0, seed=None,
                skip_dropped=False, **arguments):
    """The PyramidNet that a set of hyperparameter values describes; other
    `arguments` (mean, std, ...) go to `PyramidNet`, whose `check_drop_rates`
    refuses a `new_drop_rate` for a model without that gate (pass `effective`
    values to drop it instead)."""
    regularization = None if values["regularization"] == "none" else values["regularization"]
    return PyramidNet(
        values["depth"], values["alpha"], regularization=regularization,
        drop_rate=values["drop_rate"] if regularization else 0.0,
        new_drop_rate=values.get("new_drop_rate"),
        input_shape=input_shape, classes=classes, weight_decay=weight_decay, seed=seed,
        name=model_name(values), skip_dropped=skip_dropped, **arguments,
    )


def parse_value(name, text):
    """One value of hyperparameter `name`, typed and checked."""
    try:
        if name in ("depth", "alpha", "batch_size"):
            value = int(text)
        elif name in ("drop_rate", "new_drop_rate", "learning_rate"):
            value = float(text)
        else:
            value = text
    except ValueError:
        raise ValueError(
            f"hyperparameter {name!r} takes numbers. Received: {name}={text!r}") from None
    problem = None
    if isinstance(value, float) and not math.isfinite(value):
        problem = "a finite number"
    elif name == "depth" and not (value >= 8 and (value - 2) % 6 == 0):
        problem = "a basic-unit depth 6n + 2 >= 8 (e.g. 20, 110)"
    elif name == "alpha" and value < 1:
        problem = "an int >= 1"
    elif name == "regularization" and value not in REGULARIZATIONS:
        problem = f"one of {REGULARIZATIONS}"
    elif name in ("drop_rate", "new_drop_rate") and not 0.0 <= value < 1.0:
        problem = "in [0, 1)"
    elif name == "learning_rate" and not value > 0:
        problem = "> 0"
    elif name == "batch_size" and value < 1:
        problem = "an int >= 1"
    if problem:
        raise ValueError(f"hyperparameter {name!r} must be {problem}. Received: {name}={text!r}")
    return value


def load_hparams(path):
    """Reads and checks an `--hparams` file (what `best_hparams` wrote)."""
    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the hyperparameters file {path!r}: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path!r} must hold a JSON object of {HPARAM_NAMES}")
    values = {**OPTIONAL_DEFAULTS, **values}
    missing = [name for name in HPARAM_NAMES if name not in values]
    unknown = [name for name in values if name not in HPARAM_NAMES]
    if missing or unknown:
        raise ValueError(f"{path!r} must hold exactly {HPARAM_NAMES} "
                         f"({', '.join(OPTIONAL_DEFAULTS)} may be left out); "
                         f"missing {missing}, unknown {unknown}")
    return effective({name: None if values[name] is None and name in OPTIONAL_DEFAULTS
                      else parse_value(name, str(values[name])) for name in HPARAM_NAMES})
