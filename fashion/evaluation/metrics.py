"""Evaluation metrics for fashion parsing, as pure numpy functions.

Conventions: class ids are ints with 0 = background and ``1 .. num_classes - 1`` the object classes
(``num_classes`` counts the background, as Matterport's ``NUM_CLASSES``). Instance masks are ``[H, W, N]``
bool. A *label vector* is ``[k]`` bool with ``k = num_classes - 1``; position ``j`` says whether class
``j + 1`` is present in an image.

Sources:

- thesis 001, section 2.3.1: multi-label metrics EMR (eq. 1), OA (eq. 2), JSS (eq. 3); instance metrics
  F1 (eq. 8) and mAP@50 (eqs. 9-10); section 2.3.2: mean inference time (eq. 11); section 5.2:
  classification (eq. 15), segmentation (17), speed (18), trade-off TO (19) and total trade-off TTO (21).
- deck 002: the iMaterialist 2019 Kaggle score, the mean over IoU thresholds 0.50:0.05:0.95 of
  TP / (TP + FP + FN).
- thesis 003, section 6.1: pixel-level accuracy, precision, recall and F1 of a semantic label map.

Where the seeds leave a case open, the choice is stated in the function's docstring; in short, an image
with no ground truth and no predictions is a perfect image (1.0) for JSS, F1 and the Kaggle score, and is
left out of mAP@50 (AP needs at least one positive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrcnn.masks import compute_overlaps_masks
from mrcnn.metrics import compute_ap

__all__ = [
    "KAGGLE_IOU_THRESHOLDS",
    "label_vector",
    "label_vectors",
    "exact_match_ratio",
    "overall_accuracy",
    "jaccard_similarity",
    "classification_score",
    "segmentation_score",
    "speed_score",
    "trade_off_score",
    "total_trade_off_score",
    "mean_inference_seconds",
    "mask_ious",
    "greedy_match",
    "match_counts",
    "f1_from_counts",
    "image_f1",
    "image_ap50",
    "mean_ap50",
    "kaggle_image_score",
    "label_map",
    "pixel_confusion_matrix",
    "pixel_metrics",
]

#: IoU thresholds of the iMaterialist Kaggle metric, 0.50, 0.55, ..., 0.95 (rounded, so 0.7 is 0.7).
KAGGLE_IOU_THRESHOLDS: np.ndarray = np.round(np.linspace(0.5, 0.95, 10), 2)


# ---------------------------------------------------------------------------------------------------------
# Multi-label image classification (thesis 001 eqs. 1-3)


def label_vector(class_ids: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Label-membership vector of one image.

    Args:
        class_ids: ``[N]`` class ids of the image's instances (repeats allowed; 0 = background is ignored).
        num_classes: number of classes including the background.

    Returns:
        ``[num_classes - 1]`` bool; entry ``j`` is True when class ``j + 1`` occurs in ``class_ids``.
    """
    ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if np.any((ids < 0) | (ids >= num_classes)):
        raise ValueError(f"class ids must lie in [0, {num_classes}), got {ids.tolist()}")
    vector = np.zeros(num_classes, dtype=bool)
    vector[ids] = True
    return vector[1:]


def label_vectors(class_ids_per_image: Sequence[Sequence[int] | np.ndarray], num_classes: int) -> np.ndarray:
    """``[n, num_classes - 1]`` bool label vectors of ``n`` images (see :func:`label_vector`)."""
    return np.array([label_vector(ids, num_classes) for ids in class_ids_per_image], dtype=bool).reshape(
        len(class_ids_per_image), num_classes - 1
    )


