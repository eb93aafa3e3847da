"""Fashion datasets as Matterport ``utils.Dataset`` subclasses; :func:`load_dataset` picks one by format from
the format registry (:mod:`fashion.datasets.formats`)."""

from __future__ import annotations

from fashion.datasets.attributes import (
    AttributeSelectionError,
    AttributeSpace,
    build_attribute_space,
    resolve_attributes,
)
from fashion.datasets.balance import cap_per_class, oversample, split
from fashion.datasets.base import FashionDataset, WarningCounter
from fashion.datasets.coco import CocoFashionDataset, FashionpediaDataset
from fashion.datasets.deepfashion2 import DeepFashion2Dataset
from fashion.datasets.formats import (
    DATASET_FORMATS,
    DatasetFormat,
    find_coco_files,
    load_dataset,
    register_format,
)
from fashion.datasets.imaterialist import IMaterialistDataset

# The built-in formats' names (DATASET_FORMATS also holds any registered later).
FORMATS = DATASET_FORMATS.names()

__all__ = [
    "DATASET_FORMATS",
    "FORMATS",
    "AttributeSelectionError",
    "AttributeSpace",
    "CocoFashionDataset",
    "DatasetFormat",
    "DeepFashion2Dataset",
    "FashionDataset",
    "FashionpediaDataset",
    "IMaterialistDataset",
    "WarningCounter",
    "build_attribute_space",
    "cap_per_class",
    "find_coco_files",
    "load_dataset",
    "oversample",
    "register_format",
    "resolve_attributes",
    "split",
]
