"""Fashionpedia and any plain COCO-format instance annotations, read with pycocotools.

Fashionpedia's files are COCO json with two additions this loader keeps: each annotation's ``attribute_ids``
and the top-level ``attributes`` list (id, name, supercategory). Segmentations may be polygons, uncompressed
RLE (``counts`` a list) or compressed RLE (``counts`` a string). ``iscrowd`` annotations become negative
class ids (Matterport's COCO convention; the model uses them as crowd boxes, not as targets).

Memory: pycocotools parses the json once; the loader then keeps, per instance, polygons as float32 arrays or
RLE in compressed form, and drops the parsed json.

Problems are counted in ``dataset.warnings`` and the instance (or image) skipped, naming the file and the
annotation id: polygons with fewer than 3 points (an annotation keeps its usable polygons), unknown
category ids, annotations of unknown images. A missing, empty or non-JSON annotation file raises ValueError
naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from fashion.categories import Category
from fashion.datasets.base import FashionDataset, decode_coco_rle, polygons_ok, rasterize_polygons


def _read_json(annotation_file: str) -> dict:
    if not os.path.exists(annotation_file):
        raise ValueError(f"{annotation_file}: annotation file not found")
    if os.path.getsize(annotation_file) == 0:
        raise ValueError(f"{annotation_file}: empty annotation file")
    try:
        with open(annotation_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{annotation_file}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or not data.get("images"):
        raise ValueError(f"{annotation_file}: no 'images' in the annotation file")
    data.setdefault("annotations", [])
    data.setdefault("categories", [])
    return data


class CocoFashionDataset(FashionDataset):
    """COCO-format instance segmentation (source ``"coco"``; ``"fashionpedia"`` in FashionpediaDataset)."""

    SOURCE = "coco"

    def load_coco_json(
        self,
        annotation_file: str,
        image_dir: str,
        classes: Any = None,
        include_crowd: bool = True,
        limit: int | None = None,
    ) -> None:
        """Indexes a COCO json with pycocotools.

        annotation_file: the json. image_dir: folder of the images (``file_name`` is relative to it).
        classes: subset of the file's categories by name or id (:func:`fashion.categories.resolve_classes`);
            None = all. Instances of other classes are dropped; images left without instances are skipped.
        include_crowd: keep ``iscrowd`` annotations (as negative class ids).
        limit: keep only the first ``limit`` images (by image id).
        """
        from pycocotools.coco import COCO

        data = _read_json(annotation_file)
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
        self.annotation_file = annotation_file
        categories = [
            Category(int(c["id"]), str(c["name"]), str(c.get("supercategory", "")))
            for c in sorted(coco.dataset["categories"], key=lambda c: c["id"])
        ]
        self.attribute_names = {int(a["id"]): str(a["name"]) for a in coco.dataset.get("attributes", [])}
        self.attribute_supercategories = {
            int(a["id"]): str(a.get("supercategory", "")) for a in coco.dataset.get("attributes", [])
        }
        self.register_classes(categories, classes)
        known = {c.id for c in categories}

        for ann in coco.dataset["annotations"]:
            if ann.get("category_id") in known and not ann.get("iscrowd", 0):
                self.count_attributes(ann["category_id"], _attribute_ids(ann))
            if ann.get("image_id") not in coco.imgs:
                self.warnings.warn(
                    "unknown_image",
                    f"{annotation_file}: annotation {ann.get('id')} refers to unknown image "
                    f"{ann.get('image_id')}",
                )

        for img_id in sorted(coco.imgs):
            if limit is not None and self.stats["images"] >= limit:
                break
            img = coco.imgs[img_id]
            height, width = int(img.get("height") or 0), int(img.get("width") or 0)
            instances = []
            for ann in coco.imgToAnns.get(img_id, []):
                handle = self._index_annotation(ann, known, height, width, annotation_file, include_crowd)
                if handle is not None:
                    instances.append(handle)
            if not instances:
                self.stats["images_skipped_no_instances"] += 1
                continue
            cats, segs, crowd, attrs, ann_ids = zip(*instances)
            self.add_image(
                self.SOURCE,
                image_id=img_id,
                path=os.path.join(image_dir, img["file_name"]),
                height=height or None,
                width=width or None,
                categories=np.array(cats, dtype=np.int32),
                segmentations=list(segs),
                crowd=np.array(crowd, dtype=bool),
                attributes=tuple(attrs),
                annotation_ids=tuple(ann_ids),
            )
            self.stats["images"] += 1
            self.stats["segments"] += len(cats)
        del coco, data

    def _index_annotation(
        self, ann: dict, known: set[int], height: int, width: int, where: str, include_crowd: bool
    ) -> tuple | None:
        ann_id = ann.get("id")
        cat = ann.get("category_id")
        if cat not in known:
            self.warnings.warn(
                "unknown_class", f"{where}: annotation {ann_id} has unknown category_id {cat!r}"
            )
            return None
        if not self.is_selected(cat):
            self.stats["segments_dropped_by_class"] += 1
            return None
        crowd = bool(ann.get("iscrowd", 0))
        if crowd and not include_crowd:
            self.stats["crowd_dropped"] += 1
            return None
        seg = ann.get("segmentation")
        if isinstance(seg, list):
            good, bad = polygons_ok(seg)
            for problem in bad:
                self.warnings.warn("bad_polygon", f"{where}: annotation {ann_id}: {problem}; polygon skipped")
            if not good:
                self.warnings.warn(
                    "bad_polygon", f"{where}: annotation {ann_id} has no usable polygon; skipped"
                )
                return None
            handle: Any = good
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            handle = _compress_rle(seg)
        else:
            self.warnings.warn(
                "bad_segmentation", f"{where}: annotation {ann_id} has no segmentation; skipped"
            )
            return None
        return cat, handle, crowd, _attribute_ids(ann), ann_id

    def iter_instance_masks(self, image_id: int, height: int, width: int) -> Iterator[np.ndarray | None]:
        info = self.image_info[image_id]
        for seg, ann_id in zip(info["segmentations"], info["annotation_ids"]):
            if isinstance(seg, dict):
                if tuple(seg["size"]) != (height, width):
                    self.warnings.warn(
                        "size_mismatch",
                        f"{self.annotation_file}: annotation {ann_id}: RLE size {seg['size']} but image is "
                        f"{height}x{width}; skipped",
                    )
                    yield None
                    continue
                yield decode_coco_rle(seg)
            else:
                yield rasterize_polygons(seg, height, width)

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"{self.SOURCE} image {info['id']} ({info['path']}, {self.annotation_file})"


class FashionpediaDataset(CocoFashionDataset):
    """Fashionpedia (COCO json with ``attribute_ids``): source ``"fashionpedia"``."""

    SOURCE = "fashionpedia"

    def load_fashionpedia(
        self, annotation_file: str, image_dir: str, classes: Any = None, **kwargs: Any
    ) -> None:
        """See :meth:`CocoFashionDataset.load_coco_json`."""
        self.load_coco_json(annotation_file, image_dir, classes=classes, **kwargs)


def _attribute_ids(ann: dict) -> tuple[int, ...]:
    return tuple(int(a) for a in ann.get("attribute_ids", []) or [])


def _compress_rle(seg: dict) -> dict:
    """COCO RLE (``counts`` list or string) -> compressed RLE dict with bytes counts."""
    from pycocotools import mask as mask_utils

    h, w = (int(v) for v in seg["size"])
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    counts = seg["counts"]
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
