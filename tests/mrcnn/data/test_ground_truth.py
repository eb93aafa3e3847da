# isort: off
import mrcnn  # noqa: F401  (patches numpy for imgaug; must precede the imgaug import)

# isort: on

import imgaug.augmenters as iaa
import numpy as np
import pytest

from mrcnn.boxes import compute_overlaps
from mrcnn.config import Config
from mrcnn.data.dataset import Dataset
from mrcnn.data.ground_truth import (
    anchor_overlaps,
    build_detection_targets,
    build_rpn_targets,
    generate_random_rois,
    load_image_gt,
)
from mrcnn.data.image_meta import parse_image_meta

RED, GREEN = (255, 0, 0), (0, 255, 0)


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    MINI_MASK_SHAPE = (16, 16)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    TRAIN_ROIS_PER_IMAGE = 20
    MASK_SHAPE = [28, 28]


class MemoryDataset(Dataset):
    """Images and masks held in memory: add(image, masks, class_ids)."""

    def add(self, image, masks, class_ids, source="mem"):
        self.add_image(
            source, image_id=len(self.image_info), path=None, image=image, masks=masks, ids=class_ids
        )

    def load_image(self, image_id):
        return self.image_info[image_id]["image"].copy()

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return info["masks"].copy(), np.array(info["ids"], dtype=np.int32)

    def image_reference(self, image_id):
        return f"memory image #{image_id}"


def two_instance_image(h=64, w=64):
    """A red rectangle (class 1) at rows 10..29, cols 5..24 and a green one (class 2) at rows 40..59,
    cols 30..59 on black."""
    image = np.zeros([h, w, 3], dtype=np.uint8)
    masks = np.zeros([h, w, 2], dtype=bool)
    masks[10:30, 5:25, 0] = True
    masks[40:60, 30:60, 1] = True
    image[masks[:, :, 0]] = RED
    image[masks[:, :, 1]] = GREEN
    return image, masks


def make_dataset(*items, extra_source_class=False):
    ds = MemoryDataset()
    ds.add_class("mem", 1, "red")
    ds.add_class("mem", 2, "green")
    if extra_source_class:
        ds.add_class("other", 1, "other")
    for item in items:
        ds.add(*item)
    ds.prepare()
    return ds


def test_two_instances_known_answer():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]), extra_source_class=True)

    class Config4(TinyConfig):
        NUM_CLASSES = 4

    out_image, meta, class_ids, bbox, mask = load_image_gt(ds, Config4(), 0)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(class_ids, [1, 2])
    np.testing.assert_array_equal(bbox, [[10, 5, 30, 25], [40, 30, 60, 60]])
    assert bbox.dtype == np.int32 and class_ids.dtype == np.int32
    np.testing.assert_array_equal(mask, masks)
    assert mask.dtype == bool
    parsed = parse_image_meta(meta[np.newaxis])
    np.testing.assert_array_equal(parsed["window"][0], [0, 0, 64, 64])
    np.testing.assert_array_equal(parsed["original_image_shape"][0], [64, 64, 3])
    np.testing.assert_array_equal(parsed["active_class_ids"][0], [1, 1, 1, 0])  # "other" class inactive
    assert parsed["scale"][0] == 1.0


def test_resize_keeps_mask_on_the_image_and_mini_masks():
    image, masks = two_instance_image(32, 48)
    masks[:, :, 1] = False
    masks[20:30, 30:45, 1] = True
    image[:] = 0
    image[masks[:, :, 0]] = RED
    image[masks[:, :, 1]] = GREEN
    ds = make_dataset((image, masks, [1, 2]))
    config = TinyConfig()
    out_image, meta, class_ids, bbox, mask = load_image_gt(ds, config, 0)
    assert out_image.shape == (64, 64, 3) and mask.shape == (64, 64, 2)
    parsed = parse_image_meta(meta)
    assert parsed["scale"] == pytest.approx(64 / 48)
    y1, x1, y2, x2 = parsed["window"]
    assert (x1, x2) == (0, 64) and y2 - y1 == round(32 * 64 / 48)
    # Mask pixels are the instance's colour (allowing a 1-pixel border of interpolation).
    for k, color in enumerate([RED, GREEN]):
        inner = mask[:, :, k] & np.roll(mask[:, :, k], 1, 0) & np.roll(mask[:, :, k], -1, 0)
        inner &= np.roll(mask[:, :, k], 1, 1) & np.roll(mask[:, :, k], -1, 1)
        # (resize_image truncates, so 255 may come back as 254)
        assert (np.abs(out_image[inner].astype(int) - color) <= 1).all()
        ys, xs = np.nonzero(mask[:, :, k])
        np.testing.assert_array_equal(bbox[k], [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])

    _, _, _, mini_bbox, mini = load_image_gt(ds, config, 0, use_mini_mask=True)
    assert mini.shape == (16, 16, 2) and mini.dtype == bool
    np.testing.assert_array_equal(mini_bbox, bbox)
    assert mini.all()  # rectangles fill their boxes


