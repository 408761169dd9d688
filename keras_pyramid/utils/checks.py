"""Argument checks with one message shape, keras.applications' way:

    `drop_rate` must be a float in [0, 1). Received: drop_rate=1.5

Each raises ValueError naming the ARGUMENT (the library's name, never a
command-line flag: programs map arguments to their flags) and the value.
`bool` is never accepted as a number (Python counts True as 1).
"""

import numbers


def fail(argument, requirement, value):
    """Raises the one message shape: "`ARG` must REQUIREMENT. Received: ARG=VALUE"."""
    raise ValueError(f"`{argument}` must {requirement}. Received: {argument}={value!r}")


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_bool(argument, value):
    if not isinstance(value, bool):
        fail(argument, "be True or False", value)
    return value


def check_int(argument, value, minimum=None, maximum=None):
    """An int in [minimum, maximum] (either bound may be None)."""
    low_ok = minimum is None or (is_int(value) and value >= minimum)
    high_ok = maximum is None or (is_int(value) and value <= maximum)
    if not (is_int(value) and low_ok and high_ok):
        bounds = [f">= {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
        fail(argument, "be an int" + (" " + " and ".join(bounds) if bounds else ""), value)
    return int(value)


def check_number(argument, value, minimum=None, maximum=None, positive=False):
    """A real number in [minimum, maximum]; `positive`: > 0."""
    ok = is_number(value) and (minimum is None or value >= minimum) and (
        maximum is None or value <= maximum) and (not positive or value > 0)
    if not ok:
        if positive:
            requirement = "be a number > 0"
        elif minimum is not None and maximum is not None:
            requirement = f"be a number in [{minimum}, {maximum}]"
        elif minimum is not None:
            requirement = f"be a number >= {minimum}"
        elif maximum is not None:
            requirement = f"be a number <= {maximum}"
        else:
            requirement = "be a number"
        fail(argument, requirement, value)
    return value


def check_rate(argument, value):
    """A probability of dropping or changing something: a float in [0, 1)."""
    if not is_number(value) or not 0.0 <= value < 1.0:
        fail(argument, "be a float in [0, 1)", value)
    return float(value)


def check_choice(argument, value, choices):
    if value not in tuple(choices):
        fail(argument, f"be one of {tuple(choices)}", value)
    return value
