"""Post-processing of Mask R-CNN detections for fashion parsing.

A *detections* dict is what ``MaskRCNN.detect`` returns for one image: ``rois [N, (y1, x1, y2, x2)]`` int pixel
boxes (y2/x2 exclusive), ``class_ids [N]`` int32, ``scores [N]`` float32 in [0, 1] and ``masks [H, W, N]``
bool. Every function here returns a new dict of the same form (other keys are carried over unchanged) and
never modifies its input.

- Filters: :func:`filter_min_score`, :func:`filter_min_area` (mask pixels), :func:`cap_instances_per_class`
  (at most ``k`` instances of a class, the most confident kept; thesis 001 kept the two most confident
  shoes), and :func:`postprocess` applying the three in that order (score, area, cap: a tiny or unsure
  instance never takes one of a class's places).
- Kaggle: :func:`make_non_overlapping` gives each pixel to the most confident instance covering it;
  :func:`kaggle_rows` encodes an image's instances as iMaterialist ``(ImageId, EncodedPixels, ClassId)`` rows.
- :func:`semantic_label_map`: ``[H, W]`` class ids, instances painted in order of increasing confidence so the
  most confident wins where masks overlap.
- :func:`parse_max_per_class`: the ``--max-per-class`` option (``"2"``, ``"shoe=2"``, ``"2;shoe=2;bag=1"``).

Ties in score: the instance that comes first in the detections wins (sorting is stable), in
:func:`cap_instances_per_class`, :func:`make_non_overlapping` and :func:`semantic_label_map` alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fashion.evaluation.metrics import label_map
from fashion.rle import rle_encode
from mrcnn.boxes import extract_bboxes

__all__ = [
    "PostprocessOptions",
    "cap_instances_per_class",
    "confidence_order",
    "empty_detections",
    "filter_min_area",
    "filter_min_score",
    "kaggle_rows",
    "make_non_overlapping",
    "mask_areas",
    "num_detections",
    "parse_max_per_class",
    "postprocess",
    "predicted_attribute_ids",
    "select",
    "semantic_label_map",
]

_PER_INSTANCE = ("rois", "class_ids", "scores", "attributes")  # attributes: [N, NUM_ATTRIBUTES] scores


def num_detections(detections: Mapping) -> int:
    """Number of instances N of a detections dict."""
    return int(np.asarray(detections["class_ids"]).reshape(-1).size)


def empty_detections(height: int, width: int) -> dict:
    """A detections dict with no instance for an ``height x width`` image."""
    return {
        "rois": np.zeros([0, 4], np.int32),
        "class_ids": np.zeros([0], np.int32),
        "scores": np.zeros([0], np.float32),
        "masks": np.zeros([height, width, 0], bool),
    }


def select(detections: Mapping, keep: Sequence[int] | np.ndarray) -> dict:
    """The instances ``keep`` (indices, or an ``[N]`` bool array) of ``detections``, in that order."""
    keep = np.asarray(keep)
    if keep.dtype == bool:
        keep = np.flatnonzero(keep)
    keep = keep.astype(np.int64).reshape(-1)
    out = dict(detections)
    for key in _PER_INSTANCE:
        if key in detections and detections[key] is not None:
            out[key] = np.asarray(detections[key])[keep]
    out["masks"] = np.asarray(detections["masks"])[:, :, keep]
    return out


def confidence_order(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[N]`` indices by decreasing score; equal scores keep their given order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable")


def mask_areas(detections: Mapping) -> np.ndarray:
    """``[N]`` int64 mask areas in pixels."""
    return np.asarray(detections["masks"]).sum(axis=(0, 1), dtype=np.int64)


def filter_min_score(detections: Mapping, min_score: float | None) -> dict:
    """Keeps the instances with ``score >= min_score`` (all when ``min_score`` is None)."""
    if min_score is None:
        return dict(detections)
    return select(detections, np.asarray(detections["scores"]).reshape(-1) >= min_score)


def filter_min_area(detections: Mapping, min_area: int | None) -> dict:
    """Keeps the instances whose mask covers at least ``min_area`` pixels (all when None)."""
    if min_area is None:
        return dict(detections)
    return select(detections, mask_areas(detections) >= min_area)


def cap_instances_per_class(
    detections: Mapping, per_class: Mapping[int, int] | None = None, default: int | None = None
) -> dict:
    """Keeps at most ``per_class[c]`` instances of class ``c`` (``default`` for classes not listed; None =
    no cap), the most confident ones. The kept instances stay in their original order.

    Example: ``per_class={shoe_id: 2}`` keeps an image's two most confident shoes (thesis 001).
    """
    per_class = dict(per_class or {})
    class_ids = np.asarray(detections["class_ids"]).reshape(-1)
    keep = np.zeros(class_ids.size, dtype=bool)
    taken: dict[int, int] = {}
    for i in confidence_order(detections["scores"]):
        c = int(class_ids[i])
        limit = per_class.get(c, default)
        if limit is None or taken.get(c, 0) < limit:
            keep[i] = True
            taken[c] = taken.get(c, 0) + 1
    return select(detections, keep)


@dataclass(frozen=True)
class PostprocessOptions:
    """Settings of :func:`postprocess`.

    min_score: drop instances scoring below this. min_area: drop masks of fewer pixels.
    max_per_class: ``{class id: k}`` caps; max_default: cap of the other classes (None: no cap).
    """

    min_score: float | None = None
    min_area: int | None = None
    max_per_class: dict[int, int] = field(default_factory=dict)
    max_default: int | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.min_score, self.min_area, self.max_default)) or bool(
            self.max_per_class
        )


def postprocess(detections: Mapping, options: PostprocessOptions | None = None) -> dict:
    """Minimum score, then minimum mask area, then the per-class cap (see the module docstring)."""
    if options is None:
        return dict(detections)
    out = filter_min_score(detections, options.min_score)
    out = filter_min_area(out, options.min_area)
    if options.max_per_class or options.max_default is not None:
        out = cap_instances_per_class(out, options.max_per_class, options.max_default)
    return out


def make_non_overlapping(detections: Mapping, drop_empty: bool = True, tight_boxes: bool = True) -> dict:
    """Masks made disjoint: each pixel stays only in the most confident instance that covers it.

    Args:
        detections: a detections dict.
        drop_empty: drop instances left without pixels (wholly covered by more confident ones).
        tight_boxes: recompute ``rois`` as the tight boxes of the new masks (else keep the model's boxes).

    Returns:
        Detections whose ``masks`` have no pixel in two instances; instance order is kept.
    """
    masks = np.asarray(detections["masks"]).astype(bool)
    out_masks = np.zeros_like(masks)
    claimed = np.zeros(masks.shape[:2], dtype=bool)
    for i in confidence_order(detections["scores"]):
        own = masks[:, :, i] & ~claimed
        out_masks[:, :, i] = own
        claimed |= own
    out = dict(detections)
    out["masks"] = out_masks
    if tight_boxes:
        out["rois"] = extract_bboxes(out_masks)
    if drop_empty:
        out = select(out, out_masks.any(axis=(0, 1)))
    return out


def semantic_label_map(detections: Mapping, dtype: np.dtype | type = np.int32) -> np.ndarray:
    """``[H, W]`` class ids: instances painted in order of increasing confidence (the most confident on top,
    so it wins where masks overlap; of equal scores the first listed); 0 where no instance is. One value per
    class, not per instance. The same map as :func:`fashion.evaluation.metrics.label_map`."""
    masks = np.asarray(detections["masks"], dtype=bool)  # no copy of the [H, W, N] masks when already bool
    return label_map(detections["class_ids"], masks, detections["scores"]).astype(dtype, copy=False)


def predicted_attribute_ids(
    detections: Mapping, attribute_source_ids: Sequence[int] | None, threshold: float = 0.5
) -> list[list[int]] | None:
    """Per instance, the source ids of the attributes whose score is at least ``threshold``, increasing; None
    when ``detections`` has no ``attributes`` [N, A] scores or ``attribute_source_ids`` ([A], the dataset's id of
    each model attribute) is None."""
    scores = detections.get("attributes")
    if scores is None or attribute_source_ids is None:
        return None
    scores = np.asarray(scores).reshape(num_detections(detections), -1)
    if scores.shape[1] != len(attribute_source_ids):
        raise ValueError(
            f"{scores.shape[1]} attribute scores per instance but {len(attribute_source_ids)} attribute ids"
        )
    ids = np.asarray(attribute_source_ids, dtype=np.int64)
    return [sorted(int(i) for i in ids[row >= threshold]) for row in scores]


def kaggle_rows(
    image_id: str,
    detections: Mapping,
    source_class_ids: Mapping[int, int] | Sequence[int] | None = None,
    attribute_source_ids: Sequence[int] | None = None,
    attribute_threshold: float = 0.5,
) -> list[tuple[str, str, str]]:
    """iMaterialist 2019 submission rows ``(ImageId, EncodedPixels, ClassId)`` of one image.

    Masks are made non-overlapping first (:func:`make_non_overlapping`; instances left empty are dropped) and
    run-length encoded column-major with 1-based starts (:func:`fashion.rle.rle_encode`). Rows come by
    decreasing score.

    Args:
        image_id: the ImageId (the file name, as in the competition's files).
        detections: a detections dict at the image's original size.
        source_class_ids: the competition category id of each model class id (a mapping, or a sequence
            indexed by class id); None writes the model's class ids.
        attribute_source_ids: the competition attribute id of each model attribute; with it, and attribute
            scores in ``detections``, the ClassId is ``"<category>_<attr>_<attr>..."`` (the attributes scoring at
            least ``attribute_threshold``, increasing ids), as the competition's train.csv writes them.

    Returns:
        One row per instance; an image without instances gives ``[(image_id, "", "")]`` so that every
        image is listed.
    """
    disjoint = make_non_overlapping(detections)
    rows = []
    class_ids = np.asarray(disjoint["class_ids"]).reshape(-1)
    attributes = predicted_attribute_ids(disjoint, attribute_source_ids, attribute_threshold)
    for i in confidence_order(disjoint["scores"]):
        c = int(class_ids[i])
        label = str(c if source_class_ids is None else int(source_class_ids[c]))
        if attributes is not None and attributes[i]:
            label += "".join(f"_{a}" for a in attributes[i])
        rows.append((image_id, rle_encode(disjoint["masks"][:, :, i]), label))
    return rows or [(image_id, "", "")]


def parse_max_per_class(
    spec: str | int | None, class_names: Sequence[str]
) -> tuple[int | None, dict[int, int]]:
    """Parses a ``--max-per-class`` value into ``(default cap, {class id: cap})``.

    Entries are separated by ``;`` (class names contain commas): a bare integer is the cap of every class
    not named; ``NAME=K`` caps one class, NAME being a class name (its full name or the part before the
    first comma, any case) or class id. ``"shoe=2"`` -> ``(None, {shoe_id: 2})``; ``"3;shoe=2"`` ->
    ``(3, {shoe_id: 2})``.

    Args:
        spec: the option's text (or an int); None or "" for no cap.
        class_names: names indexed by class id, background first (full category names, e.g. "bag, wallet",
            so that both "bag, wallet=1" and "bag=1" work).

    Raises:
        ValueError naming the entry that is not understood.
    """
    if spec is None:
        return None, {}
    if isinstance(spec, int):
        spec = str(spec)
    lookup: dict[str, int] = {}
    for class_id, name in enumerate(class_names):
        if class_id == 0:
            continue
        lookup.setdefault(str(name).strip().lower(), class_id)
        lookup.setdefault(str(name).split(",")[0].strip().lower(), class_id)
    default, caps = None, {}
    for entry in (part.strip() for part in spec.split(";")):
        if not entry:
            continue
        name, sep, value = entry.rpartition("=")
        try:
            cap = int(value)
        except ValueError:
            raise ValueError(
                f"--max-per-class entry {entry!r}: expected an integer or NAME=INTEGER (entries separated by ';')"
            ) from None
        if cap < 0:
            raise ValueError(f"--max-per-class entry {entry!r}: the cap must be >= 0")
        if not sep:
            default = cap
            continue
        key = name.strip().lower()
        if key.isdigit() and 0 < int(key) < len(class_names):
            class_id = int(key)
        elif key in lookup:
            class_id = lookup[key]
        else:
            known = ", ".join(repr(str(n)) for n in class_names[1:])
            raise ValueError(
                f"--max-per-class entry {entry!r}: unknown class {name.strip()!r} (separate entries with ';'); "
                f"classes: {known}"
            )
        caps[class_id] = cap
    return default, caps
