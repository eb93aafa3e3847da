"""The image pipeline: everything between a user's image and the network, and back. Nothing else in
``mrcnn`` resizes images or pastes masks.

Molding: scale (IMAGE_MIN_DIM / IMAGE_MAX_DIM / IMAGE_MIN_SCALE), resize (Matterport's pixels: skimage's
bilinear without anti-aliasing, truncated), pad or crop (IMAGE_RESIZE_MODE), subtract the mean pixel, record
an :class:`ImageMeta`. Unmolding: boxes back to pixels of the original image, masks resized to their boxes and
pasted. Two faces built on the same rules (:mod:`~mrcnn.pipeline.rules`) and tested to agree:

- numpy (:mod:`~mrcnn.pipeline.molding`, :mod:`~mrcnn.pipeline.resample`): ``MaskRCNN.detect``,
  ``load_image_gt`` and the training loader, and Matterport's ``resize_image`` / ``mold_image`` /
  ``unmold_masks`` / ``compose_image_meta`` (thin wrappers in ``mrcnn.images``, ``mrcnn.masks``,
  ``mrcnn.data.image_meta``);
- TensorFlow (:mod:`~mrcnn.pipeline.graph`, imported on first use): ``mrcnn.export``'s serving graph.

Modules: ``rules`` (sizes, padding, window, sampling points, rim factors, box arithmetic; numpy or TF ops),
``meta`` (ImageMeta and Matterport's vector layout), ``resample`` (bilinear resize and mask pasting in numpy),
``molding`` (plans, molding a batch, unmolding detections), ``graph`` (the same in TensorFlow), ``display``
(shrinking a photo and its detections for overlays, not for the network).
"""

from __future__ import annotations

import importlib
from typing import Any

from mrcnn.pipeline.meta import ImageMeta, compose_image_meta, parse_image_meta
from mrcnn.pipeline.molding import (
    MoldedBatch,
    ResizePlan,
    apply_plan,
    kept_detection_rows,
    mold_image,
    mold_images,
    mold_one,
    plan_resize,
    resize_image,
    resize_masks,
    unmold_boxes,
    unmold_detections,
    unmold_image,
)
from mrcnn.pipeline.resample import paste_masks, resize, resize_bilinear, resize_bilinear_exact
from mrcnn.pipeline.rules import RESIZE_MODES, ResizeRule

_GRAPH = (
    "mold_image_graph",
    "resize_image_graph",
    "resize_square_graph",
    "resize_bilinear_graph",
    "compose_image_meta_graph",
    "unmold_boxes_graph",
    "unmold_detections_graph",
    "paste_masks_graph",
)

__all__ = [
    "RESIZE_MODES",
    "ImageMeta",
    "MoldedBatch",
    "ResizePlan",
    "ResizeRule",
    "apply_plan",
    "compose_image_meta",
    "mold_image",
    "mold_images",
    "mold_one",
    "parse_image_meta",
    "paste_masks",
    "plan_resize",
    "resize",
    "resize_bilinear",
    "resize_bilinear_exact",
    "resize_image",
    "resize_masks",
    "unmold_boxes",
    "kept_detection_rows",
    "unmold_detections",
    "unmold_image",
    *_GRAPH,
]


def __getattr__(name: str) -> Any:
    """The graph face's names, loaded (with TensorFlow) on first use."""
    if name in _GRAPH:
        return getattr(importlib.import_module("mrcnn.pipeline.graph"), name)
    raise AttributeError(f"module 'mrcnn.pipeline' has no attribute {name!r}")