def _check_label_arrays(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.atleast_2d(np.asarray(y_true, dtype=bool))
    y_pred = np.atleast_2d(np.asarray(y_pred, dtype=bool))
    if y_true.shape != y_pred.shape:
        raise ValueError(f"label arrays differ in shape: {y_true.shape} vs {y_pred.shape}")
    if y_true.shape[0] == 0:
        raise ValueError("no images")
    return y_true, y_pred


def exact_match_ratio(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Exact match ratio (thesis 001 eq. 1): the fraction of images whose label set is predicted exactly.

    Args:
        y_true: ``[n, k]`` bool true label vectors.
        y_pred: ``[n, k]`` bool predicted label vectors.

    Returns:
        EMR in [0, 1].
    """
    y_true, y_pred = _check_label_arrays(y_true, y_pred)
    return float(np.mean(np.all(y_true == y_pred, axis=1)))


def overall_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Overall accuracy (thesis 001 eq. 2): the fraction of the ``n * k`` (image, class) entries predicted
    right, absent classes included.

    Eq. 2 as printed is garbled; this is the reading its worked example (Table 2, eq. 4) fixes: one image,
    five classes, four entries right, OA = 4/5.

    Args:
        y_true: ``[n, k]`` bool true label vectors.
        y_pred: ``[n, k]`` bool predicted label vectors.

    Returns:
        OA in [0, 1].
    """
    y_true, y_pred = _check_label_arrays(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def jaccard_similarity(y_true: np.ndarray, y_pred: np.ndarray, empty_score: float = 1.0) -> float:
    """Jaccard similarity score (thesis 001 eq. 3): the mean over images of ``|Y & Z| / |Y | Z|``.

    An image with no true and no predicted label (0 / 0) scores ``empty_score``, 1.0 by default: its
    prediction is exactly right, as the EMR also counts it.

    Args:
        y_true: ``[n, k]`` bool true label vectors.
        y_pred: ``[n, k]`` bool predicted label vectors.
        empty_score: score of an image whose true and predicted label sets are both empty.

    Returns:
        JSS in [0, 1].
    """
    y_true, y_pred = _check_label_arrays(y_true, y_pred)
    intersection = np.sum(y_true & y_pred, axis=1)
    union = np.sum(y_true | y_pred, axis=1)
    scores = np.full(y_true.shape[0], float(empty_score))
    np.divide(intersection, union, out=scores, where=union > 0)
    return float(np.mean(scores))


# ---------------------------------------------------------------------------------------------------------
# Combined scores (thesis 001 section 5.2)


def classification_score(emr: float, oa: float, jss: float) -> float:
    """Classification score (thesis 001 eq. 15): ``(3 * EMR + OA + 2 * JSS) / 6``, in [0, 1]."""
    return (3.0 * emr + oa + 2.0 * jss) / 6.0


def segmentation_score(map50: float, f1: float) -> float:
    """Segmentation score (thesis 001 eq. 17): ``(mAP@50 + F1) / 2``, in [0, 1]."""
    return (map50 + f1) / 2.0


def speed_score(mean_seconds: float) -> float:
    """Speed score (thesis 001 eq. 18): the mean inference time per image in seconds, divided by 10."""
    return mean_seconds / 10.0


def trade_off_score(classification: float, segmentation: float, speed: float) -> float:
    """Trade-off score TO (thesis 001 eq. 19): ``classification + segmentation - speed`` (scores, not
    seconds: ``speed`` is :func:`speed_score`'s value)."""
    return classification + segmentation - speed


def total_trade_off_score(classification_client: float, trade_off_test: float) -> float:
    """Total trade-off score TTO (thesis 001 eq. 21): ``1.5 * classification score on the client set C +
    TO on the iMaterialist test set M_test``."""
    return 1.5 * classification_client + trade_off_test


def mean_inference_seconds(seconds: Sequence[float] | np.ndarray) -> float:
    """Mean inference time per image ``T_inf`` (thesis 001 eq. 11), in seconds."""
    seconds = np.asarray(seconds, dtype=np.float64).reshape(-1)
    if seconds.size == 0:
        raise ValueError("no timings")
    return float(np.mean(seconds))


# ---------------------------------------------------------------------------------------------------------
# Instance matching


def mask_ious(pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
    """``[P, G]`` mask IoUs of ``pred_masks [H, W, P]`` with ``gt_masks [H, W, G]`` (0 where both empty)."""
    if pred_masks.shape[:2] != gt_masks.shape[:2]:
        raise ValueError(f"mask sizes differ: {pred_masks.shape[:2]} vs {gt_masks.shape[:2]}")
    return compute_overlaps_masks(pred_masks.astype(bool), gt_masks.astype(bool))


def greedy_match(
    ious: np.ndarray,
    pred_class_ids: np.ndarray,
    gt_class_ids: np.ndarray,
    iou_threshold: float,
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Match predictions to ground truth one to one, by class and mask IoU, greedily.

    Predictions are taken in the given order (pass them sorted by decreasing score); each one takes,
    among the still unmatched ground-truth instances *of its own class* whose IoU with it is at least
    ``iou_threshold`` (greater than it when ``strict``), the one of highest IoU (the first on ties). This
    is the matching of Matterport's ``compute_matches`` (and COCO's, without crowd regions).

    Args:
        ious: ``[P, G]`` IoUs, predictions in matching order.
        pred_class_ids: ``[P]`` class ids, same order.
        gt_class_ids: ``[G]`` class ids.
        iou_threshold: minimum IoU of a match.
        strict: require IoU > threshold instead of >=.

    Returns:
        pred_match: ``[P]`` int, the matched ground-truth index or -1.
        gt_match: ``[G]`` int, the matched prediction index or -1.
    """
    n_pred, n_gt = ious.shape
    pred_match = np.full(n_pred, -1, dtype=np.int64)
    gt_match = np.full(n_gt, -1, dtype=np.int64)
    if n_pred == 0 or n_gt == 0:
        return pred_match, gt_match
    same_class = np.asarray(pred_class_ids)[:, None] == np.asarray(gt_class_ids)[None, :]
    above = ious > iou_threshold if strict else ious >= iou_threshold
    candidates = same_class & above
    for i in range(n_pred):
        free = candidates[i] & (gt_match < 0)
        if not free.any():
            continue
        j = int(np.argmax(np.where(free, ious[i], -1.0)))
        pred_match[i] = j
        gt_match[j] = i
    return pred_match, gt_match


def _score_order(pred_scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")


def match_counts(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
    strict: bool = False,
) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one image (thesis 001 section 2.3.1).

    A TP is a prediction matched (:func:`greedy_match`, predictions by decreasing score) to a ground-truth
    mask of its class with mask IoU >= ``iou_threshold`` (> when ``strict``); an FP is an unmatched
    prediction; an FN an unmatched ground-truth mask.

    Args:
        gt_class_ids: ``[G]``; gt_masks: ``[H, W, G]`` bool.
        pred_class_ids: ``[P]``; pred_scores: ``[P]``; pred_masks: ``[H, W, P]`` bool.
        iou_threshold: IoU threshold of a match.
        strict: see :func:`greedy_match`.

    Returns:
        ``(tp, fp, fn)``.
    """
    order = _score_order(pred_scores)
    ious = mask_ious(pred_masks[..., order], gt_masks)
    pred_match, gt_match = greedy_match(
        ious, np.asarray(pred_class_ids)[order], gt_class_ids, iou_threshold, strict
    )
    tp = int(np.sum(pred_match >= 0))
    return tp, len(pred_match) - tp, len(gt_match) - tp


def f1_from_counts(tp: int, fp: int, fn: int, empty_score: float = 1.0) -> float:
    """F1 = 2 P R / (P + R) with P = TP / (TP + FP), R = TP / (TP + FN) (thesis 001 eqs. 6-8).

    Written as ``2 TP / (2 TP + FP + FN)``, which equals it wherever P and R are defined and is 0 when
    TP = 0. With no prediction and no ground truth at all (0 / 0) it is ``empty_score``.
    """
    denominator = 2 * tp + fp + fn
    return float(empty_score) if denominator == 0 else 2.0 * tp / denominator


def image_f1(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
) -> float:
    """F1 of one image at mask IoU ``iou_threshold`` (:func:`match_counts` then :func:`f1_from_counts`).

    Thesis 001's F1 (eq. 8) is the mean of this over the test images.
    """
    return f1_from_counts(
        *match_counts(gt_class_ids, gt_masks, pred_class_ids, pred_scores, pred_masks, iou_threshold)
    )


def image_ap50(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
) -> float | None:
    """AP@50 of one image (thesis 001 eq. 9) with Matterport's ``compute_ap``, which the thesis used.

    The area under the all-point interpolated precision/recall curve of the image's predictions ranked by
    score, a prediction being a TP when it matches a ground-truth mask of its own class with IoU >=
    ``iou_threshold``. Eq. 10's split into classes is realised by the class-aware matching: the thesis's
    Matterport code ranks all of an image's predictions together.

    Returns:
        AP in [0, 1], or None when the image has no ground-truth instance (AP is undefined without
        positives; such images are left out of :func:`mean_ap50`).
    """
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    if gt_class_ids.size == 0:
        return None
    # compute_ap only counts instances through the boxes (dropping all-zero rows); any non-zero box does.
    ones_gt = np.ones([gt_class_ids.size, 4])
    ones_pred = np.ones([np.asarray(pred_class_ids).size, 4])
    ap = compute_ap(
        ones_gt,
        gt_class_ids,
        gt_masks.astype(bool),
        ones_pred,
        np.asarray(pred_class_ids),
        np.asarray(pred_scores, dtype=np.float64),
        pred_masks.astype(bool),
        iou_threshold=iou_threshold,
    )[0]
    return float(ap)


def mean_ap50(per_image_ap: Sequence[float | None]) -> float | None:
    """mAP@50 (thesis 001 eq. 10): the mean of :func:`image_ap50` over the images that have ground truth
    (``None`` entries are skipped); None if no image has any."""
    values = [ap for ap in per_image_ap if ap is not None]
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------------------------------------------------
# iMaterialist 2019 Kaggle score


def kaggle_image_score(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    thresholds: Sequence[float] | np.ndarray = KAGGLE_IOU_THRESHOLDS,
) -> float:
    """The iMaterialist Fashion 2019 (Kaggle) score of one image.

    ``mean over t in thresholds of TP(t) / (TP(t) + FP(t) + FN(t))``, thresholds 0.50, 0.55, ..., 0.95.

    Matching at threshold ``t``: predictions are taken by decreasing score (ties: given order); each is
    matched to the unmatched ground-truth mask *of the same class* with the highest mask IoU, provided that
    IoU is strictly greater than ``t`` (Kaggle: "IoU above the threshold"); each ground-truth mask matches
    at most one prediction. TP = matched predictions, FP = unmatched predictions, FN = unmatched
    ground-truth masks. Attributes (part of the original competition's labels) are not scored.

    An image with no ground truth and no predictions scores 1.0 at every threshold (nothing to find,
    nothing falsely found); with ground truth but no predictions, or predictions but no ground truth, it
    scores 0. The dataset score is the plain mean of this over images.

    Args:
        gt_class_ids: ``[G]``; gt_masks: ``[H, W, G]`` bool.
        pred_class_ids: ``[P]``; pred_scores: ``[P]``; pred_masks: ``[H, W, P]`` bool.
        thresholds: IoU thresholds.

    Returns:
        Score in [0, 1].
    """
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    order = _score_order(pred_scores)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)[order]
    n_pred, n_gt = pred_class_ids.size, gt_class_ids.size
    if n_pred == 0 and n_gt == 0:
        return 1.0
    ious = mask_ious(pred_masks[..., order], gt_masks)
    scores = []
    for t in thresholds:
        pred_match, _ = greedy_match(ious, pred_class_ids, gt_class_ids, float(t), strict=True)
        tp = int(np.sum(pred_match >= 0))
        scores.append(tp / (n_pred + n_gt - tp))  # TP + FP + FN
    return float(np.mean(scores))


# ---------------------------------------------------------------------------------------------------------
# Pixel-level metrics of the semantic label map (thesis 003 section 6.1)


def label_map(
    class_ids: np.ndarray,
    masks: np.ndarray,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """Semantic label map of one image from its instance masks.

    Instances are painted in order of increasing ``scores``, so where masks overlap the most confident
    instance wins, and of equal scores the one listed first (as ``fashion.postprocess.confidence_order``
    ranks them); without scores (ground truth) they are painted in the given order, the later winning.
    Pixels of no instance are 0 (background).

    Args:
        class_ids: ``[N]`` class ids.
        masks: ``[H, W, N]`` bool.
        scores: ``[N]`` confidences, or None.

    Returns:
        ``[H, W]`` int32 class ids.
    """
    class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    if masks.shape[-1] != class_ids.size:
        raise ValueError(f"{masks.shape[-1]} masks for {class_ids.size} class ids")
    out = np.zeros(masks.shape[:2], dtype=np.int32)
    if scores is None:
        order = np.arange(class_ids.size)
    else:  # decreasing score, ties in list order, then reversed: the first-ranked is painted last
        order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable")[::-1]
    for i in order:
        out[masks[..., i].astype(bool, copy=False)] = class_ids[i]
    return out


def pixel_confusion_matrix(gt_map: np.ndarray, pred_map: np.ndarray, num_classes: int) -> np.ndarray:
    """``[num_classes, num_classes]`` int64 pixel counts: row = true class, column = predicted class."""
    if gt_map.shape != pred_map.shape:
        raise ValueError(f"label maps differ in shape: {gt_map.shape} vs {pred_map.shape}")
    flat = gt_map.astype(np.int64).ravel() * num_classes + pred_map.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def pixel_metrics(confusion: np.ndarray) -> dict:
    """Pixel accuracy, precision, recall and F1 (thesis 003 section 6.1) from a pixel confusion matrix.

    - ``accuracy``: correctly labelled pixels / all pixels (background included).
    - ``foreground_accuracy``: correctly labelled pixels / pixels whose true label is not background.
    - per class c >= 1: precision = pixels right as c / pixels predicted c; recall = pixels right as c /
      pixels truly c; F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN). 0 / 0 gives 0.
    - ``precision``, ``recall``, ``f1``: their unweighted means over the *present* object classes, those
      with at least one true or predicted pixel (background is not averaged in).

    Sum the confusion matrices of all images first to get dataset-level values.

    Args:
        confusion: ``[C, C]`` counts, rows true, columns predicted (:func:`pixel_confusion_matrix`).

    Returns:
        dict with the keys above plus ``per_class``: ``{"precision", "recall", "f1", "present"}``, each a
        ``[C - 1]`` array for classes ``1 .. C - 1``. Means are None when no class is present.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    correct = np.diag(confusion)
    fg_true = confusion[1:].sum()
    tp = correct[1:]
    pred_count = confusion[:, 1:].sum(axis=0)
    true_count = confusion[1:, :].sum(axis=1)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    precision = ratio(tp, pred_count)
    recall = ratio(tp, true_count)
    f1 = ratio(2 * tp, pred_count + true_count)
    present = (pred_count + true_count) > 0

    def mean(values: np.ndarray) -> float | None:
        return float(values[present].mean()) if present.any() else None

    return {
        "accuracy": float(correct.sum() / total) if total > 0 else None,
        "foreground_accuracy": float(tp.sum() / fg_true) if fg_true > 0 else None,
        "precision": mean(precision),
        "recall": mean(recall),
        "f1": mean(f1),
        "per_class": {"precision": precision, "recall": recall, "f1": f1, "present": present},
    }
