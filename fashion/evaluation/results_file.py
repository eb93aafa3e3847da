"""Read a COCO / Fashionpedia results file made by any model and turn it into per-image detections of an
annotated dataset, so ``fashion/evaluate.py --results`` scores it without building a model.

A results file is a JSON list of entries::

    {"image_id": 12 | "abc.jpg", "file_name": "abc.jpg" (optional), "category_id": 3, "score": 0.93,
     "segmentation": {"size": [H, W], "counts": "..."} | [[x1, y1, x2, y2, ...], ...],
     "attribute_ids": [115, 136] (optional), "attribute_scores": {"115": 0.9, "136": 0.7, "204": 0.2} (optional)}

* **Image.** ``file_name`` (its base name) when present, else ``image_id``, which must equal the dataset's own
  image id: the COCO id of a COCO/Fashionpedia json, the ``ImageId`` of an iMaterialist ``train.csv``
  (with or without extension), the file stem of DeepFashion2. Entries for images outside the evaluated
  images (``--limit``, a class subset that dropped an image) are counted and left out; a file none of whose
  entries matches is an error.
* **Category.** ``source``: the dataset's category id (the COCO json's ``category_id``, iMaterialist's 0-45,
  DeepFashion2's 1-13); ``model``: the model's class id 1..K of the evaluated class subset, as
  ``fashion/infer.py`` writes it. Categories outside the evaluated classes are an error.
* **Masks** are in original image pixels: RLE (compressed, or uncompressed with a ``counts`` list) of the
  image's size, or polygons.
* **Attributes** are source attribute ids; ``attribute_ids`` is the predicted set and ``attribute_scores``
  optional scores (keys are ids; an attribute without a score scores 1 when listed, else 0).

Every problem raises :class:`ResultsFileError` naming the file and the entry (its 0-based position).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ResultsFileError", "detections_of_image", "group_by_image", "read_results"]


class ResultsFileError(ValueError):
    """A results file that cannot be scored; the message names the file and the entry."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_results(path: str) -> list[dict]:
    """The checked entries of a results file (see the module docstring), each with ``index`` added."""
    if not os.path.isfile(path):
        raise ResultsFileError(f"{path}: results file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsFileError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise ResultsFileError(
            f"{path}: a results file is a JSON list of detections, got {type(data).__name__}"
        )
    entries = []
    for k, entry in enumerate(data):
        where = f"{path}: entry {k}"
        if not isinstance(entry, dict):
            raise ResultsFileError(f"{where} is not an object")
        if "file_name" not in entry and "image_id" not in entry:
            raise ResultsFileError(f"{where} has neither image_id nor file_name")
        if not isinstance(entry.get("category_id"), int) or isinstance(entry.get("category_id"), bool):
            raise ResultsFileError(f"{where}: category_id {entry.get('category_id')!r} is not an integer")
        if not _number(entry.get("score")):
            raise ResultsFileError(f"{where}: score {entry.get('score')!r} is not a number")
        seg = entry.get("segmentation")
        if not (isinstance(seg, dict) and "counts" in seg and "size" in seg) and not (
            isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg)
        ):
            raise ResultsFileError(f"{where}: segmentation must be an RLE {{size, counts}} or polygons")
        attrs = entry.get("attribute_ids")
        if attrs is not None and not (
            isinstance(attrs, list) and all(isinstance(a, int) and not isinstance(a, bool) for a in attrs)
        ):
            raise ResultsFileError(f"{where}: attribute_ids must be a list of integers")
        scores = entry.get("attribute_scores")
        if scores is not None:
            try:
                scores = {int(a): float(s) for a, s in scores.items()}
            except (AttributeError, TypeError, ValueError):
                raise ResultsFileError(
                    f"{where}: attribute_scores must map attribute ids to numbers"
                ) from None
        entries.append({**entry, "index": k, "attribute_scores": scores})
    return entries


def _image_keys(dataset: Any) -> tuple[dict[str, int], dict[Any, int]]:
    by_file, by_id = {}, {}
    for i, info in enumerate(dataset.image_info):
        by_file[os.path.basename(info["path"])] = i
        by_id[info["id"]] = i
        by_id[str(info["id"])] = i
        stem = os.path.splitext(os.path.basename(info["path"]))[0]
        by_id.setdefault(stem, i)
    return by_file, by_id


