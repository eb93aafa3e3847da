"""What the fashion datasets share: class registration from a subset, memory-frugal image/mask loading,
counted warnings, per-image class lists for balancing, and splitting.

Every loader stores, per image, only compact handles to its annotations (file offsets, polygons as float32
arrays, compressed RLE) and decodes masks in :meth:`FashionDataset.load_mask`. Each ``image_info`` entry has:

    id, source, path: as Matterport's ``add_image``.
    height, width: original image size in pixels (None until read when the annotations do not give it).
    categories: [N] int32 source category ids of the image's instances (only selected classes).
    attributes: N per-instance attribute records (tuples of attribute ids, or dicts for DeepFashion2).

Garment attributes (iMaterialist, Fashionpedia) map to one index space per dataset,
:attr:`FashionDataset.attribute_space` (see :mod:`fashion.datasets.attributes`); ``select_attributes``
restricts it (``--attributes``) and ``load_attribute_targets`` gives per-instance multi-hot rows and their
labelled mask in ``load_mask``'s instance order.

``max_dim`` shrinks images whose longer side exceeds it as they are loaded, and each instance mask is decoded
at full size and shrunk at once, so at most one full-size mask exists at a time (iMaterialist images go up to
10,717 x 6,824 pixels: 73 MB per full-size bool mask). With square resizing the model never sees more than
``IMAGE_MAX_DIM`` pixels per side, so ``max_dim = config.IMAGE_MAX_DIM`` loses nothing.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from fashion.categories import Category, resolve_classes
from fashion.datasets.attributes import (
    AttributeSpace,
    build_attribute_space,
    empty_attribute_space,
    resolve_attributes,
)
from mrcnn.data.dataset import Dataset, ImageLoadError, MissingImageError, pil_to_array, to_rgb_uint8

logger = logging.getLogger("fashion.datasets")


class WarningCounter:
    """Counts data problems by kind and keeps the first messages of each kind.

    Each problem is logged (up to ``max_logged`` per kind) through the ``fashion.datasets`` logger, so one bad
    row never stops loading and a thousand bad rows do not flood the console.
    """

    def __init__(self, max_logged: int = 10) -> None:
        self.counts: Counter[str] = Counter()
        self.messages: dict[str, list[str]] = {}
        self.max_logged = max_logged

    def warn(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        kept = self.messages.setdefault(kind, [])
        if len(kept) < self.max_logged:
            kept.append(message)
            logger.warning("%s: %s", kind, message)
        elif len(kept) == self.max_logged and self.counts[kind] == self.max_logged + 1:
            logger.warning("%s: more problems of this kind; only counting from now on", kind)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line per kind: count and first message."""
        if not self.counts:
            return "no data problems"
        lines = []
        for kind, n in sorted(self.counts.items()):
            lines.append(f"{n} x {kind} (first: {self.messages[kind][0]})")
        return "\n".join(lines)


