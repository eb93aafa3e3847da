"""Fashion datasets as Matterport ``utils.Dataset`` subclasses; :func:`load_dataset` picks one by format."""

from __future__ import annotations

import glob
import os
from typing import Any

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
from fashion.datasets.imaterialist import IMaterialistDataset

FORMATS = ("imaterialist", "fashionpedia", "coco", "deepfashion2")

__all__ = [
    "FORMATS",
    "AttributeSelectionError",
    "AttributeSpace",
    "CocoFashionDataset",
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
    "resolve_attributes",
    "split",
]


def find_coco_files(path: str, image_dir: str | None = None) -> tuple[str, str]:
    """(annotation json, image folder) for a COCO-style ``path``: a json file, or a folder holding one json
    (directly or under ``annotations/``). Images: ``image_dir``, else ``images/``, ``train/`` or the folder.
    """
    if os.path.isfile(path):
        ann, root = path, os.path.dirname(os.path.abspath(path))
    else:
        found = sorted(
            glob.glob(os.path.join(path, "*.json")) or glob.glob(os.path.join(path, "annotations", "*.json"))
        )
        if len(found) != 1:
            raise ValueError(
                f"{path}: expected exactly one COCO json (found {len(found)}); pass the json file itself"
            )
        ann, root = found[0], path
    if image_dir is None:
        candidates = [os.path.join(root, d) for d in ("images", "train")]
        image_dir = next((d for d in candidates if os.path.isdir(d)), root)
    return ann, image_dir


def load_dataset(
    fmt: str,
    path: str,
    classes: Any = None,
    max_dim: int | None = None,
    skip_unreadable: bool = False,
    image_dir: str | None = None,
    limit: int | None = None,
) -> FashionDataset:
    """Loads (indexes) a dataset of format ``fmt`` (one of FORMATS) from ``path``; not yet prepared.

    imaterialist: folder with train.csv, label_descriptions.json and train/.
    fashionpedia, coco: a json file or a folder with one (see :func:`find_coco_files`).
    deepfashion2: a split folder with annos/ and image/.
    """
    kwargs = {"max_dim": max_dim, "skip_unreadable": skip_unreadable}
    if fmt == "imaterialist":
        ds: FashionDataset = IMaterialistDataset(**kwargs)
        ds.load_imaterialist(path, classes=classes, image_dir=image_dir, limit=limit)
    elif fmt in ("fashionpedia", "coco"):
        ann, images = find_coco_files(path, image_dir)
        ds = FashionpediaDataset(**kwargs) if fmt == "fashionpedia" else CocoFashionDataset(**kwargs)
        ds.load_coco_json(ann, images, classes=classes, limit=limit)
    elif fmt == "deepfashion2":
        ds = DeepFashion2Dataset(**kwargs)
        ds.load_deepfashion2(
            path, classes=classes, limit=limit, **({"image_dir": image_dir} if image_dir else {})
        )
    else:
        raise ValueError(f"unknown dataset format {fmt!r}; one of {FORMATS}")
    return ds
