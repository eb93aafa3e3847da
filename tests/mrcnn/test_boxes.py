import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrcnn import boxes as boxes_module
from mrcnn.boxes import (
    apply_box_deltas,
    box_refinement,
    compute_iou,
    compute_overlaps,
    denorm_boxes,
    extract_bboxes,
    non_max_suppression,
    norm_boxes,
    trim_zeros,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def pixel_boxes(draw, n_min=1, n_max=8, size=64, min_side=1):
    n = draw(st.integers(n_min, n_max))
    out = []
    for _ in range(n):
        y1 = draw(st.integers(0, size - min_side))
        x1 = draw(st.integers(0, size - min_side))
        y2 = draw(st.integers(y1 + min_side, size))
        x2 = draw(st.integers(x1 + min_side, size))
        out.append([y1, x1, y2, x2])
    return np.array(out, dtype=np.int32)


def _areas(b):
    b = np.asarray(b, dtype=np.float64)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


# -- extract_bboxes ----------------------------------------------------------------------------------------


def test_extract_bboxes_known_boxes_and_empty_mask():
    mask = np.zeros((10, 12, 3), dtype=bool)
    mask[2:5, 3:9, 0] = True
    mask[7, 11, 1] = True
    boxes = extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 9], [7, 11, 8, 12], [0, 0, 0, 0]])


def test_extract_bboxes_of_non_convex_mask_spans_all_parts():
    mask = np.zeros((20, 20, 1), dtype=np.uint8)
    mask[1, 2, 0] = 1
    mask[15, 17, 0] = 1
    np.testing.assert_array_equal(extract_bboxes(mask), [[1, 2, 16, 18]])


def test_extract_bboxes_no_instances():
    assert extract_bboxes(np.zeros((5, 5, 0), dtype=bool)).shape == (0, 4)


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_extract_bboxes_matches_per_instance_reference(h, w, n, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((h, w, n)) < rng.uniform(0, 0.1)
    boxes = extract_bboxes(mask)
    for i in range(n):
        ys, xs = np.nonzero(mask[:, :, i])
        expected = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1] if ys.size else [0, 0, 0, 0]
        np.testing.assert_array_equal(boxes[i], expected)


# -- compute_iou / compute_overlaps ------------------------------------------------------------------------


def test_compute_iou_known_values():
    box = np.array([0, 0, 10, 10])
    others = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 10], [10, 0, 20, 10]])
    iou = compute_iou(box, others, 100.0, _areas(others))
    np.testing.assert_allclose(iou, [25 / 175, 1.0, 0.0, 0.5, 0.0])


def test_compute_iou_degenerate_boxes_give_zero_not_nan():
    box = np.array([3, 3, 3, 3])
    others = np.array([[3, 3, 3, 3], [0, 0, 10, 10]])
    iou = compute_iou(box, others, 0.0, _areas(others))
    np.testing.assert_array_equal(iou, [0.0, 0.0])


def test_compute_overlaps_known_matrix_and_empty_inputs():
    a = np.array([[0, 0, 10, 10], [0, 0, 20, 20]])
    b = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [100, 100, 110, 110]])
    np.testing.assert_allclose(
        compute_overlaps(a, b), [[1.0, 25 / 175, 0.0], [100 / 400, 100 / 400, 0.0]], rtol=1e-12
    )
    assert compute_overlaps(np.zeros((0, 4)), b).shape == (0, 3)
    assert compute_overlaps(a, np.zeros((0, 4))).shape == (2, 0)


def test_compute_overlaps_block_path_equals_single_block(monkeypatch):
    rng = np.random.default_rng(1)
    a = np.sort(rng.uniform(0, 100, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 100, (37, 2, 2)), axis=1).transpose(0, 2, 1).reshape(37, 4)[:, [0, 2, 1, 3]]
    full = compute_overlaps(a, b)
    monkeypatch.setattr(boxes_module, "_OVERLAP_BLOCK_ELEMENTS", 120)  # 2 columns per block
    np.testing.assert_array_equal(compute_overlaps(a, b), full)