def target_size(height: int, width: int, max_dim: int | None) -> tuple[int, int]:
    """(height, width) after shrinking so the longer side is at most ``max_dim`` (never enlarged)."""
    if not max_dim or max(height, width) <= max_dim:
        return int(height), int(width)
    scale = max_dim / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_bool_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w] bool -> [height, width] bool; shrinking averages the pixels covered (area-like), then >= 0.5."""
    if mask.shape == (height, width):
        return mask
    from PIL import Image

    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)) >= 128


class FashionDataset(Dataset):
    """Base class of the fashion loaders (a Matterport ``utils.Dataset``).

    Args:
        max_dim: shrink images (and their masks) whose longer side exceeds this many pixels; None keeps sizes.
        skip_unreadable: when an image file is missing or corrupt at load time, count one warning per file
            (``missing_image`` or ``unreadable_image``) and return a black image without instances instead of
            raising; the image id goes into ``unreadable`` (the training loader counts it as failed to load).
    Attributes:
        warnings: a :class:`WarningCounter` of the data problems met while indexing and loading.
        stats: counts from indexing (rows, segments kept, dropped by class subset, images skipped, ...).
        categories: all categories of the annotation files; selected: the ones registered as classes.
    """

    SOURCE = "fashion"
    #: Whether the per-instance attribute records are garment attributes (False: DeepFashion2's dicts).
    GARMENT_ATTRIBUTES = True
    #: Whether an instance without any attribute is unlabelled rather than "none of them" (iMaterialist).
    EMPTY_ATTRIBUTES_UNLABELLED = False

    def __init__(
        self, class_map: Any = None, max_dim: int | None = None, skip_unreadable: bool = False
    ) -> None:
        super().__init__(class_map)
        self.max_dim = max_dim
        self.skip_unreadable = skip_unreadable
        self.warnings = WarningCounter()
        self.stats: Counter[str] = Counter()
        self.categories: list[Category] = []
        self.selected: list[Category] = []
        self.attribute_names: dict[int, str] = {}
        self.attribute_supercategories: dict[int, str] = {}
        # {(source category id, source attribute id): instances}, over the whole annotation file.
        self.attribute_cooccurrence: Counter[tuple[int, int]] = Counter()
        self.attribute_selection: Any = "all"
        self._attribute_spaces: dict[str, AttributeSpace] = {}
        self._internal_ids: dict[int, int] = {}
        self.unreadable: set[int] = set()
        # {path: why it cannot be read}: files found bad while loading, shared with subsets (copy.copy) so that
        # each bad file is warned about once, whichever split draws it and however often.
        self.bad_files: dict[str, str] = {}

    # ----------------------------------------------------------------- classes
    def register_classes(self, categories: Sequence[Category], classes: Any = None) -> list[Category]:
        """Registers the subset ``classes`` (see :func:`fashion.categories.resolve_classes`) of ``categories``

        Internal class ids are 1.. in source-id order. Returns the selected categories.
        """
        self.categories = list(categories)
        self.selected = resolve_classes(classes, self.categories)
        self._attribute_spaces = {}
        for cat in self.selected:
            self.add_class(self.SOURCE, cat.id, cat.name)
        self._internal_ids = {}
        for internal, info in enumerate(self.class_info):
            if info["source"] == self.SOURCE:
                self._internal_ids[info["id"]] = internal
        return self.selected

    def is_selected(self, source_category_id: int) -> bool:
        return source_category_id in self._internal_ids

    def internal_class_ids(self, source_category_ids: Iterable[int]) -> np.ndarray:
        """[N] int32 internal class ids of source category ids (usable before ``prepare``)."""
        return np.array([self._internal_ids[int(c)] for c in source_category_ids], dtype=np.int32)

    def image_class_ids(self, image_id: int) -> np.ndarray:
        """[N] int32 internal class ids of every annotated instance of an image, without decoding masks."""
        return self.internal_class_ids(self.image_info[image_id]["categories"])

    def class_image_counts(self) -> dict[int, int]:
        """{internal class id: number of images containing it}, for every registered class."""
        counts = {i: 0 for i in self._internal_ids.values()}
        for image_id in range(len(self.image_info)):
            for c in set(self.image_class_ids(image_id).tolist()):
                counts[c] += 1
        return counts

    def class_instance_counts(self) -> dict[int, int]:
        """{internal class id: number of instances}, for every registered class."""
        counts = {i: 0 for i in self._internal_ids.values()}
        for image_id in range(len(self.image_info)):
            for c in self.image_class_ids(image_id).tolist():
                counts[c] += 1
        return counts

    # ----------------------------------------------------------------- attributes
    def count_attributes(self, source_category_id: int, attribute_ids: Iterable[int]) -> None:
        """Loaders call this for every instance of the annotation file (any class, any image): it feeds the
        annotated rule of :mod:`fashion.datasets.attributes`."""
        for a in set(attribute_ids):
            self.attribute_cooccurrence[(int(source_category_id), int(a))] += 1

    def _class_source_ids(self) -> list[int | None]:
        return [info["id"] if info["source"] == self.SOURCE else None for info in self.class_info]

    @property
    def full_attribute_space(self) -> AttributeSpace:
        """Every attribute of the dataset (before ``select_attributes``), model classes as registered."""
        if "full" not in self._attribute_spaces:
            if not self.GARMENT_ATTRIBUTES:
                space = empty_attribute_space(len(self.class_info))
            else:
                listed = self.attribute_names or {a: str(a) for _, a in sorted(self.attribute_cooccurrence)}
                attributes = [(a, n, self.attribute_supercategories.get(a, "")) for a, n in listed.items()]
                space = build_attribute_space(
                    attributes,
                    self._class_source_ids(),
                    self.attribute_cooccurrence,
                    empty_is_unlabelled=self.EMPTY_ATTRIBUTES_UNLABELLED,
                )
            self._attribute_spaces["full"] = space
        return self._attribute_spaces["full"]

    @property
    def attribute_space(self) -> AttributeSpace:
        """The selected attributes (``select_attributes``; all by default): NUM_ATTRIBUTES is its length."""
        key = repr(self.attribute_selection)
        if key not in self._attribute_spaces:
            self._attribute_spaces[key] = resolve_attributes(
                self.attribute_selection, self.full_attribute_space
            )
        return self._attribute_spaces[key]

    def select_attributes(self, spec: Any) -> AttributeSpace:
        """Restricts :attr:`attribute_space` to ``spec`` ("all", "none", or names/ids separated by ';');
        raises AttributeSelectionError naming ``--attributes`` for unknown ones. Returns the space."""
        space = resolve_attributes(spec, self.full_attribute_space)
        self.attribute_selection = spec
        self._attribute_spaces[repr(spec)] = space
        return space

    def attribute_targets(
        self, class_ids: np.ndarray, records: Sequence[Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Multi-hot targets ``[N, A]`` float32 and their labelled mask ``[N, A]`` float32 (1 = labelled) of
        instances with ``class_ids [N]`` (negative: crowd, weight 0) and attribute ``records`` (as
        :meth:`load_mask_and_attributes` returns them)."""
        space = self.attribute_space
        if not self.GARMENT_ATTRIBUTES:
            records = [()] * len(records)
        records = [tuple(r) for r in records]
        return space.multi_hot_rows(records), space.instance_weights(class_ids, records)

    def load_attribute_targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(multi_hot ``[N, A]`` float32, labelled ``[N, A]`` float32) aligned with :meth:`load_mask`."""
        _, class_ids, records = self.load_mask_and_attributes(image_id)
        return self.attribute_targets(class_ids, records)

    @property
    def num_attributes(self) -> int:
        """NUM_ATTRIBUTES of a model trained on the selected attributes (the length of :attr:`attribute_space`)."""
        return self.attribute_space.num_attributes

    @property
    def model_attribute_names(self) -> list[str]:
        """The selected attributes' names in model order (what a checkpoint records)."""
        return list(self.attribute_space.names)

    @property
    def attribute_source_ids(self) -> list[int]:
        """The selected attributes' ids in the dataset's files, in model order (what a checkpoint records)."""
        return [int(i) for i in self.attribute_space.source_ids]

    def load_mask_and_attribute_targets(
        self, image_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`load_mask` and :meth:`load_attribute_targets` from one decoding of the image's masks."""
        masks, class_ids, records = self.load_mask_and_attributes(image_id)
        attributes, weights = self.attribute_targets(class_ids, records)
        return masks, class_ids, attributes, weights

    def load_attributes_multi_hot(self, image_id: int) -> np.ndarray:
        """``[N, A]`` float32 multi-hot attributes of :meth:`load_mask`'s instances (A = NUM_ATTRIBUTES)."""
        return self.load_attribute_targets(image_id)[0]

    # ----------------------------------------------------------------- images
    def original_size(self, image_id: int) -> tuple[int, int]:
        """(height, width) of the image as annotated; from the file header when the annotations lack it."""
        info = self.image_info[image_id]
        if not info.get("height") or not info.get("width"):
            from PIL import Image

            path = info["path"]
            if not os.path.exists(path):
                raise MissingImageError(
                    f"missing image file {path!r} (image id {image_id}, source id {info['id']!r})"
                )
            try:
                with Image.open(path) as im:
                    info["width"], info["height"] = im.size
            except Exception as e:
                raise ImageLoadError(f"cannot read image file {path!r} (image id {image_id}): {e}") from e
        return int(info["height"]), int(info["width"])

    def loaded_size(self, image_id: int) -> tuple[int, int]:
        """(height, width) that load_image and load_mask return (original size shrunk to ``max_dim``)."""
        return target_size(*self.original_size(image_id), self.max_dim)

    def load_image(self, image_id: int) -> np.ndarray:
        """[H, W, 3] uint8 RGB, shrunk to ``max_dim``; large JPEGs are decoded at reduced scale directly.

        Raises MissingImageError / ImageLoadError naming the file (unless ``skip_unreadable``).
        """
        info = self.image_info[image_id]
        path = info["path"]
        where = f"image file {path!r} (image id {image_id}, source id {info['id']!r})"
        try:
            if path in self.bad_files:
                raise ImageLoadError(self.bad_files[path])
            if not os.path.exists(path):
                raise MissingImageError(f"missing {where}")
            return self._read_image(image_id, path, where)
        except ImageLoadError as e:
            if not self.skip_unreadable:
                raise
            if path not in self.bad_files:  # one counted warning per file, however often it is drawn
                self.bad_files[path] = str(e)
                kind = "missing_image" if isinstance(e, MissingImageError) else "unreadable_image"
                self.warnings.warn(kind, str(e))
            self.unreadable.add(image_id)
            try:
                h, w = self.loaded_size(image_id)
            except ImageLoadError:
                h = w = self.max_dim or 64
            return np.zeros([h, w, 3], dtype=np.uint8)

    def _read_image(self, image_id: int, path: str, where: str) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                file_w, file_h = im.size
                info = self.image_info[image_id]
                if not info.get("height") or not info.get("width"):
                    info["height"], info["width"] = file_h, file_w
                height, width = int(info["height"]), int(info["width"])
                if (file_h, file_w) != (height, width) and image_id not in self.unreadable:
                    self.warnings.warn(
                        "size_mismatch",
                        f"{where} is {file_h}x{file_w} but annotated as {height}x{width}; resized to match",
                    )
                th, tw = target_size(height, width, self.max_dim)
                if im.format == "JPEG" and (th, tw) != (file_h, file_w):
                    im.draft(
                        "RGB", (tw, th)
                    )  # decode at 1/2, 1/4 or 1/8 scale when that is still large enough
                if im.mode == "RGB":
                    rgb = im
                else:  # one conversion for every loader (16-bit scaled, not clipped by convert("RGB"))
                    rgb = Image.fromarray(to_rgb_uint8(pil_to_array(im)))
                if rgb.size != (tw, th):
                    rgb = rgb.resize((tw, th), Image.Resampling.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8).copy()
        except ImageLoadError:
            raise
        except Exception as e:
            raise ImageLoadError(f"cannot read {where}: {type(e).__name__}: {e}") from e

    def check_images(self, verify: bool = False) -> int:
        """Drops images whose file is missing or unreadable, with a counted warning naming each file.

        Reads only the file headers (``verify=True`` also checks the compressed data, which takes about as
        long as decoding). Re-runs ``prepare`` when the dataset was prepared. Returns the number dropped.
        """
        from PIL import Image

        kept = []
        for info in self.image_info:
            path = info["path"]
            try:
                with Image.open(path) as im:
                    if verify:
                        im.verify()
                kept.append(info)
            except FileNotFoundError:
                self.warnings.warn(
                    "missing_image", f"image file {path!r} (source id {info['id']!r}) is missing"
                )
            except Exception as e:
                self.warnings.warn(
                    "unreadable_image",
                    f"image file {path!r} (source id {info['id']!r}): {type(e).__name__}: {e}",
                )
        dropped = len(self.image_info) - len(kept)
        if dropped:
            self.image_info = kept
            self.stats["images_dropped_unreadable"] += dropped
            if self.num_images:
                self.prepare()
        return dropped

    # ----------------------------------------------------------------- masks
    def iter_instance_masks(self, image_id: int, height: int, width: int) -> Iterator[np.ndarray | None]:
        """Yields each annotated instance's [height, width] bool mask at the original size, in the order of
        ``image_info[image_id]["categories"]``; None for one that cannot be decoded (after a counted warning).
        Loaders override this."""
        raise NotImplementedError

    def load_mask_and_attributes(self, image_id: int) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """mask [H, W, N] bool (H, W as load_image), class_ids [N] int32 (negative: crowd), attributes [N].

        Instances whose mask cannot be decoded or is empty are left out of all three.
        """
        info = self.image_info[image_id]
        if image_id in self.unreadable:
            h, w = self.loaded_size(image_id) if info.get("height") else (self.max_dim or 64,) * 2
            return np.zeros([h, w, 0], bool), np.zeros([0], np.int32), []
        height, width = self.original_size(image_id)
        th, tw = target_size(height, width, self.max_dim)
        categories = info["categories"]
        class_ids = self.internal_class_ids(categories)
        crowd = info.get("crowd")
        if crowd is not None:
            class_ids = np.where(np.asarray(crowd, bool), -class_ids, class_ids).astype(np.int32)
        masks = np.zeros([th, tw, len(categories)], dtype=bool)
        keep = np.zeros(len(categories), dtype=bool)
        for k, full in enumerate(self.iter_instance_masks(image_id, height, width)):
            if full is None:
                continue
            if not full.any():
                self.warnings.warn(
                    "empty_mask", f"instance {k} of {self.image_reference(image_id)} has an empty mask"
                )
                continue
            small = resize_bool_mask(full, th, tw)
            del full
            # An instance too small to survive shrinking is dropped, as load_image_gt would after resizing.
            if small.any():
                masks[:, :, k] = small
                keep[k] = True
        attributes = [a for a, k in zip(info.get("attributes", [None] * len(keep)), keep) if k]
        return masks[:, :, keep], class_ids[keep], attributes

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """mask [H, W, N] bool with H, W those of :meth:`load_image`; class_ids [N] int32 (internal ids)."""
        mask, class_ids, _ = self.load_mask_and_attributes(image_id)
        return mask, class_ids

    def load_attributes(self, image_id: int) -> list[Any]:
        """Attribute records of the instances that :meth:`load_mask` returns, in the same order."""
        return self.load_mask_and_attributes(image_id)[2]

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"{info['source']} image {info['id']!r} ({info['path']})"

    # ----------------------------------------------------------------- subsets
    def subset(self, image_ids: Sequence[int], prepare: bool = True) -> FashionDataset:
        """A dataset of the same kind and classes holding the images ``image_ids`` (repeats allowed: a
        repeated image gets a distinct source id ``"<id>#<k>"`` so the id maps stay one-to-one)."""
        other = copy.copy(self)
        other.image_info = []
        other.unreadable = set()
        seen: Counter[Any] = Counter()
        for i in image_ids:
            info = dict(self.image_info[int(i)])
            base = info.get("duplicate_of", info["id"])
            seen[base] += 1
            if seen[base] > 1:
                info["duplicate_of"] = base
                info["id"] = f"{base}#{seen[base]}"
            other.image_info.append(info)
        other.class_info = [dict(c) for c in self.class_info]
        other._internal_ids = dict(self._internal_ids)
        if prepare:
            other.prepare()
        return other

    def describe(self) -> str:
        """Short multi-line summary: images, instances per class, data problems."""
        per_class = self.class_instance_counts()
        images = self.class_image_counts()
        lines = [f"{type(self).__name__}: {len(self.image_info)} images, {sum(per_class.values())} instances"]
        for cid, n in sorted(per_class.items()):
            lines.append(
                f"  {cid:3d} {self.class_info[cid]['name']:<40} {n:7d} instances {images[cid]:7d} images"
            )
        if self.warnings.total:
            lines.append(f"  data problems: {self.warnings.total}")
            lines.extend("    " + line for line in self.warnings.summary().splitlines())
        return "\n".join(lines)


def polygons_ok(segmentation: Any) -> tuple[list[np.ndarray], list[str]]:
    """Splits polygon lists into usable float32 arrays and descriptions of the unusable ones.

    segmentation: [[x1, y1, x2, y2, ...], ...]. A usable polygon has an even number >= 6 of finite values.
    """
    good, bad = [], []
    for j, poly in enumerate(segmentation):
        try:
            arr = np.asarray(poly, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            bad.append(f"polygon {j} is not a list of numbers")
            continue
        if arr.size < 6 or arr.size % 2 or not np.all(np.isfinite(arr)):
            bad.append(f"polygon {j} has {arr.size // 2} points (needs >= 3 (x, y) pairs)")
            continue
        good.append(arr)
    return good, bad


def decode_coco_rle(rle: dict) -> np.ndarray:
    """pycocotools compressed RLE -> [h, w] bool."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        # pycocotools 2.0 under numpy 2 warns about its own __array__ on every decode.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode([rle])[:, :, 0].astype(bool)


def rasterize_polygons(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Union of polygons ([2K] float32 x, y, x, y ... pixel coordinates) as a [height, width] bool mask."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects([p.astype(np.float64).tolist() for p in polygons], height, width)
    return decode_coco_rle(mask_utils.merge(rles))
