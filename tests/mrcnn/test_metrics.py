import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrcnn.boxes import extract_bboxes
from mrcnn.metrics import (
    compute_ap,
    compute_ap_per_threshold,
    compute_ap_range,
    compute_matches,
    compute_recall,
)

H, W = 40, 60


def _masks(rects):
    masks = np.zeros((H, W, len(rects)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(rects):
        masks[y1:y2, x1:x2, i] = True
    return masks


GT_RECTS = [(0, 0, 10, 10), (20, 30, 30, 50)]
GT_MASKS = _masks(GT_RECTS)
GT_BOXES = extract_bboxes(GT_MASKS)
GT_IDS = np.array([1, 2])


def test_perfect_prediction_has_ap_one():
    ap, precisions, recalls, overlaps = compute_ap(
        GT_BOXES, GT_IDS, GT_MASKS, GT_BOXES, GT_IDS, np.array([0.9, 0.8]), GT_MASKS
    )
    assert ap == pytest.approx(1.0)
    np.testing.assert_allclose(overlaps, np.eye(2))
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])
    np.testing.assert_allclose(precisions, [1, 1, 1, 0])


def test_empty_prediction_has_ap_zero():
    ap, precisions, recalls, overlaps = compute_ap(
        GT_BOXES, GT_IDS, GT_MASKS, np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), np.zeros((H, W, 0))
    )
    assert ap == 0.0
    assert overlaps.shape == (0, 2)


def test_known_ap_with_false_positive_between_hits():
    # Scores: hit A (0.9), false positive (0.8), hit B (0.7).
    # Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 0.5 * 1 + 0.5 * 2/3.
    pred_rects = [GT_RECTS[1], (0, 40, 10, 55), GT_RECTS[0]]
    pred_masks = _masks(pred_rects)
    ap, precisions, recalls, _ = compute_ap(
        GT_BOXES,
        GT_IDS,
        GT_MASKS,
        extract_bboxes(pred_masks),
        np.array([2, 1, 1]),
        np.array([0.7, 0.8, 0.9]),
        pred_masks,
    )
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])


def test_compute_matches_class_threshold_and_padding():
    # Prediction 0 overlaps gt 0 well but has the wrong class; prediction 1 overlaps gt 1 at IoU 0.5.
    pred_rects = [GT_RECTS[0], (20, 30, 30, 40)]
    pred_masks = _masks(pred_rects + [(0, 0, 0, 0)])
    pred_boxes = np.concatenate([extract_bboxes(pred_masks)[:2], np.zeros((1, 4), np.int32)])
    gt_boxes = np.concatenate([GT_BOXES, np.zeros((2, 4), np.int32)])  # zero-padded like the model's
    gt_masks = np.concatenate([GT_MASKS, np.zeros((H, W, 2), bool)], axis=2)
    args = (
        gt_boxes,
        GT_IDS,
        gt_masks,
        pred_boxes,
        np.array([2, 2, 0]),
        np.array([0.9, 0.8, 0.0]),
        pred_masks,
    )
    gt_match, pred_match, overlaps = compute_matches(*args, iou_threshold=0.5)
    np.testing.assert_array_equal(gt_match, [-1, 1])
    np.testing.assert_array_equal(pred_match, [-1, 1])
    np.testing.assert_allclose(overlaps, [[1, 0], [0, 0.5]])
    gt_match, pred_match, _ = compute_matches(*args, iou_threshold=0.6)
    np.testing.assert_array_equal(pred_match, [-1, -1])


def test_each_ground_truth_matched_once_by_best_scoring_prediction():
    pred_masks = _masks([GT_RECTS[0], GT_RECTS[0]])
    gt_match, pred_match, _ = compute_matches(
        GT_BOXES,
        GT_IDS,
        GT_MASKS,
        extract_bboxes(pred_masks),
        np.array([1, 1]),
        np.array([0.3, 0.6]),
        pred_masks,
    )
    np.testing.assert_array_equal(pred_match, [0, -1])  # predictions in score order: 0.6 first
    np.testing.assert_array_equal(gt_match, [0, -1])


def test_no_ground_truth_gives_zero_ap_without_warnings():
    with np.errstate(all="raise"):
        ap, *_ = compute_ap(
            np.zeros((0, 4)),
            np.zeros(0, int),
            np.zeros((H, W, 0)),
            GT_BOXES,
            GT_IDS,
            np.array([0.9, 0.8]),
            GT_MASKS,
        )
    assert ap == 0.0


