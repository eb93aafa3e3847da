"""Datasets, ground truth and training batches.

Names are imported lazily so that ``from mrcnn.data.dataset import Dataset`` does not pull in Keras::

    from mrcnn.data import Dataset, DataLoader, load_image_gt, build_rpn_targets
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "mrcnn.data.dataset",
    "ImageLoadError": "mrcnn.data.dataset",
    "MissingImageError": "mrcnn.data.dataset",
    "InvalidImageError": "mrcnn.data.dataset",
    "check_image_for_detection": "mrcnn.data.dataset",
    "to_rgb_uint8": "mrcnn.data.dataset",
    "compose_image_meta": "mrcnn.data.image_meta",
    "parse_image_meta": "mrcnn.data.image_meta",
    "load_image_gt": "mrcnn.data.ground_truth",
    "build_rpn_targets": "mrcnn.data.ground_truth",
    "generate_random_rois": "mrcnn.data.ground_truth",
    "build_detection_targets": "mrcnn.data.ground_truth",
    "MASK_AUGMENTERS": "mrcnn.data.augmentation",
    "augment_image_and_masks": "mrcnn.data.augmentation",
    "AlbumentationsAugmentation": "mrcnn.data.augmentation",
    "DataLoader": "mrcnn.data.loader",
    "data_generator": "mrcnn.data.loader",
    "ShapesDataset": "mrcnn.data.synthetic",
    "AttributeShapesDataset": "mrcnn.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mrcnn.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