@SETTINGS
@given(pixel_boxes(), pixel_boxes())
def test_iou_symmetric_bounded_and_consistent(a, b):
    ab = compute_overlaps(a, b)
    ba = compute_overlaps(b, a)
    np.testing.assert_allclose(ab, ba.T, rtol=1e-12, atol=1e-12)
    assert np.all((ab >= 0) & (ab <= 1))
    np.testing.assert_allclose(np.diag(compute_overlaps(a, a)), 1.0)
    for i in range(len(a)):
        np.testing.assert_allclose(
            ab[i], compute_iou(a[i], b, _areas(a[i : i + 1])[0], _areas(b)), rtol=1e-12
        )


# -- non_max_suppression ----------------------------------------------------------------------------------


def test_nms_keeps_best_of_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    keep = non_max_suppression(boxes, scores, 0.5)
    assert keep.dtype == np.int32
    np.testing.assert_array_equal(keep, [1, 2])


def test_nms_threshold_is_strict():
    # IoU of the two boxes is exactly 0.5: kept at threshold 0.5, dropped below it.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 5, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5), [0, 1])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.49), [0])


def test_nms_empty_input():
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


@SETTINGS
@given(pixel_boxes(n_max=15), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_nms_kept_boxes_do_not_overlap_above_threshold(boxes, threshold, seed):
    scores = np.random.default_rng(seed).random(len(boxes))
    keep = non_max_suppression(boxes, scores, threshold)
    assert keep[0] == np.argmax(scores)
    assert np.all(np.diff(scores[keep]) <= 0)
    overlaps = compute_overlaps(boxes[keep], boxes[keep])
    np.fill_diagonal(overlaps, 0)
    assert np.all(overlaps <= threshold)
    dropped = np.setdiff1d(np.arange(len(boxes)), keep)
    for d in dropped:  # every dropped box is suppressed by a kept, better one
        better = keep[scores[keep] >= scores[d]]
        assert compute_overlaps(boxes[[d]], boxes[better]).max() > threshold


# -- apply_box_deltas / box_refinement --------------------------------------------------------------------


def test_apply_box_deltas_known_values():
    out = apply_box_deltas(np.array([[0, 0, 10, 10]]), np.array([[0.1, 0.2, np.log(2.0), 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-4.0, 2.0, 16.0, 12.0]], atol=1e-5)


def test_box_refinement_known_values():
    deltas = box_refinement(np.array([[0, 0, 10, 10]]), np.array([[-4, 2, 16, 12]]))
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(deltas, [[0.1, 0.2, np.log(2.0), 0.0]], atol=1e-6)


@SETTINGS
@given(pixel_boxes(min_side=2, size=512), st.integers(0, 2**31 - 1))
def test_apply_box_deltas_inverts_box_refinement(a, seed):
    rng = np.random.default_rng(seed)
    b = np.stack([a[:, 0], a[:, 1], a[:, 2], a[:, 3]], axis=1) + rng.integers(-1, 2, a.shape)
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
    out = apply_box_deltas(a, box_refinement(a, b))
    np.testing.assert_allclose(out, b, atol=1e-3, rtol=1e-5)


# -- norm_boxes / denorm_boxes ----------------------------------------------------------------------------


def test_norm_boxes_known_values():
    out = norm_boxes(np.array([[0, 0, 101, 201], [10, 20, 51, 101]]), (101, 201))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0, 1, 1], [0.1, 0.1, 0.5, 0.5]], atol=1e-7)


def test_denorm_boxes_known_values():
    out = denorm_boxes(np.array([[0, 0, 1, 1], [0.1, 0.1, 0.5, 0.5]]), (101, 201, 3))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 101, 201], [10, 20, 51, 101]])


@SETTINGS
@given(st.integers(2, 2000), st.integers(2, 2000), st.data())
def test_norm_denorm_round_trip(h, w, data):
    y1 = data.draw(st.integers(0, h - 1))
    x1 = data.draw(st.integers(0, w - 1))
    y2 = data.draw(st.integers(y1 + 1, h))
    x2 = data.draw(st.integers(x1 + 1, w))
    boxes = np.array([[y1, x1, y2, x2]])
    normed = norm_boxes(boxes, (h, w))
    assert np.all((normed >= 0) & (normed <= 1))
    np.testing.assert_array_equal(denorm_boxes(normed, (h, w)), boxes)


# -- trim_zeros -------------------------------------------------------------------------------------------


def test_trim_zeros_drops_all_zero_rows_only():
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(trim_zeros(x), [[1, 2, 3, 4], [0, 0, 0, 5]])
    with pytest.raises(ValueError):
        trim_zeros(np.zeros(4))
