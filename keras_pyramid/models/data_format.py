"""Where the channel and spatial axes of an image batch are, for either data format."""

import keras

from keras_pyramid.utils.checks import check_choice

DATA_FORMATS = ("channels_last", "channels_first")


def standardize_data_format(data_format):
    """`data_format`, or Keras' `image_data_format()` for None; checked."""
    return check_choice("data_format", data_format or keras.config.image_data_format(),
                        DATA_FORMATS)


def channel_axis(data_format):
    """The channel axis of a (batch, ...) tensor: -1 (NHWC) or 1 (NCHW)."""
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format):
    """The (height, width) axes of a (batch, ...) tensor."""
    return (1, 2) if data_format == "channels_last" else (2, 3)
