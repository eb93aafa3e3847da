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

__all__ = ["TINY_SETTINGS", "small_backbone", "small_backbone_shapes", "tiny_config"]


def small_backbone_shapes(image_shape) -> np.ndarray:
    """Feature-map sizes of the FPN levels for ``small_backbone``: [5, (height, width)]."""
    return np.array([[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)] for s in SMALL_STRIDES])


# A whole Mask R-CNN that builds and takes a training step in seconds: the small backbone at 64x64 with narrow
# heads and few anchors, ROIs and instances.
TINY_SETTINGS = dict(
    NAME="tiny",
    BACKBONE="small",
    NUM_CLASSES=4,
    IMAGES_PER_GPU=2,
    IMAGE_MIN_DIM=64,
    IMAGE_MAX_DIM=64,
    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
    TOP_DOWN_PYRAMID_SIZE=32,
    FPN_CLASSIF_FC_LAYERS_SIZE=64,
    RPN_TRAIN_ANCHORS_PER_IMAGE=32,
    PRE_NMS_LIMIT=300,
    POST_NMS_ROIS_TRAINING=64,
    POST_NMS_ROIS_INFERENCE=50,
    TRAIN_ROIS_PER_IMAGE=16,
    MAX_GT_INSTANCES=8,
    MINI_MASK_SHAPE=(16, 16),
    DETECTION_MAX_INSTANCES=8,
    STEPS_PER_EPOCH=2,
    VALIDATION_STEPS=1,
)


def tiny_config(**overrides):
    """A :class:`mrcnn.config.Config` with :data:`TINY_SETTINGS`, changed by ``overrides`` (setting=value).

    ``config.origin(name)`` says "mrcnn.testing.TINY_SETTINGS" or "tiny_config override" for those settings.
    """
    from mrcnn.config import Config, build_config

    return build_config(
        Config, ("mrcnn.testing.TINY_SETTINGS", TINY_SETTINGS), ("tiny_config override", overrides)
    )
