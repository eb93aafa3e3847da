"""Tests of fashion/evaluation/metrics.py on hand-built masks with hand-computed answers."""

import numpy as np
import pytest

from fashion.evaluation import metrics as m

H = W = 32


def masks_of(*boxes, shape=(H, W)):
    """[H, W, N] bool masks, one filled rectangle (y1, x1, y2, x2), y2/x2 exclusive, per box."""
    out = np.zeros(shape + (len(boxes),), dtype=bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        out[y1:y2, x1:x2, k] = True
    return out


BOX_A = (0, 0, 10, 10)  # class 1, 100 px
BOX_B = (20, 20, 30, 30)  # class 2, 100 px
BOX_C = (0, 20, 10, 30)  # class 1, 100 px


def worked_example():
    """Three ground-truth objects and four predictions (the Kaggle worked example below).

    - p1 class 1, score 0.9: [0:10, 0:8], 80 px inside A -> IoU(p1, A) = 80 / 100 = 0.8
    - p2 class 2, score 0.8: [20:30, 23:30], 70 px inside B -> IoU(p2, B) = 70 / 100 = 0.7
    - p3 class 2, score 0.7: exactly C's pixels, but C is class 1 (a class swap): FP, and C is FN
    - p4 class 1, score 0.6: [12:18, 0:6], 36 px on background: FP
    """
    gt_ids = np.array([1, 2, 1])
    gt_masks = masks_of(BOX_A, BOX_B, BOX_C)
    pred_ids = np.array([1, 2, 2, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    pred_masks = masks_of((0, 0, 10, 8), (20, 23, 30, 30), BOX_C, (12, 0, 18, 6))
    return gt_ids, gt_masks, pred_ids, scores, pred_masks


def perfect():
    gt_ids = np.array([1, 2])
    gt_masks = masks_of(BOX_A, BOX_B)
    return gt_ids, gt_masks, gt_ids.copy(), np.array([0.9, 0.8]), gt_masks.copy()


def empty_masks(n=0):
    return np.zeros((H, W, n), dtype=bool)


# --- multi-label classification -----------------------------------------------------------------------


def test_label_vector_ignores_background_and_repeats():
    np.testing.assert_array_equal(m.label_vector([0, 2, 2, 4], 6), [False, True, False, True, False])
    assert m.label_vector([], 3).tolist() == [False, False]
    with pytest.raises(ValueError):
        m.label_vector([6], 6)
    assert m.label_vectors([[1], [], [2, 1]], 3).tolist() == [[True, False], [False, False], [True, True]]
    assert m.label_vectors([], 3).shape == (0, 2)


def test_thesis_table2_example():
    # Thesis 001 Table 2 (top, jacket, pants, dress, shoe): true 1 1 1 0 1, predicted 0 1 1 0 1.
    # EMR 0 %, OA 4/5 = 80 % (eq. 4), JSS 3/4 = 75 % (eq. 5), classification score 38.3 % (eq. 16).
    y_true = np.array([[1, 1, 1, 0, 1]], dtype=bool)
    y_pred = np.array([[0, 1, 1, 0, 1]], dtype=bool)
    assert m.exact_match_ratio(y_true, y_pred) == 0.0
    assert m.overall_accuracy(y_true, y_pred) == pytest.approx(0.8)
    assert m.jaccard_similarity(y_true, y_pred) == pytest.approx(0.75)
    assert m.classification_score(0.0, 0.8, 0.75) == pytest.approx(0.383, abs=5e-4)


def test_thesis_table11_example_jaccard():
    # Thesis 001 Table 11: true {0, 1, 4, 8}, predicted {1, 4, 6, 8}: JSS = 3 / 5 = 60 %, EMR 0 %.
    y_true = np.zeros((1, 12), dtype=bool)
    y_pred = np.zeros((1, 12), dtype=bool)
    y_true[0, [0, 1, 4, 8]] = True
    y_pred[0, [1, 4, 6, 8]] = True
    assert m.jaccard_similarity(y_true, y_pred) == pytest.approx(0.6)
    assert m.exact_match_ratio(y_true, y_pred) == 0.0


def test_multilabel_over_several_images():
    # image 1 exact; image 2 one of two labels missed (JSS 1/2); image 3 nothing true, nothing predicted
    # (exact, JSS 1 by convention); image 4 one false label on an empty image (JSS 0).
    y_true = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=bool)
    y_pred = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=bool)
    assert m.exact_match_ratio(y_true, y_pred) == pytest.approx(2 / 4)
    assert m.overall_accuracy(y_true, y_pred) == pytest.approx(10 / 12)
    assert m.jaccard_similarity(y_true, y_pred) == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert m.jaccard_similarity(y_true, y_pred, empty_score=0.0) == pytest.approx(1.5 / 4)
    with pytest.raises(ValueError):
        m.exact_match_ratio(y_true, y_pred[:2])


# --- combined scores ----------------------------------------------------------------------------------


def test_combined_scores_reproduce_thesis_table10_full4():
    # Full4: client set C (Table 8) EMR 29.2 %, OA 88.7 %, JSS 69.9 %; iMaterialist test set (Table 9)
    # EMR 37.9 %, OA 89.6 %, JSS 67.7 %, mAP 0.71, F1 0.56, 1.37 s. Table 10: Class_C 0.53, Class_M 0.56,
    # Segmentation 0.64, Speed 0.14, TTO 1.85.
    class_c = m.classification_score(0.292, 0.887, 0.699)
    class_m = m.classification_score(0.379, 0.896, 0.677)
    seg = m.segmentation_score(0.71, 0.56)
    speed = m.speed_score(1.37)
    to = m.trade_off_score(class_m, seg, speed)
    tto = m.total_trade_off_score(class_c, to)
    assert round(class_c, 2) == 0.53
    assert round(class_m, 2) == 0.56
    assert seg == pytest.approx(0.635)
    assert round(speed, 2) == 0.14
    assert to == pytest.approx(class_m + 0.635 - 0.137)
    assert round(tto, 2) == 1.85
    assert m.mean_inference_seconds([1.0, 2.0, 3.0]) == 2.0
    with pytest.raises(ValueError):
        m.mean_inference_seconds([])


# --- matching, F1, AP@50 ------------------------------------------------------------------------------


def test_greedy_match_takes_predictions_by_order_and_classes_into_account():
    ious = np.array([[0.6, 0.0], [0.9, 0.0], [0.0, 0.8]])
    # p0 (first) takes g0 although p1 overlaps it more; p1 is left unmatched; p2 has the wrong class.
    pred_match, gt_match = m.greedy_match(ious, np.array([1, 1, 2]), np.array([1, 1]), 0.5)
    assert pred_match.tolist() == [0, -1, -1]
    assert gt_match.tolist() == [0, -1]
    # A prediction takes the free ground truth of highest IoU.
    pred_match, _ = m.greedy_match(np.array([[0.55, 0.75]]), np.array([3]), np.array([3, 3]), 0.5)
    assert pred_match.tolist() == [1]
    # Threshold inclusive by default, exclusive when strict.
    assert m.greedy_match(np.array([[0.5]]), [1], [1], 0.5)[0].tolist() == [0]
    assert m.greedy_match(np.array([[0.5]]), [1], [1], 0.5, strict=True)[0].tolist() == [-1]


def test_match_counts_sorts_by_score():
    # Two predictions on one object: the lower-listed one has the higher score and takes it.
    gt_masks = masks_of(BOX_A)
    pred_masks = masks_of((0, 0, 10, 6), BOX_A)  # IoU 0.6 and 1.0
    tp, fp, fn = m.match_counts([1], gt_masks, [1, 1], [0.1, 0.9], pred_masks, 0.7)
    assert (tp, fp, fn) == (1, 1, 0)
    tp, fp, fn = m.match_counts([1], gt_masks, [1, 1], [0.9, 0.1], pred_masks[..., ::-1], 0.7)
    assert (tp, fp, fn) == (1, 1, 0)


@pytest.mark.parametrize(
    "case, counts, f1, ap50",
    [
        ("perfect", (2, 0, 0), 1.0, 1.0),
        ("empty_prediction", (0, 0, 2), 0.0, 0.0),
        ("one_false_positive", (2, 1, 0), 4 / 5, 1.0),  # the FP ranks last: AP unaffected
        ("one_missed", (1, 0, 1), 2 / 3, 0.5),
        ("class_swap", (0, 2, 2), 0.0, 0.0),
        ("worked_example", (2, 2, 1), 4 / 7, 2 / 3),
    ],
)
def test_counts_f1_and_ap50(case, counts, f1, ap50):
    gt_ids, gt_masks, pred_ids, scores, pred_masks = perfect()
    if case == "empty_prediction":
        pred_ids, scores, pred_masks = pred_ids[:0], scores[:0], empty_masks()
    elif case == "one_false_positive":
        pred_ids, scores = np.array([1, 2, 1]), np.array([0.9, 0.8, 0.5])
        pred_masks = np.concatenate([pred_masks, masks_of((12, 0, 18, 6))], axis=-1)
    elif case == "one_missed":
        pred_ids, scores, pred_masks = pred_ids[:1], scores[:1], pred_masks[..., :1]
    elif case == "class_swap":
        pred_ids = np.array([2, 1])
    elif case == "worked_example":
        # AP@50: ranked p1 TP, p2 TP, p3 FP, p4 FP; recall 1/3, 2/3, 2/3, 2/3 at precision 1, 1, 2/3, 1/2:
        # area = 1/3 * 1 + 1/3 * 1 = 2/3.
        gt_ids, gt_masks, pred_ids, scores, pred_masks = worked_example()
    args = (gt_ids, gt_masks, pred_ids, scores, pred_masks)
    assert m.match_counts(*args) == counts
    assert m.image_f1(*args) == pytest.approx(f1)
    assert m.image_ap50(*args) == pytest.approx(ap50)


def test_images_without_ground_truth():
    # No GT, no predictions: F1 1 (0/0 convention), AP undefined (None, skipped by mean_ap50).
    assert m.match_counts([], empty_masks(), [], [], empty_masks()) == (0, 0, 0)
    assert m.image_f1([], empty_masks(), [], [], empty_masks()) == 1.0
    assert m.image_ap50([], empty_masks(), [], [], empty_masks()) is None
    # No GT, one prediction: F1 0.
    assert m.image_f1([], empty_masks(), [1], [0.9], masks_of(BOX_A)) == 0.0
    assert m.mean_ap50([1.0, None, 0.5]) == pytest.approx(0.75)
    assert m.mean_ap50([None]) is None
    assert m.f1_from_counts(3, 1, 2) == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))


