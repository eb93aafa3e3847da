"""Small models for tests, benchmarks and quick experiments on a CPU.

``BACKBONE = "small"`` selects :func:`mrcnn.modeling.backbone.small_cnn_graph`, a five-stage CNN at ResNet's
strides: the whole Mask R-CNN then builds and trains in seconds. ``small_backbone`` is the same network as a
callable (for code that exercises ``BACKBONE`` callables) and ``small_backbone_shapes`` its
``COMPUTE_BACKBONE_SHAPE``.
"""

from __future__ import annotations

import math

import numpy as np

from mrcnn.modeling.backbone import small_cnn_graph as small_backbone

SMALL_STRIDES = (4, 8, 16, 32, 64)

__all__ = ["small_backbone", "small_backbone_shapes"]


def small_backbone_shapes(image_shape) -> np.ndarray:
    """Feature-map sizes of the FPN levels for ``small_backbone``: [5, (height, width)]."""
    return np.array([[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)] for s in SMALL_STRIDES])
