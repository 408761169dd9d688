"""The stage plan's layer names are the builder's: trained tensors keyed by
them (weights.convert) fit every network of the configuration."""

import keras_pyramid
from keras_pyramid.models.plan import weighted_layer_names
from keras_pyramid.weights.assign import weighted_layers


def test_the_weighted_layer_names_are_the_builders():
    for depth, bottleneck in ((8, False), (11, True)):
        for skip_dropped in (False, True):
            model = keras_pyramid.PyramidNet(depth, 24, bottleneck, regularization="sepdrop",
                                             skip_dropped=skip_dropped)
            assert [layer.name for layer in weighted_layers(model)] == weighted_layer_names(
                depth, bottleneck)