# --- Kaggle score -------------------------------------------------------------------------------------


def test_kaggle_thresholds():
    np.testing.assert_array_equal(
        m.KAGGLE_IOU_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )


def test_kaggle_score_worked_example():
    # Ground truth: A (class 1), B (class 2), C (class 1); 4 predictions (see worked_example), so at every
    # threshold TP + FP + FN = 4 + 3 - TP. Matched pairs need IoU strictly above t:
    #   p1-A IoU 0.8: matched for t in 0.50 .. 0.75, not from 0.80 (0.8 is not > 0.8);
    #   p2-B IoU 0.7: matched for t in 0.50 .. 0.65, not from 0.70;
    #   p3 (class 2) never matches C (class 1); p4 overlaps nothing.
    # t = 0.50, 0.55, 0.60, 0.65: TP 2, FP 2, FN 1 -> 2 / 5 = 0.4   (4 thresholds)
    # t = 0.70, 0.75:             TP 1, FP 3, FN 2 -> 1 / 6         (2 thresholds)
    # t = 0.80 .. 0.95:           TP 0             -> 0             (4 thresholds)
    # score = (4 * 0.4 + 2 / 6 + 4 * 0) / 10 = 0.19333...
    assert m.kaggle_image_score(*worked_example()) == pytest.approx((4 * 0.4 + 2 / 6) / 10)


