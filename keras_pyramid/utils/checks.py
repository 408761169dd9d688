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


def check_number(argument, value, minimum=None, maximum=None, positive=False, below=None):
    """A real number x with minimum <= x <= maximum and x < below (each bound
    may be None); `positive`: x > 0."""
    ok = is_number(value) and (minimum is None or value >= minimum) and (
        maximum is None or value <= maximum) and (below is None or value < below) and (
        not positive or value > 0)
    if not ok:
        fail(argument, "be a number" + _bounds(minimum, maximum, positive, below), value)
    return value


def _bounds(minimum, maximum, positive, below):
    """" in [0, 1]", " in [0, 1)", " > 0", " >= 2", " > 0 and < 1e9"...: the
    requirement's words for check_number's bounds."""
    low = "> 0" if positive else None if minimum is None else f">= {minimum}"
    high = f"< {below}" if below is not None else None if maximum is None else f"<= {maximum}"
    if low and high and not positive:
        return f" in [{minimum}, {maximum if below is None else below}" + (
            "]" if below is None else ")")
    return "".join(f" {word}" for word in (low, "and" if low and high else None, high) if word)


def check_shape(argument, value, length):
    """A sequence of `length` ints >= 1 (an image's (height, width)), as a tuple."""
    try:
        sizes = tuple(value)
    except TypeError:
        sizes = ()
    if len(sizes) != length or not all(is_int(size) and size >= 1 for size in sizes):
        fail(argument, f"be {length} ints >= 1", value)
    return tuple(int(size) for size in sizes)


def check_rate(argument, value):
    """A probability of dropping or changing something: a float in [0, 1)."""
    if not is_number(value) or not 0.0 <= value < 1.0:
        fail(argument, "be a float in [0, 1)", value)
    return float(value)


def check_choice(argument, value, choices):
    if value not in tuple(choices):
        fail(argument, f"be one of {tuple(choices)}", value)
    return value
