"""Bounding-box utilities in numpy, with Matterport's names and semantics.

Pixel boxes are ``[N, (y1, x1, y2, x2)]`` with y2/x2 exclusive (one past the last pixel inside).
Normalized boxes are float ``[N, (y1, x1, y2, x2)]`` in [0, 1], made by :func:`norm_boxes`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "extract_bboxes",
    "compute_iou",
    "compute_overlaps",
    "non_max_suppression",
    "apply_box_deltas",
    "box_refinement",
    "norm_boxes",
    "denorm_boxes",
    "trim_zeros",
]

# Upper bound on the elements of one [N1, chunk] block in compute_overlaps, to bound temporary memory
# when N1 is large (e.g. ~260k anchors against 100 ground-truth boxes).
_OVERLAP_BLOCK_ELEMENTS = 4_000_000


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """Tight bounding boxes of instance masks.

    Args:
        mask: ``[H, W, N]`` instance masks (bool or 0/1).

    Returns:
        ``[N, (y1, x1, y2, x2)]`` int32 pixel boxes, y2/x2 exclusive. An empty mask gives ``(0, 0, 0, 0)``.
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    n = mask.shape[-1]
    boxes = np.zeros([n, 4], dtype=np.int32)
    rows = mask.any(axis=1)  # [H, N]: row y has a pixel of instance n
    cols = mask.any(axis=0)  # [W, N]
    present = rows.any(axis=0)
    if not present.any():
        return boxes
    h, w = rows.shape[0], cols.shape[0]
    # First True via argmax; last True via argmax on the reversed axis.
    y1 = rows.argmax(axis=0)
    y2 = h - rows[::-1].argmax(axis=0)
    x1 = cols.argmax(axis=0)
    x2 = w - cols[::-1].argmax(axis=0)
    boxes[present] = np.stack([y1, x1, y2, x2], axis=1)[present]
    return boxes


def compute_iou(box: np.ndarray, boxes: np.ndarray, box_area: float, boxes_area: np.ndarray) -> np.ndarray:
    """IoU of one box with each of an array of boxes.

    Args:
        box: ``(y1, x1, y2, x2)``.
        boxes: ``[N, (y1, x1, y2, x2)]``.
        box_area: area of ``box``; passed in (as Matterport does) so callers can compute it once.
        boxes_area: ``[N]`` areas of ``boxes``.

    Returns:
        ``[N]`` float IoUs in [0, 1]. A pair whose union is empty (two degenerate boxes) has IoU 0.
    """
    boxes = np.asarray(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + np.asarray(boxes_area) - intersection
    return _safe_divide(intersection, union)


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1: ``[N1, (y1, x1, y2, x2)]``.
        boxes2: ``[N2, (y1, x1, y2, x2)]``.

    Returns:
        ``[N1, N2]`` float64 IoUs. Works in column blocks so huge ``N1`` (anchors) stays within memory.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    n1, n2 = boxes1.shape[0], boxes2.shape[0]
    overlaps = np.zeros((n1, n2), dtype=np.float64)
    if n1 == 0 or n2 == 0:
        return overlaps
    area1 = _areas(boxes1)[:, None]
    area2 = _areas(boxes2)
    b1 = boxes1[:, None, :]
    step = max(1, _OVERLAP_BLOCK_ELEMENTS // n1)
    for start in range(0, n2, step):
        b2 = boxes2[None, start : start + step, :]
        h = np.clip(np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0]), 0, None)
        w = np.clip(np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1]), 0, None)
        intersection = h * w
        union = area1 + area2[None, start : start + step] - intersection
        overlaps[:, start : start + step] = _safe_divide(intersection, union)
    return overlaps


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``[N, (y1, x1, y2, x2)]``; the box must lie inside, i.e. y2 >= y1 and x2 >= x1.
        scores: ``[N]`` box scores.
        threshold: a box is dropped when its IoU with a kept, higher-scoring box is above this.

    Returns:
        int32 indices of the kept boxes, highest score first (ties keep the lower index first).
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros([0], dtype=np.int32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    area = _areas(boxes)
    order = np.argsort(-scores, kind="stable")
    pick = []
    while order.size > 0:
        i = order[0]
        pick.append(i)
        rest = order[1:]
        iou = compute_iou(boxes[i], boxes[rest], area[i], area[rest])
        order = rest[iou <= threshold]
    return np.array(pick, dtype=np.int32)


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Apply refinement deltas to boxes (inverse of :func:`box_refinement`).

    Args:
        boxes: ``[N, (y1, x1, y2, x2)]``.
        deltas: ``[N, (dy, dx, log(dh), log(dw))]``; dy/dx in units of box height/width.

    Returns:
        ``[N, (y1, x1, y2, x2)]`` float32 refined boxes.
    """
    boxes = np.asarray(boxes).astype(np.float32)
    deltas = np.asarray(deltas)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    center_y = center_y + deltas[:, 0] * height
    center_x = center_x + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1).astype(np.float32)


def box_refinement(box: np.ndarray, gt_box: np.ndarray) -> np.ndarray:
    """Deltas that turn ``box`` into ``gt_box``.

    Args:
        box: ``[N, (y1, x1, y2, x2)]``, non-degenerate.
        gt_box: ``[N, (y1, x1, y2, x2)]``, non-degenerate.

    Returns:
        ``[N, (dy, dx, log(dh), log(dw))]`` float32.
    """
    box = np.asarray(box).astype(np.float32)
    gt_box = np.asarray(gt_box).astype(np.float32)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1).astype(np.float32)


def norm_boxes(boxes: np.ndarray, shape: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Pixel boxes to normalized coordinates.

    ``(y2, x2)`` is exclusive in pixels and inclusive in normalized coordinates, hence
    ``(boxes - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]``.

    Args:
        boxes: ``[..., (y1, x1, y2, x2)]`` in pixels.
        shape: ``(height, width, ...)`` of the image in pixels.

    Returns:
        float32 ``[..., (y1, x1, y2, x2)]`` in normalized coordinates.
    """
    h, w = shape[0], shape[1]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide(np.asarray(boxes) - shift, scale).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Normalized boxes back to pixel coordinates (inverse of :func:`norm_boxes`).

    Args:
        boxes: ``[..., (y1, x1, y2, x2)]`` in normalized coordinates.
        shape: ``(height, width, ...)`` of the image in pixels.

    Returns:
        int32 ``[..., (y1, x1, y2, x2)]`` in pixels, rounded to the nearest integer.
    """
    h, w = shape[0], shape[1]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(np.asarray(boxes), scale) + shift).astype(np.int32)


def trim_zeros(x: np.ndarray) -> np.ndarray:
    """Drop the all-zero rows (padding) of a 2-D array such as ``[N, 4]`` boxes.

    Args:
        x: ``[N, C]``.

    Returns:
        ``[M, C]`` with the rows that are all zero removed.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros expects a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
