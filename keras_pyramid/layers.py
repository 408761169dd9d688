"""The public layers: `keras_pyramid.layers.PyramidSepDrop` and its family.

The layers live in `keras_pyramid/models/layers.py`; this module keeps the
public names where users import them (as `keras.layers` does for Keras').
"""

from keras_pyramid.models.layers import (
    REGULARIZATIONS,
    PyramidSepDrop,
    PyramidShortcut,
    ShakeDrop,
    StochasticDepth,
    bernoulli_gate,
    linear_drop_rates,
    make_regularizer,
)

__all__ = [
    "REGULARIZATIONS",
    "PyramidSepDrop",
    "PyramidShortcut",
    "ShakeDrop",
    "StochasticDepth",
    "bernoulli_gate",
    "linear_drop_rates",
    "make_regularizer",
]