def test_unknown_class_id_names_the_image():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]), (image, masks, [1, 7]))
    with pytest.raises(ValueError, match=r"\[7\].*image id 1.*memory image #1"):
        load_image_gt(ds, TinyConfig(), 1)
    ds0 = make_dataset((image, masks, [0, 1]))
    with pytest.raises(ValueError, match="image id 0"):
        load_image_gt(ds0, TinyConfig(), 0)


def test_crowd_ids_pass_through():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, -2]))
    _, _, class_ids, _, _ = load_image_gt(ds, TinyConfig(), 0)
    np.testing.assert_array_equal(class_ids, [1, -2])
    with pytest.raises(ValueError, match="-3"):
        load_image_gt(make_dataset((image, masks, [1, -3])), TinyConfig(), 0)


def test_mask_shape_mismatch_names_the_image():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks[:32], [1, 2]))
    with pytest.raises(ValueError, match="image id 0"):
        load_image_gt(ds, TinyConfig(), 0)


def test_flip_keeps_mask_on_its_colour():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]))
    out_image, _, class_ids, bbox, mask = load_image_gt(ds, TinyConfig(), 0, augmentation=iaa.Fliplr(1.0))
    assert mask.dtype == bool and mask.shape == (64, 64, 2)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    assert (out_image[mask[:, :, 0]] == RED).all() and (out_image[mask[:, :, 1]] == GREEN).all()
    np.testing.assert_array_equal(bbox, [[10, 39, 30, 59], [40, 4, 60, 34]])


def test_rotation_and_blur_keep_masks_aligned_and_bool():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]))
    aug = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-30, 30)), iaa.GaussianBlur(sigma=(0.5, 1.0))])
    for seed in range(4):
        out_image, _, class_ids, bbox, mask = load_image_gt(ds, TinyConfig(), 0, augmentation=aug, seed=seed)
        assert mask.dtype == bool and mask.shape == (64, 64, 2)
        for k, channel in enumerate([0, 1]):
            # Mostly the instance's colour inside the mask; blur only touches the border.
            hit = out_image[mask[:, :, k]][:, channel].astype(float)
            assert np.median(hit) > 200
            assert mask[:, :, k].sum() == pytest.approx(masks[:, :, k].sum(), rel=0.2)


def test_pixel_augmenters_do_not_touch_masks():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]))
    aug = iaa.Sequential([iaa.Add(40), iaa.GaussianBlur(sigma=2.0), iaa.Multiply(0.5)])
    out_image, _, _, _, mask = load_image_gt(ds, TinyConfig(), 0, augmentation=aug)
    assert not np.array_equal(out_image, image)
    np.testing.assert_array_equal(mask, masks)


def test_instances_moved_out_are_dropped():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]))
    # Shift right by 40 px: the green box (cols 30..59) leaves the image, the red one (cols 5..24) stays.
    aug = iaa.Affine(translate_px={"x": 40})
    _, _, class_ids, bbox, mask = load_image_gt(ds, TinyConfig(), 0, augmentation=aug)
    np.testing.assert_array_equal(class_ids, [1])
    np.testing.assert_array_equal(bbox, [[10, 45, 30, 64]])
    assert mask.shape == (64, 64, 1)


def test_seed_makes_augmentation_reproducible():
    image, masks = two_instance_image()
    ds = make_dataset((image, masks, [1, 2]))
    aug = iaa.Affine(rotate=(-45, 45))
    a = load_image_gt(ds, TinyConfig(), 0, augmentation=aug, seed=11)
    b = load_image_gt(ds, TinyConfig(), 0, augmentation=aug, seed=11)
    c = load_image_gt(ds, TinyConfig(), 0, augmentation=aug, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[4], b[4])
    assert not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------- build_rpn_targets
def rpn_config(per_image=32):
    class C(TinyConfig):
        RPN_TRAIN_ANCHORS_PER_IMAGE = per_image

    return C()


