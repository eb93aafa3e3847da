"""Attribute-aware evaluation: per-attribute AP of matched instances (seed 004's measure), micro/macro F1 of
their thresholded attributes, and Fashionpedia's AP with thresholds on both mask IoU and attribute F1.

**Matched instances.** Per image, detections (by decreasing score) are matched one to one to ground-truth
instances of their own class with mask IoU >= ``iou_threshold`` (0.5), as the segmentation F1 does
(:func:`fashion.evaluation.metrics.greedy_match`). Attributes are scored on these pairs only: a missed
garment or a false one is a detection error, which the mask AP already counts.

**Per-attribute AP** (seed 004 ranks images by an attribute's score and averages over attributes; here the
items are matched instances). For attribute ``a`` the samples are the matched pairs whose ground truth is
labelled for ``a`` (weight 1: its class is annotated for ``a``, see :mod:`fashion.datasets.attributes`), the
score is the detection's score for ``a`` and the label is whether the ground truth has ``a``. AP is the
area under the step precision-recall curve, ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores in
decreasing order (ties form one step; scikit-learn's ``average_precision_score``). An attribute without a
positive sample has no AP (None) and is left out of the mean, ``mAP``.

**F1.** A detection predicts attribute ``a`` when its score is >= ``threshold`` (or, for a results file,
when ``a`` is in its ``attribute_ids``). Over the same samples: per attribute TP, FP, FN; micro F1 =
2 sum TP / (2 sum TP + sum FP + sum FN); macro F1 = the mean of the per-attribute F1 over attributes with at
least one positive or predicted sample (the others are 0/0).

**Fashionpedia AP** (``FPEval`` of the ``fashionpedia`` package 1.1, reimplemented and tested to give its
numbers): COCO mask AP in which, for the categories with attributes, a detection is a true positive only if
its mask IoU *and* the F1 of its attribute set with the ground truth's reach the thresholds. The F1 is
FPEval's "binary_macro": the two attribute multi-hot vectors over all ``N`` attributes of the dataset are
compared as binary labels and the F1 of label 1 and of label 0 averaged (each only where present). Matching
per (IoU threshold, F1 threshold) is COCO's greedy one, where a later ground truth replaces the current
match only if both its IoU and its F1 are at least as high. ``AP`` averages the 101-point interpolated
precision over IoU 0.50:0.95 and, for categories with attributes, F1 0.50:0.95 (each such category counts
once per F1 threshold), others at IoU only; ``AP_IOU50``, ``AP_F175``, ``AP_IOU50_F175``, ... fix one or
both thresholds; ``APs/APm/APl`` restrict to COCO's area ranges; ``AP_IoU_only`` ignores attributes (F1
threshold -1). FPEval's supercategory breakdowns (hard-coded to Fashionpedia's ids) are not reproduced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fashion.evaluation import metrics as m

__all__ = [
    "AREA_RANGES",
    "F1_THRESHOLDS",
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "attribute_metrics",
    "average_precision",
    "binary_macro_f1",
    "fashionpedia_eval",
    "match_instances",
]

#: COCO's IoU thresholds 0.50:0.05:0.95 and FPEval's F1 thresholds (the same values), as numpy makes them.
IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
F1_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS: np.ndarray = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: COCO's area ranges in pixels: all, small, medium, large.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0, 1e10),
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e10),
}


# ---------------------------------------------------------------------------------------------------------
# Matched instances, per-attribute AP and F1


def match_instances(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
) -> list[tuple[int, int]]:
    """(prediction index, ground-truth index) pairs of one image: each detection, by decreasing score, takes
    the unmatched ground truth of its class with the highest mask IoU >= ``iou_threshold``.

    Args:
        gt_class_ids: ``[G]``; gt_masks: ``[H, W, G]`` bool.
        pred_class_ids: ``[P]``; pred_scores: ``[P]``; pred_masks: ``[H, W, P]`` bool.
    """
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)
    if pred_class_ids.size == 0 or np.size(gt_class_ids) == 0:
        return []
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    ious = m.mask_ious(np.asarray(pred_masks)[..., order], np.asarray(gt_masks))
    pred_match, _ = m.greedy_match(ious, pred_class_ids[order], np.asarray(gt_class_ids), iou_threshold)
    return [(int(order[i]), int(j)) for i, j in enumerate(pred_match.tolist()) if j >= 0]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the step precision-recall curve of ``scores [n]`` against bool ``labels [n]``:
    ``sum_k (R_k - R_{k-1}) P_k`` over distinct scores, highest first (scikit-learn's
    ``average_precision_score``). None when there is no positive."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    positives = int(labels.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    tp = np.cumsum(labels)
    # The last index of each run of equal scores: a threshold takes a whole tie at once.
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    tp = tp[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def attribute_metrics(
    pred_scores: np.ndarray,
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    weights: np.ndarray,
    names: Sequence[str],
    threshold: float | None = None,
) -> dict:
    """Per-attribute AP, precision, recall, F1 and their means over matched instances.

    Args:
        pred_scores: ``[M, A]`` the matched detections' attribute scores.
        pred_labels: ``[M, A]`` bool, the attributes they predict (scores >= threshold, or a results file's
            ``attribute_ids``).
        gt_labels: ``[M, A]`` bool, their ground truths' attributes.
        weights: ``[M, A]``, 1 where the ground truth is labelled for the attribute (others are left out).
        names: ``[A]`` attribute names (keys of ``per_attribute``).
        threshold: the score threshold used for ``pred_labels`` (recorded only).

    Returns:
        ``{"num_matched": M, "threshold", "mAP", "micro_f1", "macro_f1", "micro_precision", "micro_recall",
        "per_attribute": {name: {"AP", "precision", "recall", "f1", "positives", "samples", "tp", "fp",
        "fn"}}}``; None where undefined (see the module docstring).
    """
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1, len(names))
    pred_labels = np.asarray(pred_labels, dtype=bool).reshape(pred_scores.shape)
    gt_labels = np.asarray(gt_labels, dtype=bool).reshape(pred_scores.shape)
    counted = np.asarray(weights).reshape(pred_scores.shape) > 0
    per_attribute = {}
    aps, f1s = [], []
    totals = np.zeros(3, dtype=np.int64)
    for a, name in enumerate(names):
        rows = counted[:, a]
        truth, predicted = gt_labels[rows, a], pred_labels[rows, a]
        tp = int(np.sum(truth & predicted))
        fp = int(np.sum(~truth & predicted))
        fn = int(np.sum(truth & ~predicted))
        totals += (tp, fp, fn)
        ap = average_precision(pred_scores[rows, a], truth)
        f1 = m.f1_from_counts(tp, fp, fn, empty_score=float("nan"))
        per_attribute[str(name)] = {
            "AP": ap,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "f1": None if np.isnan(f1) else f1,
            "positives": int(truth.sum()),
            "samples": int(rows.sum()),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
        if ap is not None:
            aps.append(ap)
        if not np.isnan(f1):
            f1s.append(f1)
    tp, fp, fn = (int(v) for v in totals)
    micro = m.f1_from_counts(tp, fp, fn, empty_score=float("nan"))
    return {
        "num_matched": int(pred_scores.shape[0]),
        "threshold": threshold,
        "mAP": float(np.mean(aps)) if aps else None,
        "micro_f1": None if np.isnan(micro) else micro,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "micro_precision": tp / (tp + fp) if tp + fp else None,
        "micro_recall": tp / (tp + fn) if tp + fn else None,
        "per_attribute": per_attribute,
    }


# ---------------------------------------------------------------------------------------------------------
# Fashionpedia AP (IoU and F1 thresholds)


def binary_macro_f1(true_ids: Iterable[int], pred_ids: Iterable[int], num_attributes: int) -> float:
    """FPEval's attribute F1 of two attribute sets over ``num_attributes`` attributes: the multi-hot vectors
    compared as binary labels, the mean of the F1 of label 1 and of label 0 over the labels that occur."""
    truth, predicted = set(true_ids), set(pred_ids)
    scores = []
    if truth or predicted:
        scores.append(2 * len(truth & predicted) / (len(truth) + len(predicted)))
    negatives = 2 * num_attributes - len(truth) - len(predicted)
    if negatives > 0:
        scores.append(2 * (num_attributes - len(truth | predicted)) / negatives)
    return float(np.mean(scores))


def _match(
    ious: np.ndarray,
    f1s: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    iou_thresholds: np.ndarray,
    f1_thresholds: np.ndarray,
    crowd_rematch: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching of one (image, category) at every (IoU, F1) threshold pair at once.

    ``ious``/``f1s`` are ``[D, G]`` with detections by decreasing score and ground truth with the ignored
    ones last. Returns ``matched [T, F, D]`` bool and ``ignored [T, F, D]`` bool (matched to an ignored
    ground truth)."""
    n_dt, n_gt = ious.shape
    shape = (len(iou_thresholds), len(f1_thresholds))
    matched = np.zeros(shape + (n_dt,), dtype=bool)
    ignored = np.zeros(shape + (n_dt,), dtype=bool)
    if n_dt == 0 or n_gt == 0:
        return matched, ignored
    gt_taken = np.zeros(shape + (n_gt,), dtype=bool)
    rematchable = gt_crowd.astype(bool) if crowd_rematch else np.zeros(n_gt, dtype=bool)
    t_index, f_index = np.indices(shape)
    for d in range(n_dt):
        best_iou = np.broadcast_to(np.minimum(iou_thresholds, 1 - 1e-10)[:, None], shape).copy()
        best_f1 = np.broadcast_to(np.minimum(f1_thresholds, 1 - 1e-10)[None, :], shape).copy()
        best = np.full(shape, -1)
        stopped = np.zeros(shape, dtype=bool)
        for g in range(n_gt):
            free = ~(gt_taken[:, :, g] & ~rematchable[g]) & ~stopped
            # Once matched to a regular ground truth, ignored ones (sorted last) are not considered.
            stop = free & (best > -1) & gt_ignore[g]
            stop &= ~gt_ignore[np.maximum(best, 0)]
            stopped |= stop
            ok = free & ~stop & (ious[d, g] >= best_iou) & (f1s[d, g] >= best_f1)
            best_iou = np.where(ok, ious[d, g], best_iou)
            best_f1 = np.where(ok, f1s[d, g], best_f1)
            best = np.where(ok, g, best)
        hit = best > -1
        matched[:, :, d] = hit
        ignored[:, :, d] = hit & gt_ignore[np.maximum(best, 0)]
        gt_taken[t_index[hit], f_index[hit], best[hit]] = True
    return matched, ignored