def group_by_image(entries: Sequence[dict], dataset: Any, path: str) -> tuple[dict[int, list[dict]], int]:
    """``({dataset image index: entries}, number of entries for images not in the dataset)``."""
    by_file, by_id = _image_keys(dataset)
    grouped: dict[int, list[dict]] = {}
    outside = 0
    for entry in entries:
        if "file_name" in entry:
            index = by_file.get(os.path.basename(str(entry["file_name"])))
        else:
            index = by_id.get(entry["image_id"], by_id.get(str(entry["image_id"])))
        if index is None:
            outside += 1
            continue
        grouped.setdefault(index, []).append(entry)
    if entries and not grouped:
        first = entries[0]
        key = (
            f"file_name {first['file_name']!r}" if "file_name" in first else f"image_id {first['image_id']!r}"
        )
        raise ResultsFileError(
            f"{path}: no entry names an image of the dataset (entry 0 has {key}); results name images by "
            "file_name or by the dataset's own image id"
        )
    return grouped, outside


def _class_id(entry: dict, dataset: Any, category_ids: str, path: str) -> int:
    category = int(entry["category_id"])
    if category_ids == "model":
        if 1 <= category < dataset.num_classes:
            return category
        raise ResultsFileError(
            f"{path}: entry {entry['index']}: category_id {category} is not a model class id 1..{dataset.num_classes - 1}"
            " (use --category-ids source for the dataset's category ids)"
        )
    if dataset.is_selected(category):
        return int(dataset.internal_class_ids([category])[0])
    raise ResultsFileError(
        f"{path}: entry {entry['index']}: category_id {category} is not a category of the evaluated classes "
        "(use --category-ids model for model class ids, as fashion/infer.py writes them)"
    )


def _mask(entry: dict, height: int, width: int, path: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    seg = entry["segmentation"]
    where = f"{path}: entry {entry['index']}"
    try:
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        else:
            if [int(v) for v in seg["size"]] != [height, width]:
                raise ResultsFileError(f"{where}: RLE size {seg['size']} but the image is {height}x{width}")
            if isinstance(seg["counts"], list):
                rle = mask_utils.frPyObjects(seg, height, width)
            else:
                counts = seg["counts"]
                rle = {
                    "size": [height, width],
                    "counts": counts.encode() if isinstance(counts, str) else counts,
                }
        return mask_utils.decode(rle).astype(bool)
    except ResultsFileError:
        raise
    except Exception as e:  # pycocotools raises several types for malformed RLE
        raise ResultsFileError(f"{where}: unreadable segmentation ({type(e).__name__}: {e})") from e


def detections_of_image(
    entries: Sequence[dict], dataset: Any, height: int, width: int, category_ids: str, path: str
) -> dict:
    """The entries of one image as a ``detect()``-like dict: ``class_ids [P]``, ``scores [P]``,
    ``masks [H, W, P]``, ``rois [P, 4]`` and, when any entry has them, ``attribute_ids`` and
    ``attribute_scores``. Attribute ids unknown to the dataset raise ResultsFileError."""
    from mrcnn.boxes import extract_bboxes

    masks = np.zeros([height, width, len(entries)], dtype=bool)
    for k, entry in enumerate(entries):
        masks[:, :, k] = _mask(entry, height, width, path)
    out: dict[str, Any] = {
        "class_ids": np.array([_class_id(e, dataset, category_ids, path) for e in entries], dtype=np.int32),
        "scores": np.array([float(e["score"]) for e in entries], dtype=np.float32),
        "masks": masks,
        "rois": extract_bboxes(masks),
    }
    if any(e.get("attribute_ids") is not None or e.get("attribute_scores") for e in entries):
        full = dataset.full_attribute_space
        for e in entries:
            unknown = [a for a in (e.get("attribute_ids") or []) if not full.contains(a)]
            if unknown:
                raise ResultsFileError(
                    f"{path}: entry {e['index']}: attribute ids {unknown} are not attributes of the dataset"
                )
        out["attribute_ids"] = [tuple(e.get("attribute_ids") or []) for e in entries]
        out["attribute_scores"] = [e.get("attribute_scores") for e in entries]
    return out
