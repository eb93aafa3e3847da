"""Detection metrics (mask AP, box recall), with Matterport's names and semantics.

Ground truth and predictions may be zero-padded (as the model returns them): all-zero box rows are dropped
and the matching masks/scores cut to the same count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrcnn.boxes import compute_overlaps, trim_zeros
from mrcnn.masks import compute_overlaps_masks

__all__ = ["compute_matches", "compute_ap", "compute_ap_per_threshold", "compute_ap_range", "compute_recall"]


def compute_matches(
    gt_boxes: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_boxes: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedily match predictions to ground truth by mask IoU, highest score first.

    A prediction matches the unmatched ground-truth instance of the same class with which it has the
    highest mask IoU, provided that IoU is at least ``iou_threshold``.

    Args:
        gt_boxes: ``[G, (y1, x1, y2, x2)]`` pixel boxes (zero rows are padding).
        gt_class_ids: ``[G]`` int class ids.
        gt_masks: ``[H, W, G]`` bool masks.
        pred_boxes: ``[P, (y1, x1, y2, x2)]``.
        pred_class_ids: ``[P]``.
        pred_scores: ``[P]`` confidences.
        pred_masks: ``[H, W, P]``.
        iou_threshold: minimum mask IoU of a match.
        score_threshold: as in Matterport, ground truth whose *IoU* with the prediction is below this is
            not considered (despite the name, it is compared with overlaps, not scores).

    Returns:
        gt_match: ``[G]`` float, index of the matched prediction (in score order) or -1.
        pred_match: ``[P]`` float, index of the matched ground truth or -1; predictions in score order.
        overlaps: ``[P, G]`` mask IoUs, predictions in score order.
    """
    gt_count, pred_class_ids, overlaps = _score_ordered_overlaps(
        gt_boxes, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks
    )
    gt_match, pred_match = _match(overlaps, pred_class_ids, gt_class_ids, iou_threshold, score_threshold)
    return gt_match, pred_match, overlaps


def _score_ordered_overlaps(gt_boxes, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks):
    """Drop padding, order the predictions by score (highest first) and compute their mask IoUs with the
    ground truth. Returns (G, pred_class_ids [P] in score order, overlaps [P, G])."""
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = gt_masks[..., : gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[: pred_boxes.shape[0]]
    indices = np.argsort(pred_scores, kind="stable")[::-1]
    pred_masks = pred_masks[..., indices]
    return (
        gt_boxes.shape[0],
        np.asarray(pred_class_ids)[indices],
        compute_overlaps_masks(pred_masks, gt_masks),
    )


def _match(overlaps, pred_class_ids, gt_class_ids, iou_threshold, score_threshold):
    """The greedy matching of :func:`compute_matches` on score-ordered ``overlaps`` [P, G]."""
    pred_match = -1 * np.ones([overlaps.shape[0]])
    gt_match = -1 * np.ones([overlaps.shape[1]])
    for i in range(overlaps.shape[0]):
        sorted_ixs = np.argsort(overlaps[i], kind="stable")[::-1]
        low_score_idx = np.where(overlaps[i, sorted_ixs] < score_threshold)[0]
        if low_score_idx.size > 0:
            sorted_ixs = sorted_ixs[: low_score_idx[0]]
        for j in sorted_ixs:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match


def compute_ap(
    gt_boxes: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_boxes: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Average precision at one mask-IoU threshold (VOC-style, all-point interpolation).

    Args: as :func:`compute_matches`.

    Returns:
        mAP: area under the interpolated precision/recall curve, in [0, 1]. With no ground truth it is 0
            (Matterport divides by zero there).
        precisions: ``[P + 2]`` interpolated precisions, padded with 0 at both ends.
        recalls: ``[P + 2]`` recalls, padded with 0 at the start and 1 at the end.
        overlaps: ``[P, G]`` mask IoUs, predictions in score order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold
    )
    m_ap, precisions, recalls = _average_precision(gt_match, pred_match)
    return m_ap, precisions, recalls, overlaps


def _average_precision(gt_match, pred_match):
    """(mAP, precisions, recalls) of :func:`compute_ap` from a matching."""
    true_positives = np.cumsum(pred_match > -1)
    precisions = true_positives / (np.arange(len(pred_match)) + 1)
    if len(gt_match):
        recalls = true_positives.astype(np.float32) / len(gt_match)
    else:
        recalls = np.zeros(len(pred_match), dtype=np.float32)

    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Each precision becomes the maximum precision at this or any higher recall.
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    m_ap = float(np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices]))
    return m_ap, precisions, recalls


def compute_ap_per_threshold(
    gt_boxes: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_boxes: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_thresholds: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """:func:`compute_ap`'s mAP at each of ``iou_thresholds`` ([T] float), computing the mask IoUs once."""
    gt_count, ordered_class_ids, overlaps = _score_ordered_overlaps(
        gt_boxes, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks
    )
    gt_class_ids = np.asarray(gt_class_ids)[:gt_count]
    aps = []
    for iou_threshold in iou_thresholds:
        gt_match, pred_match = _match(overlaps, ordered_class_ids, gt_class_ids, iou_threshold, 0.0)
        aps.append(_average_precision(gt_match, pred_match)[0])
    return np.array(aps)


def compute_ap_range(
    gt_box: np.ndarray,
    gt_class_id: np.ndarray,
    gt_mask: np.ndarray,
    pred_box: np.ndarray,
    pred_class_id: np.ndarray,
    pred_score: np.ndarray,
    pred_mask: np.ndarray,
    iou_thresholds: Sequence[float] | np.ndarray | None = None,
    verbose: int = 1,
) -> float:
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.50:0.05:0.95, COCO's AP).

    Prints the AP at each threshold and the mean when ``verbose``.
    """
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = compute_ap_per_threshold(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask, iou_thresholds
    )
    if verbose:
        for iou_threshold, ap in zip(iou_thresholds, aps):
            print(f"AP @{iou_threshold:.2f}:\t {ap:.3f}")
    mean_ap = float(np.mean(aps))
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes: np.ndarray, gt_boxes: np.ndarray, iou: float) -> tuple[float, np.ndarray]:
    """Box recall: the fraction of ground-truth boxes that some prediction overlaps with IoU >= ``iou``.

    Each prediction counts for the ground-truth box it overlaps most.

    Args:
        pred_boxes: ``[P, (y1, x1, y2, x2)]``.
        gt_boxes: ``[G, (y1, x1, y2, x2)]``.
        iou: IoU threshold.

    Returns:
        recall: in [0, 1] (0 when there are no predictions).
        positive_ids: int indices of the predictions whose best IoU is >= ``iou``.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.shape[0] == 0 or overlaps.shape[1] == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes.tolist())) / overlaps.shape[1]
    return recall, positive_ids
