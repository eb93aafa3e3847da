"""The dataset formats: a registry of loaders, one per format, that :func:`load_dataset` dispatches to.

Each format is a :class:`DatasetFormat`: its loader and its built-in category table (the table that class
subsets such as ``thesis11`` and checkpoints without recorded class names are read against). Add one with
:func:`register_format`::

    @register_format("myformat", description="my annotation files")
    def load_myformat(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
        ds = MyDataset(max_dim=max_dim, skip_unreadable=skip_unreadable)   # a FashionDataset
        ds.load_my_files(path, classes=classes, limit=limit)
        return ds

``load_dataset("myformat", path)`` then loads it; the commands accept ``--format myformat`` when the
registering module is imported before their parser is built.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Sequence
from typing import Any

from fashion.categories import DEEPFASHION2_CATEGORIES, IMATERIALIST_CATEGORIES, Category
from fashion.datasets.base import FashionDataset
from fashion.datasets.coco import CocoFashionDataset, FashionpediaDataset
from fashion.datasets.deepfashion2 import DeepFashion2Dataset
from fashion.datasets.imaterialist import IMaterialistDataset
from mrcnn.registry import Registry

__all__ = ["DATASET_FORMATS", "DatasetFormat", "find_coco_files", "load_dataset", "register_format"]


@dataclasses.dataclass(frozen=True)
class DatasetFormat:
    """One dataset format.

    load: ``load(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False)`` ->
        an indexed, not yet prepared :class:`FashionDataset`.
    categories: the format's built-in category table.
    description: where the files are, for messages and docs.
    """

    name: str
    load: Callable[..., FashionDataset]
    categories: Sequence[Category] = IMATERIALIST_CATEGORIES
    description: str = ""


DATASET_FORMATS: Registry[DatasetFormat] = Registry(
    "dataset format", hint="or register one with fashion.datasets.register_format(name)"
)


def register_format(
    name: str, *, categories: Sequence[Category] = IMATERIALIST_CATEGORIES, description: str = ""
) -> Callable[[Callable[..., FashionDataset]], Callable[..., FashionDataset]]:
    """Decorator: register the decorated loader as dataset format ``name`` (see :class:`DatasetFormat`)."""

    def decorator(load: Callable[..., FashionDataset]) -> Callable[..., FashionDataset]:
        DATASET_FORMATS.register(name, DatasetFormat(name, load, tuple(categories), description))
        return load

    return decorator


def load_dataset(
    fmt: str,
    path: str,
    classes: Any = None,
    max_dim: int | None = None,
    skip_unreadable: bool = False,
    image_dir: str | None = None,
    limit: int | None = None,
) -> FashionDataset:
    """Loads (indexes) a dataset of format ``fmt`` (a name in :data:`DATASET_FORMATS`) from ``path``; not
    yet prepared. An unknown format raises :class:`mrcnn.registry.UnknownNameError` (a ValueError) listing
    the known ones.

    imaterialist: folder with train.csv, label_descriptions.json and train/.
    fashionpedia, coco: a json file or a folder with one (see :func:`find_coco_files`).
    deepfashion2: a split folder with annos/ and image/.
    """
    return DATASET_FORMATS.get(fmt).load(
        path,
        classes=classes,
        image_dir=image_dir,
        limit=limit,
        max_dim=max_dim,
        skip_unreadable=skip_unreadable,
    )


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


# --------------------------------------------------------------------------------------------- built-ins
@register_format("imaterialist", description="a folder with train.csv, label_descriptions.json and train/")
def load_imaterialist(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
    ds = IMaterialistDataset(max_dim=max_dim, skip_unreadable=skip_unreadable)
    ds.load_imaterialist(path, classes=classes, image_dir=image_dir, limit=limit)
    return ds


@register_format("fashionpedia", description="a Fashionpedia json file, or a folder holding one")
def load_fashionpedia(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
    ann, images = find_coco_files(path, image_dir)
    ds = FashionpediaDataset(max_dim=max_dim, skip_unreadable=skip_unreadable)
    ds.load_coco_json(ann, images, classes=classes, limit=limit)
    return ds


@register_format("coco", description="a COCO json file with its own categories, or a folder holding one")
def load_coco(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
    ann, images = find_coco_files(path, image_dir)
    ds = CocoFashionDataset(max_dim=max_dim, skip_unreadable=skip_unreadable)
    ds.load_coco_json(ann, images, classes=classes, limit=limit)
    return ds


@register_format(
    "deepfashion2", categories=DEEPFASHION2_CATEGORIES, description="a split folder with annos/ and image/"
)
def load_deepfashion2(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
    ds = DeepFashion2Dataset(max_dim=max_dim, skip_unreadable=skip_unreadable)
    ds.load_deepfashion2(
        path, classes=classes, limit=limit, **({"image_dir": image_dir} if image_dir else {})
    )
    return ds