def test_anchor_overlaps_equal_compute_overlaps():
    rng = np.random.default_rng(1)
    yx = rng.uniform(0, 100, [300, 2])
    anchors = np.concatenate([yx, yx + rng.uniform(0, 30, [300, 2])], axis=1)
    anchors[:5, 2:] = anchors[:5, :2]  # degenerate anchors: IoU 0, not NaN
    boxes = np.array([[10, 10, 40, 50], [0, 0, 100, 100], [60, 60, 61, 61]])
    np.testing.assert_allclose(anchor_overlaps(anchors, boxes), compute_overlaps(anchors, boxes), atol=1e-12)
    assert anchor_overlaps(anchors, np.zeros([0, 4])).shape == (300, 0)


def test_rpn_targets_known_answer():
    gt_boxes = np.array([[10, 10, 30, 30], [40, 70, 60, 90]])
    anchors = np.array(
        [
            [10, 10, 30, 30],  # 0: IoU 1 with gt0 -> positive
            [10, 10, 30, 32],  # 1: IoU 400/440 = 0.91 -> positive
            [40, 40, 60, 60],  # 2: IoU 0 -> negative
            [10, 10, 30, 50],  # 3: IoU 0.5 -> neutral
            [0, 0, 20, 20],  # 4: IoU 100/700 = 0.14 -> negative
            [40, 70, 60, 100],  # 5: IoU 0.67 with gt1, its best anchor -> positive
            [40, 75, 60, 95],  # 6: IoU 300/500 = 0.6 with gt1 -> neutral
        ],
        dtype=np.float32,
    )
    config = rpn_config()
    rpn_match, rpn_bbox = build_rpn_targets((64, 128, 3), anchors, np.array([1, 2]), gt_boxes, config)
    np.testing.assert_array_equal(rpn_match, [1, 1, -1, 0, -1, 1, 0])
    assert rpn_match.dtype == np.int32 and rpn_bbox.shape == (32, 4) and rpn_bbox.dtype == np.float32
    std = np.array([0.1, 0.1, 0.2, 0.2])
    expected = (
        np.array(
            [
                [0, 0, 0, 0],
                [0, (20 - 21) / 22, 0, np.log(20 / 22)],
                [0, (80 - 85) / 30, 0, np.log(20 / 30)],
            ]
        )
        / std
    )
    np.testing.assert_allclose(rpn_bbox[:3], expected, rtol=1e-5, atol=1e-6)
    assert not rpn_bbox[3:].any()


def test_crowd_boxes_neutralise_touching_anchors():
    gt_boxes = np.array([[10, 10, 30, 30], [40, 40, 60, 60]])
    anchors = np.array(
        [[10, 10, 30, 30], [40, 40, 60, 60], [45, 45, 50, 50], [0, 100, 10, 110]], dtype=np.float32
    )
    rpn_match, rpn_bbox = build_rpn_targets((64, 128, 3), anchors, np.array([1, -1]), gt_boxes, rpn_config())
    # The anchor equal to the crowd box is neither positive (crowds are not targets) nor negative.
    np.testing.assert_array_equal(rpn_match, [1, 0, 0, -1])
    assert not rpn_bbox[1:].any()


def test_box_with_no_overlapping_anchor_does_not_make_everything_positive():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    rpn_match, _ = build_rpn_targets(
        (64, 64, 3), anchors, np.array([1]), np.array([[50, 50, 60, 60]]), rpn_config()
    )
    np.testing.assert_array_equal(rpn_match, [-1, -1])


def test_no_gt_boxes_gives_only_negatives_within_the_limit():
    anchors = np.random.default_rng(0).uniform(0, 50, [100, 2])
    anchors = np.concatenate([anchors, anchors + 10], axis=1)
    rpn_match, rpn_bbox = build_rpn_targets(
        (64, 64, 3), anchors, np.zeros([0], np.int32), np.zeros([0, 4]), rpn_config(16)
    )
    assert (rpn_match == -1).sum() == 16 and (rpn_match == 1).sum() == 0
    assert not rpn_bbox.any()


