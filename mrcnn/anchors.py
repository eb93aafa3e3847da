"""Anchor generation in numpy, with Matterport's names, order and semantics.

Anchors are ``[A, (y1, x1, y2, x2)]`` float pixel boxes centred on feature-map cells. Within a level the
order is row-major over feature-map cells, then over ratios; levels are concatenated from P2 to P6. The
RPN's outputs are flattened in the same order, so this order must not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes"]


def generate_anchors(
    scales: float | Sequence[float],
    ratios: Sequence[float],
    shape: Sequence[int],
    feature_stride: int,
    anchor_stride: int,
) -> np.ndarray:
    """Anchors of one pyramid level.

    Args:
        scales: anchor side length(s) in pixels, e.g. 32 (one per level in Mask R-CNN).
        ratios: width/height ratios, e.g. ``[0.5, 1, 2]``.
        shape: ``(height, width)`` of the feature map in cells.
        feature_stride: pixels per feature-map cell (the level's backbone stride).
        anchor_stride: anchors at every ``anchor_stride``-th cell in each direction.

    Returns:
        ``[cells * len(scales) * len(ratios), (y1, x1, y2, x2)]`` float64 pixel boxes.
        An anchor of scale ``s`` and ratio ``r`` has height ``s / sqrt(r)`` and width ``s * sqrt(r)``.
    """
    scales, ratios = np.meshgrid(np.atleast_1d(np.asarray(scales)), np.asarray(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)

    # [cells, anchors per cell] grids of centres and sizes.
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(
    scales: Sequence[float],
    ratios: Sequence[float],
    feature_shapes: Sequence[Sequence[int]] | np.ndarray,
    feature_strides: Sequence[int],
    anchor_stride: int,
) -> np.ndarray:
    """Anchors of all pyramid levels, one scale per level.

    Args:
        scales: one anchor size in pixels per level, e.g. ``(32, 64, 128, 256, 512)``.
        ratios: width/height ratios shared by all levels.
        feature_shapes: ``[levels, (height, width)]`` from :func:`compute_backbone_shapes`.
        feature_strides: backbone stride of each level, e.g. ``[4, 8, 16, 32, 64]``.
        anchor_stride: anchors at every ``anchor_stride``-th cell.

    Returns:
        ``[A, (y1, x1, y2, x2)]`` float64 pixel boxes, levels concatenated in order.
    """
    anchors = [
        generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i], anchor_stride)
        for i in range(len(scales))
    ]
    return np.concatenate(anchors, axis=0)


def compute_backbone_shapes(config: Any, image_shape: Sequence[int] | np.ndarray) -> np.ndarray:
    """Feature-map size of each pyramid level for an input image.

    Args:
        config: a :class:`mrcnn.config.Config` (uses ``BACKBONE``, ``BACKBONE_STRIDES`` and, for a callable
            backbone, ``COMPUTE_BACKBONE_SHAPE``).
        image_shape: ``(height, width, ...)`` of the model input in pixels.

    Returns:
        ``[levels, (height, width)]`` int array: ``ceil(side / stride)`` per level for the ResNet backbones,
        or whatever ``config.COMPUTE_BACKBONE_SHAPE(image_shape)`` returns for a callable backbone.
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    return np.array(
        [
            [int(math.ceil(image_shape[0] / stride)), int(math.ceil(image_shape[1] / stride))]
            for stride in config.BACKBONE_STRIDES
        ]
    )
