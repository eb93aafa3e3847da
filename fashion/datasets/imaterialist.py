"""iMaterialist Fashion 2019 (FGVC6, Kaggle) in its competition layout::

    DIR/train.csv                 ImageId,EncodedPixels,Height,Width,ClassId  (one row per segment)
    DIR/label_descriptions.json   {"info": ..., "categories": [{id, name, supercategory, level}, ...],
                                   "attributes": [{id, name, supercategory, level}, ...]}
    DIR/train/<ImageId>           the images (ImageId with or without its ".jpg")

``ClassId`` is ``"<category>"`` or ``"<category>_<attr>_<attr>..."``; a separate ``AttributesIds`` column
(``"115,136"``, the 2020 layout) is read too. ``EncodedPixels`` is column-major with 1-based starts
(:mod:`fashion.rle`).

Memory: the CSV is read once, streaming; per segment only its byte offset in the file, its row number, its
category and its attribute ids are kept (330k segments: a few MB). ``load_mask`` seeks to an image's rows
and decodes them one at a time (see :class:`fashion.datasets.base.FashionDataset` for ``max_dim``).

Bad rows are counted in ``dataset.warnings`` and skipped, each named by ``train.csv:<line>``: rows whose runs
end past Height*Width (checked on the last run while indexing, on every run when decoding), unknown or
malformed ClassIds, malformed sizes or field counts. Images whose file is missing are skipped likewise.
An empty or header-only CSV raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from fashion.categories import IMATERIALIST_CATEGORIES, Category
from fashion.datasets.base import FashionDataset, logger
from fashion.rle import RLEError, rle_decode, rle_last_pixel

REQUIRED_COLUMNS = ("ImageId", "EncodedPixels", "Height", "Width", "ClassId")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def read_label_descriptions(path: str) -> tuple[list[Category], dict[int, str]]:
    """Categories and {attribute id: name} from a ``label_descriptions.json``.

    Raises ValueError naming the file when it is not JSON or has no categories.
    """
    categories, attributes, _ = read_label_descriptions_full(path)
    return categories, attributes


def read_label_descriptions_full(path: str) -> tuple[list[Category], dict[int, str], dict[int, str]]:
    """Categories, {attribute id: name} and {attribute id: supercategory} from a ``label_descriptions.json``.

    Raises ValueError naming the file when it is not JSON or has no categories.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    cats = data.get("categories") if isinstance(data, dict) else None
    if not cats:
        raise ValueError(f"{path}: no 'categories' list")
    categories = [Category(int(c["id"]), str(c["name"]), str(c.get("supercategory", ""))) for c in cats]
    attributes = {int(a["id"]): str(a["name"]) for a in data.get("attributes", [])}
    supercategories = {int(a["id"]): str(a.get("supercategory", "")) for a in data.get("attributes", [])}
    return categories, attributes, supercategories


def parse_class_id(text: str) -> tuple[int, tuple[int, ...]]:
    """``"10_12_30"`` -> (10, (12, 30)); ``"23"`` -> (23, ()). Raises ValueError for anything else."""
    parts = text.strip().split("_")
    if not parts[0]:
        raise ValueError(f"empty ClassId {text!r}")
    return int(parts[0]), tuple(int(p) for p in parts[1:] if p != "")


