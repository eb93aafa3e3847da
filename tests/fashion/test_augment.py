import numpy as np
import pytest

from fashion.augment import get_augmentation
from mrcnn.data.augmentation import augment_image_and_masks


def asymmetric_scene():
    image = np.full([40, 40, 3], 120, np.uint8)
    image[10:30, 2:12] = 250
    mask = np.zeros([40, 40, 1], bool)
    mask[10:30, 2:12] = True
    return image, mask


def test_thesis001_flips_half_and_keeps_masks_aligned():
    aug = get_augmentation("thesis001")
    image, mask = asymmetric_scene()
    flipped = brightened = 0
    for seed in range(120):
        out_image, out_mask = augment_image_and_masks(image, mask, aug, seed=seed)
        is_flipped = np.array_equal(out_mask, mask[:, ::-1])
        assert is_flipped or np.array_equal(out_mask, mask)  # colour steps never touch masks
        flipped += is_flipped
        background = out_image[~out_mask[:, :, 0]].astype(float)
        assert abs(background.mean() - 120) <= 41  # brightness within +-40 (+ zero-mean noise)
        brightened += abs(background.mean() - 120) > 3
    assert 35 <= flipped <= 85 and 25 <= brightened <= 95


def test_thesis000_rotates_image_and_masks_together():
    aug = get_augmentation("thesis000")
    image = np.zeros([64, 64, 3], np.uint8)
    image[20:44, 16:40] = 255
    mask = np.zeros([64, 64, 1], bool)
    mask[20:44, 16:40] = True
    rotated = 0
    for seed in range(30):
        out_image, out_mask = augment_image_and_masks(image, mask, aug, seed=seed)
        bright = out_image.mean(axis=2) > 128
        iou = (bright & out_mask[:, :, 0]).sum() / (bright | out_mask[:, :, 0]).sum()
        assert iou > 0.85
        rotated += not np.array_equal(out_mask, mask)
    assert 5 <= rotated <= 25


def test_names():
    assert get_augmentation("none") is None and get_augmentation(None) is None
    assert get_augmentation("fliplr") is not None
    with pytest.raises(ValueError, match="unknown augmentation"):
        get_augmentation("mixup")