def test_balancing_limits_positives_and_total():
    gt_boxes = np.array([[10, 10, 30, 30]])
    positives = np.tile(gt_boxes.astype(np.float32), (20, 1))
    negatives = np.tile(np.array([[40, 40, 60, 60]], np.float32), (30, 1))
    anchors = np.concatenate([positives, negatives])
    rpn_match, rpn_bbox = build_rpn_targets(
        (64, 64, 3), anchors, np.array([1]), gt_boxes, rpn_config(8), rng=np.random.default_rng(0)
    )
    assert (rpn_match == 1).sum() == 4
    assert (rpn_match == -1).sum() == 4
    assert set(np.flatnonzero(rpn_match == 1)) <= set(range(20))
    assert not rpn_bbox.any()  # positives equal the box: zero deltas


def test_rpn_targets_match_a_per_anchor_reference():
    rng = np.random.default_rng(5)
    yx = rng.uniform(0, 100, [400, 2])
    hw = rng.uniform(8, 40, [400, 2])
    anchors = np.concatenate([yx, yx + hw], axis=1)
    gyx = rng.uniform(0, 80, [5, 2])
    gt_boxes = np.round(np.concatenate([gyx, gyx + rng.uniform(10, 30, [5, 2])], axis=1)).astype(np.int32)
    config = rpn_config(1000)  # no subsampling: the result is deterministic
    rpn_match, rpn_bbox = build_rpn_targets((128, 128, 3), anchors, np.arange(1, 6), gt_boxes, config)

    overlaps = compute_overlaps(anchors, gt_boxes)
    expected_match = np.zeros(400, np.int32)
    expected_rows = []
    for i in range(400):
        best = overlaps[i].max()
        if best < 0.3:
            expected_match[i] = -1
        if best >= 0.7 or any(overlaps[i, j] == overlaps[:, j].max() for j in range(5)):
            expected_match[i] = 1
    for i in np.flatnonzero(expected_match == 1):
        a, g = anchors[i], gt_boxes[overlaps[i].argmax()]
        ah, aw, gh, gw = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
        expected_rows.append(
            [
                (g[0] + gh / 2 - a[0] - ah / 2) / ah,
                (g[1] + gw / 2 - a[1] - aw / 2) / aw,
                np.log(gh / ah),
                np.log(gw / aw),
            ]
        )
    np.testing.assert_array_equal(rpn_match, expected_match)
    n = len(expected_rows)
    np.testing.assert_allclose(
        rpn_bbox[:n], np.array(expected_rows) / [0.1, 0.1, 0.2, 0.2], rtol=1e-4, atol=1e-4
    )


# ---------------------------------------------------------------- random ROIs / detection targets
def test_random_rois_are_valid_boxes_in_the_image():
    gt_boxes = np.array([[10, 10, 30, 30], [40, 20, 60, 50]])
    rois = generate_random_rois((64, 80, 3), 100, np.array([1, 2]), gt_boxes, rng=np.random.default_rng(0))
    assert rois.shape == (100, 4) and rois.dtype == np.int32
    assert (rois[:, 2] > rois[:, 0]).all() and (rois[:, 3] > rois[:, 1]).all()
    assert (rois[:, :2] >= 0).all() and (rois[:, 2] <= 64).all() and (rois[:, 3] <= 80).all()
    # 90 (45 per box) lie around the boxes.
    assert (rois[:45, 0] >= 0).all() and (rois[:45, 2] <= 50).all()


def test_detection_targets_shapes_and_positives():
    config = TinyConfig()
    image, masks = two_instance_image()
    gt_boxes = np.array([[10, 5, 30, 25], [40, 30, 60, 60]], dtype=np.int32)
    rois = np.concatenate([gt_boxes, [[0, 0, 5, 5], [50, 0, 60, 10], [0, 50, 8, 60]]]).astype(np.int32)
    out_rois, class_ids, bboxes, target_masks = build_detection_targets(
        rois,
        np.array([1, 2], np.int32),
        gt_boxes,
        masks,
        type("C", (TinyConfig,), {"USE_MINI_MASK": False})(),
    )
    total = config.TRAIN_ROIS_PER_IMAGE
    assert out_rois.shape == (total, 4) and class_ids.shape == (total,)
    assert bboxes.shape == (total, 3, 4) and target_masks.shape == (total, 28, 28, 3)
    np.testing.assert_array_equal(class_ids[:2], [1, 2])
    np.testing.assert_array_equal(out_rois[:2], gt_boxes)
    assert not class_ids[2:].any()
    assert not bboxes.any()  # positives equal their boxes
    assert target_masks[0, :, :, 1].min() == 1.0 and target_masks[1, :, :, 2].min() == 1.0
    assert target_masks[:, :, :, 0].max() == 0.0
