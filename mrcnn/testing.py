"""Small models for tests, benchmarks and quick experiments on a CPU.

``small_backbone`` is a five-stage strided CNN that stands in for ResNet (``config.BACKBONE = small_backbone``
with ``COMPUTE_BACKBONE_SHAPE = small_backbone_shapes``): the whole Mask R-CNN then builds and trains in seconds,
so tests can exercise training, checkpoints and detection without ResNet's cost.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from mrcnn.modeling.layers import BatchNorm

SMALL_STRIDES = (4, 8, 16, 32, 64)


def small_backbone(
    input_image, stage5: bool = True, train_bn: bool = True, widths=(16, 32, 64, 96, 128)
) -> list:
    """[C1..C5] at strides 2, 4, 8, 16, 32 from two 3x3 convolutions per stage (layer names ``small{i}_*``)."""
    outputs = []
    x = input_image
    for i, filters in enumerate(widths, start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"small{i}_conv")(x)
        x = BatchNorm(name=f"small{i}_bn", train_bn=train_bn)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"small{i}_conv2")(x)
        x = BatchNorm(name=f"small{i}_bn2", train_bn=train_bn)(x)
        x = keras.layers.Activation("relu")(x)
        outputs.append(x)
    return outputs


def small_backbone_shapes(image_shape) -> np.ndarray:
    """Feature-map sizes of the FPN levels for ``small_backbone``: [5, (height, width)]."""
    return np.array([[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)] for s in SMALL_STRIDES])
