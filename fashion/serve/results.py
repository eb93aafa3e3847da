"""Detections -> the garments of a response: the ``infer`` post-processing, COCO RLE masks, polygons and
attributes.

A detections dict is ``MaskRCNN.detect``'s (see :mod:`fashion.postprocess`), optionally with ``attributes``
``[N, A]`` scores in [0, 1] from a model with an attribute head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fashion import postprocess as pp

__all__ = ["ParseOptions", "garments", "mask_polygons", "select_detections"]


@dataclass(frozen=True)
class ParseOptions:
    """What a request asks for.

    postprocess: min score, min area and per-class caps, as ``infer``'s --min-score / --min-area /
    --max-per-class. max_instances: keep at most this many garments, the most confident (None: all).
    polygons: add each mask's outlines. attribute_threshold: list the attributes scoring at least this.
    """

    postprocess: pp.PostprocessOptions = pp.PostprocessOptions()
    max_instances: int | None = None
    polygons: bool = False
    attribute_threshold: float = 0.5


def select_detections(detections: Mapping, options: ParseOptions) -> dict:
    """The detections a request keeps, by decreasing score: :func:`fashion.postprocess.postprocess`, then
    the ``max_instances`` most confident."""
    kept = pp.postprocess(detections, options.postprocess)
    order = pp.confidence_order(kept["scores"])
    if options.max_instances is not None:
        order = order[: options.max_instances]
    return pp.select(kept, order)


def mask_polygons(mask: np.ndarray, tolerance: float = 1.0) -> list[list[float]]:
    """The outlines of a ``[H, W]`` bool mask as COCO polygons ``[x1, y1, x2, y2, ...]``.

    Vertices are continuous coordinates (pixel ``(x, y)`` covers ``[x, x+1] x [y, y+1]``), on the
    boundary between mask and background pixels, simplified to within ``tolerance`` pixels; outlines of
    fewer than 3 vertices are dropped. Holes come out as polygons too (COCO polygons cannot mark them).
    """
    from skimage.measure import approximate_polygon, find_contours

    # Pad so that a mask touching the border still gives closed outlines.
    padded = np.pad(np.asarray(mask, dtype=bool).astype(np.float32), 1)
    polygons = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance) if tolerance > 0 else contour
        if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
            contour = contour[:-1]  # find_contours closes a loop by repeating its first vertex
        if len(contour) < 3:
            continue
        # (row, col) of the padded grid's pixel centres -> continuous (x, y) of the image.
        xy = contour[:, ::-1] - 1.0 + 0.5
        polygons.append([round(float(v), 2) for v in xy.reshape(-1)])
    return polygons


def _attribute_list(scores: np.ndarray, names: Sequence[str] | None, threshold: float) -> list[dict]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    chosen = [a for a in np.argsort(-scores, kind="stable") if scores[a] >= threshold]
    return [
        {
            "id": int(a),
            "name": str(names[a]) if names is not None and a < len(names) else f"attribute {int(a)}",
            "score": float(scores[a]),
        }
        for a in chosen
    ]


def garments(
    detections: Mapping,
    class_names: Sequence[str],
    options: ParseOptions = ParseOptions(),
    attribute_names: Sequence[str] | None = None,
) -> list[dict]:
    """The response's garments of already selected detections (:func:`select_detections`), in their order.

    class_names: names by class id. attribute_names: names by attribute index, used when the detections have
    ``attributes``.
    """
    from fashion.evaluation.coco_eval import encode_masks

    masks = np.asarray(detections["masks"]).astype(bool)
    rles = encode_masks(masks)
    areas = pp.mask_areas(detections)
    rois = np.asarray(detections["rois"]).reshape(-1, 4)
    class_ids = np.asarray(detections["class_ids"]).reshape(-1)
    scores = np.asarray(detections["scores"], dtype=np.float64).reshape(-1)
    attributes = detections.get("attributes")
    out = []
    for i in range(class_ids.size):
        c = int(class_ids[i])
        y1, x1, y2, x2 = (int(v) for v in rois[i])
        garment = {
            "class_id": c,
            "class_name": str(class_names[c]) if 0 <= c < len(class_names) else str(c),
            "score": float(scores[i]),
            "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "area": int(areas[i]),
            "mask": {"size": [int(v) for v in rles[i]["size"]], "counts": rles[i]["counts"]},
        }
        if options.polygons:
            garment["polygons"] = mask_polygons(masks[:, :, i])
        if attributes is not None:
            garment["attributes"] = _attribute_list(
                np.asarray(attributes)[i], attribute_names, options.attribute_threshold
            )
        out.append(garment)
    return out
