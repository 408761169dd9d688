"""The drop-rate rule of a network: which rates a regularization takes, and
how the last unit's rate spreads over the units.

    check_drop_rates("sepdrop", 0.5, 0.3)   # the builder, hparams and a run's config call it
    linear_drop_rates(3, 0.6)               # [0.2, 0.4, 0.6]
"""

from keras_pyramid.models.regularizers import check_regularization
from keras_pyramid.utils.checks import check_int, check_rate, fail

# The papers' last-unit drop probability (`drop_rate=None` means it).
DEFAULT_DROP_RATE = 0.5
# The one regularizer with a second gate, on the new channels (PyramidSepDrop).
TWO_GATES = "sepdrop"


def check_drop_rates(regularization, drop_rate, new_drop_rate):
    """Refuses rates the network cannot take; returns `(drop_rate, new_drop_rate)`.

    `regularization` is the model's: None or one of `REGULARIZED`. Each rate
    is None (the model's default: `DEFAULT_DROP_RATE`, and for
    `new_drop_rate` tied to `drop_rate`) or a float in [0, 1). Only
    "sepdrop" has a gate on the new channels, so only it takes a
    `new_drop_rate`. The ValueError names the argument and the value.
    """
    check_regularization(regularization)
    if drop_rate is not None:
        drop_rate = check_rate("drop_rate", drop_rate)
    if new_drop_rate is not None:
        new_drop_rate = check_rate("new_drop_rate", new_drop_rate)
        if regularization != TWO_GATES:
            fail("new_drop_rate", f"come with regularization={TWO_GATES!r}, the only regularizer "
                                  f"with a gate on the new channels (regularization="
                                  f"{regularization!r})", new_drop_rate)
    return drop_rate, new_drop_rate


def linear_drop_rates(num_units, last_drop_rate):
    """Drop probability of every residual unit, first to last.

    Stochastic depth linear decay rule (Huang et al. 2016; docs/architecture.md section 2):
    `d_l = (l / L) * d_L` for unit `l = 1 .. L`, counted over the whole
    network, so the first unit is almost never dropped and the last one is
    dropped with probability `d_L`.
    """
    check_rate("last_drop_rate", last_drop_rate)
    check_int("num_units", num_units, minimum=1)
    return [last_drop_rate * unit / num_units for unit in range(1, num_units + 1)]