def _precision_at_recalls(matched: np.ndarray, ignored: np.ndarray, num_gt: int) -> np.ndarray:
    """``[K, R]`` COCO-interpolated precision at RECALL_THRESHOLDS of ``K`` rankings of detections
    (``matched``/``ignored`` ``[K, D]``, detections by decreasing score)."""
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    out = np.zeros([matched.shape[0], len(RECALL_THRESHOLDS)])
    if matched.shape[1] == 0:
        return out
    recall = tp / num_gt
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the envelope to the right
    for k in range(matched.shape[0]):
        idx = np.searchsorted(recall[k], RECALL_THRESHOLDS, side="left")
        valid = idx < recall.shape[1]
        # pycocotools stops at the first recall threshold beyond the curve: the rest stay 0.
        first_invalid = np.argmin(valid) if not valid.all() else len(idx)
        out[k, :first_invalid] = precision[k, idx[:first_invalid]]
    return out


def fashionpedia_eval(
    coco_gt,
    coco_dt,
    attribute_category_ids: Iterable[int],
    num_attributes: int,
    max_dets: int = 100,
) -> dict:
    """Fashionpedia's mask AP with IoU and attribute-F1 thresholds (see the module docstring).

    Args:
        coco_gt: a pycocotools ``COCO`` whose annotations have ``attribute_ids`` (missing = none).
        coco_dt: its results (``coco_gt.loadRes``) with ``attribute_ids`` and ``score``.
        attribute_category_ids: category ids whose instances are judged on attributes too.
        num_attributes: ``N``, the number of attributes of the dataset (the multi-hot length).
        max_dets: detections kept per image and category, by score.

    Returns:
        ``{"AP", "AP_IOU50", "AP_IOU75", "AP_F150", "AP_F175", "AP_IOU50_F150", "AP_IOU50_F175",
        "AP_IOU75_F150", "AP_IOU75_F175", "APs", "APm", "APl", "AP_IoU_only"}``; -1 where undefined
        (no ground truth), as FPEval.
    """
    from pycocotools import mask as mask_utils

    image_ids = sorted(set(coco_gt.getImgIds()))
    category_ids = sorted(set(coco_gt.getCatIds()))
    with_attributes = {int(c) for c in attribute_category_ids}
    iou_thresholds = np.r_[IOU_THRESHOLDS, -1.0]
    f1_thresholds = np.r_[F1_THRESHOLDS, -1.0]
    n_t, n_f, n_r = len(iou_thresholds), len(f1_thresholds), len(RECALL_THRESHOLDS)
    areas = list(AREA_RANGES.values())
    precision = -np.ones([n_t, n_f, n_r, len(category_ids), len(areas)])

    def by_image_category(coco, ids):
        groups: dict[tuple[int, int], list[dict]] = {}
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=ids)):
            groups.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
        return groups

    gts, dts = by_image_category(coco_gt, image_ids), by_image_category(coco_dt, image_ids)
    for k, category in enumerate(category_ids):
        attribute_category = category in with_attributes
        f1_slots = np.arange(n_f) if attribute_category else np.array([n_f - 1])
        per_area: list[list[tuple]] = [[] for _ in areas]
        for image in image_ids:
            gt = gts.get((image, category), [])
            dt = dts.get((image, category), [])
            if not gt and not dt:
                continue
            dt = [dt[i] for i in np.argsort([-d["score"] for d in dt], kind="mergesort")[:max_dets]]
            crowd = np.array([bool(g.get("iscrowd", 0)) for g in gt], dtype=bool)
            if gt and dt:
                ious = np.asarray(
                    mask_utils.iou(
                        [coco_dt.annToRLE(d) for d in dt], [coco_gt.annToRLE(g) for g in gt], crowd.tolist()
                    )
                ).reshape(len(dt), len(gt))
            else:
                ious = np.zeros([len(dt), len(gt)])
            f1s = np.zeros_like(ious)
            if attribute_category:
                for i, d in enumerate(dt):
                    for j, g in enumerate(gt):
                        f1s[i, j] = binary_macro_f1(
                            g.get("attribute_ids") or [], d.get("attribute_ids") or [], num_attributes
                        )
            dt_area = np.array([d["area"] for d in dt], dtype=np.float64)
            scores = np.array([d["score"] for d in dt], dtype=np.float64)
            for a, (low, high) in enumerate(areas):
                gt_ignore = np.array(
                    [c or g["area"] < low or g["area"] > high for c, g in zip(crowd, gt)], dtype=bool
                )
                order = np.argsort(gt_ignore, kind="mergesort")
                matched, ignored = _match(
                    ious[:, order],
                    f1s[:, order],
                    gt_ignore[order],
                    crowd[order],
                    iou_thresholds,
                    f1_thresholds[f1_slots],
                    crowd_rematch=not attribute_category,
                )
                outside = (dt_area < low) | (dt_area > high)
                ignored |= ~matched & outside[None, None, :]
                per_area[a].append((scores, matched, ignored, int(np.sum(~gt_ignore))))
        for a, entries in enumerate(per_area):
            num_gt = sum(e[3] for e in entries)
            if not entries or num_gt == 0:
                continue
            scores = np.concatenate([e[0] for e in entries])
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate([e[1] for e in entries], axis=2)[:, :, order]
            ignored = np.concatenate([e[2] for e in entries], axis=2)[:, :, order]
            rows = n_t * len(f1_slots)
            flat = _precision_at_recalls(
                matched.reshape(rows, matched.shape[2]), ignored.reshape(rows, ignored.shape[2]), num_gt
            )
            flat = flat.reshape(n_t, len(f1_slots), n_r)
            for j, slot in enumerate(f1_slots):
                precision[:, slot, :, k, a] = flat[:, j]
    return _summaries(precision, category_ids, with_attributes)