def test_compute_ap_range(capsys):
    pred_masks = GT_MASKS.copy()
    pred_masks[0:10, 9, 0] = False  # IoU 0.9 with gt 0
    args = (GT_BOXES, GT_IDS, GT_MASKS, GT_BOXES, GT_IDS, np.array([0.9, 0.8]), pred_masks)
    # The 0.9-IoU prediction scores highest: above IoU 0.9 it is a false positive ranked first, and the
    # other hit then has precision 1/2 at recall 1/2 -> AP 0.25. Thresholds 0.5..0.85 give 1; 0.9 (computed
    # as 0.9000000000000004 by np.arange) and 0.95 give 0.25.
    assert compute_ap_range(*args, verbose=0) == pytest.approx((8 * 1.0 + 2 * 0.25) / 10)
    assert capsys.readouterr().out == ""
    assert compute_ap_range(*args, iou_thresholds=[0.5, 0.95], verbose=1) == pytest.approx(0.625)
    out = capsys.readouterr().out
    assert "AP @0.50:\t 1.000" in out and "AP @0.95:\t 0.250" in out and "AP @0.50-0.95:\t 0.625" in out


def test_compute_recall_known_values():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    pred = np.array([[0, 0, 10, 9], [0, 0, 10, 10], [20, 20, 30, 24], [80, 80, 90, 90]])
    recall, positive_ids = compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1])
    assert compute_recall(np.zeros((0, 4)), gt, 0.5)[0] == 0.0


@st.composite
def disjoint_instances(draw):
    """Up to 6 non-overlapping rectangles on a 6-cell grid, with class ids and scores."""
    cells = draw(st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True))
    rects = []
    for c in cells:
        y0, x0 = (c // 3) * 20, (c % 3) * 20
        y1, x1 = draw(st.integers(y0, y0 + 8)), draw(st.integers(x0, x0 + 8))
        rects.append((y1, x1, draw(st.integers(y1 + 2, y0 + 20)), draw(st.integers(x1 + 2, x0 + 20))))
    ids = np.array(draw(st.lists(st.integers(1, 3), min_size=len(rects), max_size=len(rects))))
    scores = np.array(draw(st.lists(st.floats(0.05, 1), min_size=len(rects), max_size=len(rects))))
    return rects, ids, scores


@settings(max_examples=50, deadline=None)
@given(disjoint_instances(), st.integers(0, 2**31 - 1))
def test_perfect_prediction_ap_one_and_empty_zero_property(instances, seed):
    rects, ids, scores = instances
    masks = _masks(rects)
    boxes = extract_bboxes(masks)
    order = np.random.default_rng(seed).permutation(len(rects))
    ap, *_ = compute_ap(boxes, ids, masks, boxes[order], ids[order], scores[order], masks[..., order])
    assert ap == pytest.approx(1.0)
    empty = compute_ap(
        boxes, ids, masks, np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), np.zeros((H, W, 0))
    )
    assert empty[0] == 0.0
    # Dropping predictions lowers AP to exactly the recall of the remaining ones.
    keep = order[: max(1, len(order) // 2)]
    ap_half, *_ = compute_ap(boxes, ids, masks, boxes[keep], ids[keep], scores[keep], masks[..., keep])
    assert ap_half == pytest.approx(len(keep) / len(rects))


@settings(max_examples=30, deadline=None)
@given(disjoint_instances(), disjoint_instances(), st.integers(0, 2**31 - 1))
def test_ap_per_threshold_equals_compute_ap_at_each_threshold(truth, predicted, seed):
    """Predictions that partly overlap the ground truth, some of another class, in shuffled score order."""
    gt_rects, gt_ids, _ = truth
    rects, ids, scores = predicted
    gt_masks, masks = _masks(gt_rects), _masks(rects)
    gt_boxes, boxes = extract_bboxes(gt_masks), extract_bboxes(masks)
    order = np.random.default_rng(seed).permutation(len(rects))
    args = (gt_boxes, gt_ids, gt_masks, boxes[order], ids[order], scores[order], masks[..., order])
    thresholds = [0.3, 0.5, 0.75, 0.9]
    expected = [compute_ap(*args, iou_threshold=t)[0] for t in thresholds]
    np.testing.assert_allclose(compute_ap_per_threshold(*args, iou_thresholds=thresholds), expected)
