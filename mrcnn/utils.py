"""Matterport's ``mrcnn.utils`` namespace: ``from mrcnn import utils; utils.compute_iou(...)`` works as there.

Everything is defined in the focused modules (boxes, masks, anchors, images, metrics, download, log) and
re-exported here. ``batch_slice`` and ``box_refinement_graph`` (TensorFlow helpers) are loaded on first use so
that importing this module does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

from mrcnn.anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors
from mrcnn.boxes import (
    apply_box_deltas,
    box_refinement,
    compute_iou,
    compute_overlaps,
    denorm_boxes,
    extract_bboxes,
    non_max_suppression,
    norm_boxes,
    trim_zeros,
)
from mrcnn.data.dataset import Dataset
from mrcnn.download import COCO_MODEL_URL, download_trained_weights
from mrcnn.images import mold_image, resize, resize_image, unmold_image
from mrcnn.log import log
from mrcnn.masks import (
    compute_overlaps_masks,
    expand_mask,
    minimize_mask,
    mold_mask,
    resize_mask,
    unmold_mask,
    unmold_masks,
)
from mrcnn.metrics import compute_ap, compute_ap_range, compute_matches, compute_recall

__all__ = [
    "COCO_MODEL_URL",
    "Dataset",
    "apply_box_deltas",
    "box_refinement",
    "compute_ap",
    "compute_ap_range",
    "compute_backbone_shapes",
    "compute_iou",
    "compute_matches",
    "compute_overlaps",
    "compute_overlaps_masks",
    "compute_recall",
    "denorm_boxes",
    "download_trained_weights",
    "expand_mask",
    "extract_bboxes",
    "generate_anchors",
    "generate_pyramid_anchors",
    "log",
    "minimize_mask",
    "mold_image",
    "mold_mask",
    "non_max_suppression",
    "norm_boxes",
    "resize",
    "resize_image",
    "resize_mask",
    "trim_zeros",
    "unmold_image",
    "unmold_mask",
    "unmold_masks",
]

_LAZY = {"batch_slice": "mrcnn.modeling.graph_utils", "box_refinement_graph": "mrcnn.modeling.graph_utils"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mrcnn.utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY))
