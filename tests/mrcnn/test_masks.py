import numpy as np
import skimage.transform
from hypothesis import given, settings
from hypothesis import strategies as st

from mrcnn import masks as masks_module
from mrcnn.boxes import extract_bboxes
from mrcnn.images import resize_image
from mrcnn.masks import (
    compute_overlaps_masks,
    expand_mask,
    minimize_mask,
    resize_mask,
    unmold_mask,
    unmold_masks,
)

SETTINGS = settings(max_examples=40, deadline=None)


def _sk_resize(m, shape):
    """What Matterport's utils.resize did with a mask (skimage, float64, no anti-aliasing)."""
    return skimage.transform.resize(
        np.asarray(m, dtype=np.float64),
        shape,
        order=1,
        mode="constant",
        cval=0,
        clip=True,
        anti_aliasing=False,
    )


def _ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


# -- compute_overlaps_masks -------------------------------------------------------------------------------


def test_compute_overlaps_masks_known_values():
    m1 = np.zeros((4, 4, 2), dtype=bool)
    m1[:2, :, 0] = True  # 8 pixels
    m1[:, :, 1] = True  # 16 pixels
    m2 = np.zeros((4, 4, 3), dtype=bool)
    m2[:1, :, 0] = True  # 4 pixels, inside m1[0]
    m2[2:, :, 1] = True  # 8 pixels, disjoint from m1[0]
    overlaps = compute_overlaps_masks(m1, m2)
    np.testing.assert_allclose(overlaps, [[0.5, 0.0, 0.0], [0.25, 0.5, 0.0]])


def test_compute_overlaps_masks_empty_sets():
    assert compute_overlaps_masks(np.zeros((4, 4, 0)), np.ones((4, 4, 2))).shape == (0, 2)
    assert compute_overlaps_masks(np.ones((4, 4, 3)), np.zeros((4, 4, 0))).shape == (3, 0)


# -- resize_mask ------------------------------------------------------------------------------------------


def test_resize_mask_scale_and_pad():
    mask = np.zeros((4, 6, 1), dtype=bool)
    mask[1:3, 2:4, 0] = True
    out = resize_mask(mask, 2, [(1, 2), (0, 3), (0, 0)])
    assert out.shape == (11, 15, 1) and out.dtype == bool
    expected = np.zeros((11, 15), dtype=bool)
    expected[3:7, 4:8] = True
    np.testing.assert_array_equal(out[:, :, 0], expected)


def test_resize_mask_crop():
    mask = np.zeros((10, 10, 2), dtype=np.uint8)
    mask[4:6, 4:6, 1] = 1
    out = resize_mask(mask, 1, [(0, 0), (0, 0), (0, 0)], crop=(3, 2, 5, 5))
    assert out.shape == (5, 5, 2)
    assert out[1:3, 2:4, 1].all() and out.sum() == 4


@SETTINGS
@given(st.integers(10, 90), st.integers(10, 90), st.sampled_from(["square", "pad64", "crop"]))
def test_resize_mask_matches_resize_image(h, w, mode):
    image = np.full((h, w, 3), 7, dtype=np.uint8)
    mask = np.zeros((h, w, 2), dtype=bool)
    mask[h // 4 : h // 2, w // 4 : w // 2, 0] = True
    out, window, scale, padding, crop = resize_image(image, min_dim=64, max_dim=128, mode=mode)
    resized = resize_mask(mask, scale, padding, crop)
    assert resized.shape == out.shape[:2] + (2,)
    assert resized.dtype == bool
    if mode != "crop":
        assert not resized[:, :, 1].any()
        y1, x1, y2, x2 = window
        outside = np.ones(out.shape[:2], dtype=bool)
        outside[y1:y2, x1:x2] = False
        assert not resized[outside].any()
        assert resized[:, :, 0].any()


# -- minimize_mask / expand_mask --------------------------------------------------------------------------


def test_minimize_and_expand_rectangle_exactly():
    mask = np.zeros((40, 50, 1), dtype=bool)
    mask[5:25, 10:47, 0] = True
    bbox = extract_bboxes(mask)
    mini = minimize_mask(bbox, mask, (8, 8))
    assert mini.shape == (8, 8, 1) and mini.dtype == bool and mini.all()
    full = expand_mask(bbox, mini, (40, 50, 3))
    assert full.shape == (40, 50, 1) and full.dtype == bool
    np.testing.assert_array_equal(full, mask)


def test_minimize_expand_accept_bool_and_empty_masks():
    mask = np.zeros((30, 30, 3), dtype=bool)
    mask[2:12, 3:20, 0] = True
    mask[15:28, 15:28, 2] = _ellipse(13, 13, 6, 6, 6, 6)
    bbox = extract_bboxes(mask)  # instance 1 is empty -> (0, 0, 0, 0)
    mini = minimize_mask(bbox, mask, (14, 14))
    assert not mini[:, :, 1].any() and mini[:, :, 0].all() and mini[:, :, 2].any()
    full = expand_mask(bbox, mini, mask.shape)
    assert not full[:, :, 1].any()
    np.testing.assert_array_equal(full[:, :, 0], mask[:, :, 0])


def test_minimize_mask_matches_matterport_semantics():
    # Matterport: crop, skimage bilinear resize of the float mask, round (i.e. > 0.5).
    rng = np.random.default_rng(3)
    mask = np.zeros((60, 70, 4), dtype=bool)
    for i in range(4):
        cy, cx, ry, rx = rng.integers(15, 45), rng.integers(15, 55), rng.integers(4, 15), rng.integers(4, 15)
        mask[:, :, i] = _ellipse(60, 70, cy, cx, ry, rx)
    bbox = extract_bboxes(mask)
    mini = minimize_mask(bbox, mask, (9, 13))
    full = expand_mask(bbox, mini, mask.shape)
    for i in range(4):
        y1, x1, y2, x2 = bbox[i]
        ref_mini = np.around(_sk_resize(mask[y1:y2, x1:x2, i], (9, 13))).astype(bool)
        np.testing.assert_array_equal(mini[:, :, i], ref_mini)
        ref_full = np.zeros((60, 70), dtype=bool)
        ref_full[y1:y2, x1:x2] = np.around(_sk_resize(mini[:, :, i], (y2 - y1, x2 - x1)))
        np.testing.assert_array_equal(full[:, :, i], ref_full)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from([(56, 56), (28, 28)]))