def test_kaggle_score_basic_cases():
    gt_ids, gt_masks, pred_ids, scores, pred_masks = perfect()
    assert m.kaggle_image_score(gt_ids, gt_masks, pred_ids, scores, pred_masks) == 1.0
    # Nothing predicted: 0 / (0 + 0 + 2) at every threshold.
    assert m.kaggle_image_score(gt_ids, gt_masks, [], [], empty_masks()) == 0.0
    # One extra false positive: 2 / (2 + 1) at every threshold.
    fp_masks = np.concatenate([pred_masks, masks_of((12, 0, 18, 6))], axis=-1)
    assert m.kaggle_image_score(gt_ids, gt_masks, [1, 2, 1], [0.9, 0.8, 0.5], fp_masks) == pytest.approx(
        2 / 3
    )
    # One missed object: 1 / (1 + 0 + 1).
    assert m.kaggle_image_score(gt_ids, gt_masks, [1], [0.9], pred_masks[..., :1]) == pytest.approx(0.5)
    # Class swap: 0 / (0 + 2 + 2).
    assert m.kaggle_image_score(gt_ids, gt_masks, [2, 1], scores, pred_masks) == 0.0
    # No ground truth and no predictions: 1 by definition; predictions on an empty image: 0.
    assert m.kaggle_image_score([], empty_masks(), [], [], empty_masks()) == 1.0
    assert m.kaggle_image_score([], empty_masks(), [1], [0.9], masks_of(BOX_A)) == 0.0