class IMaterialistDataset(FashionDataset):
    """iMaterialist Fashion 2019 segments as a Matterport dataset (source ``"imaterialist"``).

    Each instance keeps its attribute ids: ``dataset.load_attributes(image_id)`` lists them in mask order, and
    ``image_info[i]["attributes"]`` holds them for every annotated instance.
    """

    SOURCE = "imaterialist"
    # The 2019 file labels attributes on part of the segments only: a bare ClassId is "unlabelled".
    EMPTY_ATTRIBUTES_UNLABELLED = True

    def load_imaterialist(
        self,
        dataset_dir: str,
        classes: Any = None,
        csv_name: str = "train.csv",
        labels_name: str = "label_descriptions.json",
        image_dir: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Indexes the annotations (no masks are decoded here).

        dataset_dir: folder with ``csv_name`` and ``labels_name``; images in ``image_dir`` (default
            ``dataset_dir/train``).
        classes: subset name or class list (see :func:`fashion.categories.resolve_classes`); None = all 46.
            Segments of other classes are dropped; images left without segments are skipped.
        limit: keep only the first ``limit`` images (in CSV order), for quick experiments.
        """
        self.csv_path = os.path.join(dataset_dir, csv_name)
        labels_path = os.path.join(dataset_dir, labels_name)
        image_dir = image_dir or os.path.join(dataset_dir, "train")
        if os.path.exists(labels_path):
            categories, self.attribute_names, self.attribute_supercategories = read_label_descriptions_full(
                labels_path
            )
        else:
            logger.warning("%s not found: using the built-in 46 iMaterialist 2019 categories", labels_path)
            categories, self.attribute_names = list(IMATERIALIST_CATEGORIES), {}
        self.register_classes(categories, classes)
        known_categories = {c.id for c in categories}
        files = set(os.listdir(image_dir)) if os.path.isdir(image_dir) else set()
        if not files:
            logger.warning("image folder %s is missing or empty", image_dir)

        images: dict[str, dict[str, Any]] = {}
        for row in self._rows(self.csv_path, known_categories):
            self.count_attributes(row["category"], row["attributes"])
            entry = images.setdefault(row["image"], {"size": row["size"], "segs": [], "line": row["line"]})
            if row["category"] not in self._internal_ids:
                self.stats["segments_dropped_by_class"] += 1
                continue
            if entry["size"] != row["size"]:
                self.warnings.warn(
                    "size_conflict",
                    f"{self.csv_path}:{row['line']}: image {row['image']} is {row['size']} here but "
                    f"{entry['size']} in an earlier row; row skipped",
                )
                continue
            entry["segs"].append((row["offset"], row["line"], row["category"], row["attributes"]))

        for image_name, entry in images.items():
            if limit is not None and self.stats["images"] >= limit:
                break
            if not entry["segs"]:
                self.stats["images_skipped_no_selected_class"] += 1
                continue
            file_name = _find_file(image_name, files)
            if file_name is None:
                self.warnings.warn(
                    "missing_image",
                    f"image file for {image_name!r} ({self.csv_path}:{entry['line']}) not in {image_dir}; "
                    "skipped",
                )
                continue
            offsets, lines, cats, attrs = zip(*entry["segs"])
            height, width = entry["size"]
            self.add_image(
                self.SOURCE,
                image_id=image_name,
                path=os.path.join(image_dir, file_name),
                height=height,
                width=width,
                categories=np.array(cats, dtype=np.int32),
                attributes=tuple(attrs),
                offsets=np.array(offsets, dtype=np.int64),
                lines=np.array(lines, dtype=np.int32),
            )
            self.stats["images"] += 1
            self.stats["segments"] += len(cats)

    def _rows(self, csv_path: str, known_categories: set[int]) -> Iterator[dict[str, Any]]:
        """Parsed, checked data rows: image, size, category, attributes, byte offset, 1-based line number."""
        with open(csv_path, "rb") as f:
            header_bytes = f.readline()
            header = header_bytes.decode("utf-8-sig").strip()
            if not header:
                raise ValueError(f"{csv_path}: empty annotation file (no header, no rows)")
            columns = next(csv.reader([header]))
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ValueError(f"{csv_path}: missing columns {missing} (header: {columns})")
            col = {name: columns.index(name) for name in columns}
            attr_col = col.get("AttributesIds")
            offset = len(header_bytes)
            line_no = 1
            n_rows = 0
            for raw in f:
                line_no += 1
                start, offset = offset, offset + len(raw)
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text.strip():
                    continue
                n_rows += 1
                where = f"{csv_path}:{line_no}"
                fields = next(csv.reader([text])) if '"' in text else text.split(",")
                if len(fields) != len(columns):
                    self.warnings.warn(
                        "malformed_row", f"{where}: {len(fields)} fields, expected {len(columns)}"
                    )
                    continue
                image = fields[col["ImageId"]].strip()
                try:
                    height, width = int(fields[col["Height"]]), int(fields[col["Width"]])
                    if height < 1 or width < 1:
                        raise ValueError("non-positive")
                except ValueError:
                    self.warnings.warn(
                        "bad_size",
                        f"{where}: Height/Width {fields[col['Height']]!r}/{fields[col['Width']]!r}",
                    )
                    continue
                try:
                    category, attributes = parse_class_id(fields[col["ClassId"]])
                    if attr_col is not None and fields[attr_col].strip():
                        attributes += tuple(int(a) for a in fields[attr_col].replace(" ", "").split(",") if a)
                except ValueError:
                    self.warnings.warn(
                        "bad_class_id", f"{where}: ClassId {fields[col['ClassId']]!r} is not an int"
                    )
                    continue
                if category not in known_categories:
                    self.warnings.warn(
                        "unknown_class",
                        f"{where}: ClassId {fields[col['ClassId']]!r}: category {category} unknown",
                    )
                    continue
                if self.attribute_names:
                    unknown = [a for a in attributes if a not in self.attribute_names]
                    if unknown:
                        self.warnings.warn(
                            "unknown_attribute", f"{where}: attribute ids {unknown} unknown; dropped"
                        )
                        attributes = tuple(a for a in attributes if a in self.attribute_names)
                encoded = fields[col["EncodedPixels"]]
                try:
                    last = rle_last_pixel(encoded)
                except RLEError as e:
                    self.warnings.warn("bad_rle", f"{where}: {e}")
                    continue
                if last > height * width:
                    self.warnings.warn(
                        "rle_overrun",
                        f"{where}: EncodedPixels runs to pixel {last}, past Height*Width = {height}*{width} "
                        f"= {height * width}; row skipped",
                    )
                    continue
                if last == 0:
                    self.warnings.warn("empty_mask", f"{where}: empty EncodedPixels; row skipped")
                    continue
                self.stats["rows"] += 1
                yield {
                    "image": image,
                    "size": (height, width),
                    "category": category,
                    "attributes": attributes,
                    "offset": start,
                    "line": line_no,
                }
            if n_rows == 0:
                raise ValueError(f"{csv_path}: empty annotation file (header only, no rows)")

    def iter_instance_masks(self, image_id: int, height: int, width: int) -> Iterator[np.ndarray | None]:
        info = self.image_info[image_id]
        with open(self.csv_path, "rb") as f:
            header = next(csv.reader([f.readline().decode("utf-8-sig").strip()]))
            enc_col = header.index("EncodedPixels")
            for offset, line in zip(info["offsets"].tolist(), info["lines"].tolist()):
                f.seek(offset)
                text = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
                fields = next(csv.reader([text])) if '"' in text else text.split(",")
                try:
                    yield rle_decode(fields[enc_col], height, width)
                except (RLEError, IndexError) as e:
                    self.warnings.warn("rle_overrun", f"{self.csv_path}:{line}: {e}; segment skipped")
                    yield None

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        rows = info["lines"].tolist()
        return f"iMaterialist image {info['id']} ({info['path']}, rows {rows} of {self.csv_path})"

    def attribute_labels(self, image_id: int) -> list[list[str]]:
        """Attribute names of the instances that load_mask returns, in mask order."""
        return [
            [self.attribute_names.get(a, str(a)) for a in attrs] for attrs in self.load_attributes(image_id)
        ]


def _find_file(image_name: str, files: set[str]) -> str | None:
    if image_name in files:
        return image_name
    for ext in IMAGE_EXTENSIONS:
        if image_name + ext in files:
            return image_name + ext
    return None