def test_minimize_then_expand_is_close_to_original(seed, mini_shape):
    rng = np.random.default_rng(seed)
    h, w = 96, 128
    ry, rx = rng.uniform(6, 40), rng.uniform(6, 40)
    cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
    mask = _ellipse(h, w, cy, cx, ry, rx)[:, :, None]
    bbox = extract_bboxes(mask)
    back = expand_mask(bbox, minimize_mask(bbox, mask, mini_shape), mask.shape)
    assert _iou(back[:, :, 0], mask[:, :, 0]) >= 0.9
    # Disagreement only near the boundary: every differing pixel has a neighbour of the other value.
    diff = back[:, :, 0] != mask[:, :, 0]
    m = np.pad(mask[:, :, 0], 1)
    ys, xs = np.nonzero(diff)
    for y, x in zip(ys, xs):
        window = m[y : y + 3, x : x + 3]
        assert window.any() and not window.all()
    # Boxes agree to within one mini-mask pixel (a thin tip may be lost when downsampling).
    (y1, x1, y2, x2), (mh, mw) = bbox[0], mini_shape
    tolerance = max(1, int(np.ceil(max((y2 - y1) / mh, (x2 - x1) / mw))))
    assert np.abs(extract_bboxes(back) - bbox).max() <= tolerance


# -- unmold_mask / unmold_masks ---------------------------------------------------------------------------


def _matterport_unmold(mask, bbox, image_shape):
    y1, x1, y2, x2 = bbox
    full = np.zeros(image_shape[:2], dtype=bool)
    full[y1:y2, x1:x2] = _sk_resize(mask, (y2 - y1, x2 - x1)) >= 0.5
    return full


def test_unmold_mask_full_box():
    out = unmold_mask(np.ones((28, 28), dtype=np.float32), np.array([3, 4, 20, 30]), (32, 40, 3))
    assert out.shape == (32, 40) and out.dtype == bool
    expected = np.zeros((32, 40), dtype=bool)
    expected[3:20, 4:30] = True
    np.testing.assert_array_equal(out, expected)


def test_unmold_masks_matches_matterport_unmold_mask():
    rng = np.random.default_rng(0)
    n, h, w = 12, 90, 120
    masks = rng.random((n, 28, 28)).astype(np.float32)
    masks[0] = 0.75  # all high: skimage's clipping keeps the blended border at 0.75
    yx = np.sort(rng.integers(0, [h, w], size=(n, 2, 2)), axis=1)
    boxes = np.stack([yx[:, 0, 0], yx[:, 0, 1], yx[:, 1, 0] + 1, yx[:, 1, 1] + 1], axis=1)
    boxes[1] = [0, 0, 3, 100]  # strong downsampling in y
    out = unmold_masks(masks, boxes, (h, w))
    assert out.shape == (h, w, n) and out.dtype == bool
    for i in range(n):
        np.testing.assert_array_equal(out[:, :, i], _matterport_unmold(masks[i], boxes[i], (h, w)))
        np.testing.assert_array_equal(unmold_mask(masks[i], boxes[i], (h, w)), out[:, :, i])
    assert out[:, :, 0][boxes[0][0] : boxes[0][2], boxes[0][1] : boxes[0][3]].all()


def test_unmold_masks_clips_boxes_outside_image_and_skips_empty_boxes():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 28, 28)).astype(np.float32)
    boxes = np.array([[-10, -5, 30, 25], [5, 5, 5, 20], [50, 60, 70, 80]])
    out = unmold_masks(masks, boxes, (40, 48))
    # Reference: unmold on a canvas big enough for the box, then cut out the image.
    big = _matterport_unmold(masks[0], boxes[0] + [10, 5, 10, 5], (60, 60))
    np.testing.assert_array_equal(out[:, :, 0], big[10:50, 5:53])
    assert not out[:, :, 1].any() and not out[:, :, 2].any()


def test_unmold_masks_no_detections():
    out = unmold_masks(np.zeros((0, 28, 28)), np.zeros((0, 4), dtype=np.int32), (16, 16, 3))
    assert out.shape == (16, 16, 0) and out.dtype == bool


def test_unmold_masks_low_masks_are_empty_and_numpy_fallback_agrees(monkeypatch):
    rng = np.random.default_rng(2)
    masks = rng.random((4, 28, 28)).astype(np.float32)
    masks[3] *= 0.49  # nothing reaches 0.5
    boxes = np.array([[-7, 3, 50, 33], [10, 10, 14, 70], [0, 0, 64, 64], [5, 5, 40, 40]])
    fast = unmold_masks(masks, boxes, (60, 64))
    assert fast[:, :, 0].any() and not fast[:, :, 3].any()
    monkeypatch.setattr(masks_module, "cv2", None)
    np.testing.assert_array_equal(unmold_masks(masks, boxes, (60, 64)), fast)