# --- pixel level ----------------------------------------------------------------------------------------


def test_label_map_most_confident_wins():
    masks = masks_of((0, 0, 10, 10), (5, 5, 15, 15))
    # Listed low score first or last, the score-0.9 instance (class 2) owns the overlap.
    for order in ([0, 1], [1, 0]):
        out = m.label_map(np.array([1, 2])[order], masks[..., order], np.array([0.3, 0.9])[order])
        assert out[7, 7] == 2 and out[2, 2] == 1 and out[12, 12] == 2 and out[20, 20] == 0
    # Without scores (ground truth) the later instance wins.
    assert m.label_map(np.array([2, 1]), masks[..., ::-1])[7, 7] == 1
    assert m.label_map(np.array([], dtype=int), empty_masks()).shape == (H, W)
    with pytest.raises(ValueError):
        m.label_map(np.array([1]), empty_masks())


def test_pixel_metrics_worked_example():
    # Ground truth map: A and C class 1 (200 px), B class 2 (100 px), 724 px background.
    # Prediction map: p1 class 1 on 80 px of A; p2 class 2 on 70 px of B; p3 class 2 on all of C;
    # p4 class 1 on 36 background px. Confusion (rows true 0, 1, 2; columns predicted):
    #   true 0: 688 -> 0, 36 -> 1;  true 1: 20 -> 0, 80 -> 1, 100 -> 2;  true 2: 30 -> 0, 70 -> 2.
    gt_ids, gt_masks, pred_ids, scores, pred_masks = worked_example()
    gt_map = m.label_map(gt_ids, gt_masks)
    pred_map = m.label_map(pred_ids, pred_masks, scores)
    confusion = m.pixel_confusion_matrix(gt_map, pred_map, 3)
    np.testing.assert_array_equal(confusion, [[688, 36, 0], [20, 80, 100], [30, 0, 70]])
    result = m.pixel_metrics(confusion)
    assert result["accuracy"] == pytest.approx((688 + 80 + 70) / 1024)
    assert result["foreground_accuracy"] == pytest.approx(150 / 300)
    p1, r1, f1_1 = 80 / 116, 80 / 200, 160 / 316  # class 1: predicted 116 px, true 200 px
    p2, r2, f1_2 = 70 / 170, 70 / 100, 140 / 270  # class 2: predicted 170 px, true 100 px
    assert result["precision"] == pytest.approx((p1 + p2) / 2)
    assert result["recall"] == pytest.approx((r1 + r2) / 2)
    assert result["f1"] == pytest.approx((f1_1 + f1_2) / 2)
    np.testing.assert_allclose(result["per_class"]["f1"], [f1_1, f1_2])


def test_pixel_metrics_perfect_empty_and_absent_classes():
    gt_ids, gt_masks, *_ = perfect()
    gt_map = m.label_map(gt_ids, gt_masks)
    perfect_result = m.pixel_metrics(m.pixel_confusion_matrix(gt_map, gt_map, 4))
    assert perfect_result["accuracy"] == perfect_result["f1"] == perfect_result["precision"] == 1.0
    # Class 3 is in neither map, so it is not averaged in.
    assert perfect_result["per_class"]["present"].tolist() == [True, True, False]
    empty_result = m.pixel_metrics(m.pixel_confusion_matrix(gt_map, np.zeros_like(gt_map), 4))
    assert empty_result["accuracy"] == pytest.approx((1024 - 200) / 1024)
    assert empty_result["precision"] == empty_result["recall"] == empty_result["f1"] == 0.0
    background_only = m.pixel_metrics(m.pixel_confusion_matrix(np.zeros((4, 4)), np.zeros((4, 4)), 3))
    assert background_only["accuracy"] == 1.0
    assert background_only["f1"] is None and background_only["foreground_accuracy"] is None
    with pytest.raises(ValueError):
        m.pixel_confusion_matrix(np.zeros((4, 4)), np.zeros((4, 5)), 3)