def _summaries(precision: np.ndarray, category_ids: Sequence[int], with_attributes: set[int]) -> dict:
    """FPEval's summary numbers from ``precision [T + 1, F + 1, R, K, areas]`` (last T and F slots: -1)."""
    areas = list(AREA_RANGES)

    def mean_ap(iou: float | None = None, f1: float | None = None, area: str = "all", use_f1: bool = True):
        p = precision[:, :, :, :, areas.index(area)]
        p = p[:-1] if iou is None else p[np.flatnonzero(IOU_THRESHOLDS == iou)]
        parts = []
        for k, category in enumerate(category_ids):
            if use_f1 and category in with_attributes:
                slots = np.arange(len(F1_THRESHOLDS)) if f1 is None else np.flatnonzero(F1_THRESHOLDS == f1)
            else:
                slots = np.array([-1])
            parts.append(p[:, slots, :, k].reshape(-1))
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    out = {"AP": mean_ap(), "AP_IOU50": mean_ap(iou=0.5), "AP_IOU75": mean_ap(iou=0.75)}
    for f1 in (0.5, 0.75):
        out[f"AP_F1{int(f1 * 100)}"] = mean_ap(f1=f1)
    for iou in (0.5, 0.75):
        for f1 in (0.5, 0.75):
            out[f"AP_IOU{int(iou * 100)}_F1{int(f1 * 100)}"] = mean_ap(iou=iou, f1=f1)
    out.update(APs=mean_ap(area="small"), APm=mean_ap(area="medium"), APl=mean_ap(area="large"))
    out["AP_IoU_only"] = mean_ap(use_f1=False)
    return out
