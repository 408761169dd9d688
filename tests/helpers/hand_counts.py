"""Multiply-adds counted by hand from an architecture, independently of
keras_pyramid.compare.macs (which walks the layers): what its results must equal."""

import math


def pyramidnet_multiply_adds(size, widths, bottleneck, classes=10):
    """A CIFAR PyramidNet counted from its architecture, one unit per stage
    (the tiny models): a 3x3 stem conv 3 -> 16 on size x size, then per unit
    of width w (the first of every stage after the first has stride 2,
    P_in -> P_out = ceil(side / 2)^2):
        basic:      3x3 C -> w (strided), 3x3 w -> w:   P_out * 9 * (C * w + w * w)
        bottleneck: 1x1 C -> w at P_in, 3x3 w -> w (strided), 1x1 w -> 4w:
                    P_in * C * w + P_out * (9 * w * w + w * 4w)
    and the classifier C * classes. Shortcuts, BN, ReLU, pooling and adds: none."""
    side, channels = size, 16
    total = side * side * 9 * 3 * channels
    for index, width in enumerate(widths):
        p_in = side * side
        side = math.ceil(side / 2) if index > 0 else side
        p_out = side * side
        if bottleneck:
            total += p_in * channels * width + p_out * (9 * width * width + width * 4 * width)
            channels = 4 * width
        else:
            total += p_out * 9 * (channels * width + width * width)
            channels = width
    return total + channels * classes


# MobileNet v1 (alpha 1): after the 3x3 stem conv 3 -> 32 of stride 2, 13
# depthwise-separable blocks (stride, output channels).
MOBILENET_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
                    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))


def mobilenet_multiply_adds(size, classes=10):
    """keras.applications.MobileNet (alpha 1) on size x size: every stride 2
    gives ceil(side / 2) (Keras pads then convolves "valid"); each block is a
    3x3 depthwise conv P_out * 9 * C then a 1x1 conv P_out * C * C_out; the
    classifier (a 1x1 conv on the pooled features) 1024 * classes."""
    side = math.ceil(size / 2)
    total, channels = side * side * 9 * 3 * 32, 32
    for stride, width in MOBILENET_BLOCKS:
        side = math.ceil(side / stride)
        total += side * side * (9 * channels + channels * width)
        channels = width
    return total + channels * classes
