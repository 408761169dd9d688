"""keras-pyramid: PyramidNet and its stochastic-depth variants for Keras 3.

Importing the package registers its layers with Keras, so a saved `.keras`
file loads, compiled, after `import keras_pyramid` alone.
"""

import importlib.metadata

from keras_pyramid import applications, layers
from keras_pyramid.applications import PyramidNet, build, list_models
from keras_pyramid.layers import (
    PyramidSepDrop,
    PyramidShortcut,
    ShakeDrop,
    StochasticDepth,
    linear_drop_rates,
)
from keras_pyramid.models.pyramidnet import unit_widths
from keras_pyramid.training import recipe

# One source: pyproject.toml, read from the installed metadata.
__version__ = importlib.metadata.version("keras-pyramid")

__all__ = [
    "PyramidNet",
    "PyramidSepDrop",
    "PyramidShortcut",
    "ShakeDrop",
    "StochasticDepth",
    "applications",
    "build",
    "layers",
    "linear_drop_rates",
    "list_models",
    "recipe",
    "unit_widths",
]
