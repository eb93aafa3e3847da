"""DeepFashion2: one json per image, in the dataset's layout::

    DIR/image/000001.jpg
    DIR/annos/000001.json   {"source": "user", "pair_id": 1,
                             "item1": {"category_id": 1, "category_name": "short sleeve top",
                                       "bounding_box": [x1, y1, x2, y2], "segmentation": [[x, y, ...], ...],
                                       "style": 1, "scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2,
                                       "landmarks": [...]},
                             "item2": {...}, ...}

Memory: indexing reads each json once and keeps per item only its category, its key (``"item2"``) and its
small integer attributes (style, scale, occlusion, zoom_in, viewpoint, source, pair_id); ``load_mask``
re-reads the image's json for the polygons. Image sizes come from the image headers when first needed.

Problems are counted in ``dataset.warnings``, naming the json file and item: empty or invalid json files
(image skipped), unknown category ids, polygons with fewer than 3 points (an item keeps its usable
polygons; an item with none is skipped), missing image files. A folder without annotation files raises
ValueError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from fashion.categories import DEEPFASHION2_CATEGORIES
from fashion.datasets.base import FashionDataset, polygons_ok, rasterize_polygons

ITEM_ATTRIBUTES = ("style", "scale", "occlusion", "zoom_in", "viewpoint")


def _items(data: dict) -> list[tuple[str, dict]]:
    """The ``itemN`` entries in numeric order."""
    keys = [k for k in data if k.startswith("item") and k[4:].isdigit() and isinstance(data[k], dict)]
    return [(k, data[k]) for k in sorted(keys, key=lambda k: int(k[4:]))]


class DeepFashion2Dataset(FashionDataset):
    """DeepFashion2's 13 categories (source ``"deepfashion2"``); each instance keeps a dict of attributes."""

    SOURCE = "deepfashion2"
    # style/scale/occlusion/zoom_in/viewpoint describe the photo and the shop-consumer pairing, not the
    # garment: DeepFashion2 has no garment attribute space.
    GARMENT_ATTRIBUTES = False

    def load_deepfashion2(
        self,
        dataset_dir: str,
        classes: Any = None,
        annos_dir: str = "annos",
        image_dir: str = "image",
        limit: int | None = None,
    ) -> None:
        """Indexes ``dataset_dir/annos/*.json`` (images in ``dataset_dir/image``).

        classes: subset of the 13 categories by name or id (None or "deepfashion2" = all 13).
        limit: keep only the first ``limit`` images (sorted by file name).
        """
        annos = os.path.join(dataset_dir, annos_dir)
        images = os.path.join(dataset_dir, image_dir)
        self.register_classes(DEEPFASHION2_CATEGORIES, classes)
        names = sorted(n for n in os.listdir(annos) if n.endswith(".json")) if os.path.isdir(annos) else []
        if not names:
            raise ValueError(f"{annos}: no annotation files (*.json)")
        image_files = set(os.listdir(images)) if os.path.isdir(images) else set()
        known = {c.id for c in DEEPFASHION2_CATEGORIES}
        for name in names:
            if limit is not None and self.stats["images"] >= limit:
                break
            path = os.path.join(annos, name)
            data = self._read(path)
            if data is None:
                continue
            cats, keys, attrs = [], [], []
            for key, item in _items(data):
                cat = item.get("category_id")
                if cat not in known:
                    self.warnings.warn(
                        "unknown_class", f"{path}: {key} has unknown category_id {cat!r}; skipped"
                    )
                    continue
                if not self.is_selected(cat):
                    self.stats["segments_dropped_by_class"] += 1
                    continue
                good, bad = polygons_ok(item.get("segmentation") or [])
                for problem in bad:
                    self.warnings.warn("bad_polygon", f"{path}: {key}: {problem}; polygon skipped")
                if not good:
                    self.warnings.warn("bad_polygon", f"{path}: {key} has no usable polygon; skipped")
                    continue
                record = {a: item[a] for a in ITEM_ATTRIBUTES if a in item}
                for a in ("source", "pair_id"):
                    if a in data:
                        record[a] = data[a]
                cats.append(cat)
                keys.append(key)
                attrs.append(record)
            if not cats:
                self.stats["images_skipped_no_instances"] += 1
                continue
            stem = os.path.splitext(name)[0]
            file_name = next((stem + e for e in (".jpg", ".jpeg", ".png") if stem + e in image_files), None)
            if file_name is None:
                self.warnings.warn("missing_image", f"{path}: no image {stem}.jpg in {images}; skipped")
                continue
            self.add_image(
                self.SOURCE,
                image_id=stem,
                path=os.path.join(images, file_name),
                height=None,
                width=None,
                categories=np.array(cats, dtype=np.int32),
                attributes=tuple(attrs),
                annotation_path=path,
                item_keys=tuple(keys),
            )
            self.stats["images"] += 1
            self.stats["segments"] += len(cats)

    def _read(self, path: str) -> dict | None:
        try:
            if os.path.getsize(path) == 0:
                self.warnings.warn("empty_annotation", f"{path}: empty annotation file; image skipped")
                return None
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            self.warnings.warn("bad_annotation", f"{path}: unreadable annotation file ({e}); image skipped")
            return None
        if not isinstance(data, dict):
            self.warnings.warn("bad_annotation", f"{path}: not a json object; image skipped")
            return None
        return data

    def iter_instance_masks(self, image_id: int, height: int, width: int) -> Iterator[np.ndarray | None]:
        info = self.image_info[image_id]
        data = self._read(info["annotation_path"]) or {}
        for key in info["item_keys"]:
            item = data.get(key)
            good, _ = polygons_ok((item or {}).get("segmentation") or [])
            if not good:
                self.warnings.warn(
                    "bad_polygon", f"{info['annotation_path']}: {key} changed on disk; skipped"
                )
                yield None
                continue
            yield rasterize_polygons(good, height, width)

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"DeepFashion2 image {info['id']} ({info['path']}, {info['annotation_path']})"
