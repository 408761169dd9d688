"""Numbers as the comparison report shows them; None is MISSING everywhere.

Errors are percent with 2 decimals, differences signed points with 2
decimals, latencies ms with 2, sizes MiB with 1, counts with separators,
cost ratios "1.04x". An interval is never shown as "x to x": a missing end
is MISSING, and ends that print alike print once.
"""

from keras_pyramid.training.progress import format_duration

MISSING = "—"


def shown(value, form):
    """`form(value)`, or MISSING for None."""
    return MISSING if value is None else form(value)


def percent(fraction):
    """An error: 0.3125 -> "31.25"."""
    return shown(fraction, lambda value: f"{100 * value:.2f}")


def points(fraction):
    """A difference of errors in points, signed: -0.0125 -> "-1.25"."""
    return shown(fraction, lambda value: f"{100 * value:+.2f}")


def interval(low, high, form):
    """The interval as "low to high" in `form`; MISSING when either end is.
    Ends that print alike (a width below the precision shown) print once,
    said so: "x to x" would claim an interval of no width."""
    if low is None or high is None:
        return MISSING
    low, high = form(low), form(high)
    return f"{low} (narrower than shown)" if low == high else f"{low} to {high}"


def joined(values, form=str):
    """The values in `form`, comma-separated; MISSING for none."""
    return ", ".join(form(value) for value in values) if values else MISSING


def ratio(value):
    """A cost ratio, candidate over baseline: 1.0412 -> "1.04x"."""
    return shown(value, lambda number: f"{number:.2f}x")


def margin(fraction):
    """A margin in points, unsigned, as few decimals as it has: 0.005 -> "0.5"."""
    return shown(fraction, lambda value: f"{100 * value:g}")


def p_value(value):
    """A p-value: 3 decimals, "<0.001" below that."""
    return shown(value, lambda p: "<0.001" if p < 0.001 else f"{p:.3f}")


def count(value):
    """A count with thousands separators: 75000 -> "75,000"."""
    return shown(value, lambda number: f"{number:,.0f}")


def mebibytes(value):
    """Bytes in MiB, 1 decimal."""
    return shown(value, lambda size: f"{size / 2 ** 20:,.1f}")


def milliseconds(value):
    """A latency in ms, 2 decimals."""
    return shown(value, lambda ms: f"{ms:.2f}")


def duration(seconds):
    """Seconds, human-readable: 300000 -> "3d11h"."""
    return shown(seconds, format_duration)


def images_per_second(value):
    """A speed: whole images from 100/s, 1 decimal below (a slow CPU's 12.5)."""
    return shown(value, lambda speed: f"{speed:,.0f}" if speed >= 100 else f"{speed:.1f}")


def seconds(value):
    """Seconds, 1 decimal."""
    return shown(value, lambda seconds: f"{seconds:.1f}")
