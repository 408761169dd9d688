"""The public layers: `keras_pyramid.layers.PyramidSepDrop` and its family.

The regularizers and their pure functions live in
`keras_pyramid/models/regularizers.py`, the shortcut in
`keras_pyramid/models/shortcut.py` and the drop-rate rule in
`keras_pyramid/models/drop_rates.py`; this module keeps the public names
where users import them (as `keras.layers` does for Keras').
"""

from keras_pyramid.models.drop_rates import linear_drop_rates
from keras_pyramid.models.regularizers import (
    REGULARIZATIONS,
    PyramidSepDrop,
    ShakeDrop,
    StochasticDepth,
    bernoulli_gate,
    make_regularizer,
    separated_stochastic_depth,
    shake_drop,
    stochastic_depth,
)
from keras_pyramid.models.shortcut import PyramidShortcut

__all__ = [
    "REGULARIZATIONS",
    "PyramidSepDrop",
    "PyramidShortcut",
    "ShakeDrop",
    "StochasticDepth",
    "bernoulli_gate",
    "linear_drop_rates",
    "make_regularizer",
    "separated_stochastic_depth",
    "shake_drop",
    "stochastic_depth",
]
