# isort: off
import mrcnn  # noqa: F401  (patches numpy for imgaug; must precede the imgaug import)

# isort: on

import imgaug.augmenters as iaa
import numpy as np
import pytest

from mrcnn.data.augmentation import (
    MASK_AUGMENTERS,
    AlbumentationsAugmentation,
    augment_image_and_masks,
    is_imgaug_augmenter,
    mask_augmenter_hook,
)


def striped_example(n=3, h=64, w=64):
    """Image whose channel k is 255 exactly where mask k is set (vertical bands)."""
    masks = np.zeros([h, w, n], dtype=bool)
    image = np.zeros([h, w, 3], dtype=np.uint8)
    for k in range(n):
        masks[8:56, 4 + 20 * k : 16 + 20 * k, k] = True
        image[masks[:, :, k], k % 3] = 255
    return image, masks


def test_mask_augmenter_names_are_matterports():
    assert MASK_AUGMENTERS == {
        "Sequential",
        "SomeOf",
        "OneOf",
        "Sometimes",
        "Fliplr",
        "Flipud",
        "CropAndPad",
        "Affine",
        "PiecewiseAffine",
    }
    assert mask_augmenter_hook(None, iaa.Fliplr(1.0), [], True)
    assert not mask_augmenter_hook(None, iaa.GaussianBlur(1.0), [], True)
    assert is_imgaug_augmenter(iaa.Fliplr(1.0)) and not is_imgaug_augmenter(lambda *a: a)


def test_flipud_moves_masks_with_the_image():
    image, masks = striped_example()
    masks[:, :, 0] = False
    masks[0:10, 4:16, 0] = True
    image[:] = 0
    image[masks[:, :, 0], 0] = 255
    out_image, out_masks = augment_image_and_masks(image, masks, iaa.Flipud(1.0))
    assert out_masks.dtype == bool and out_masks.shape == masks.shape
    np.testing.assert_array_equal(out_masks, masks[::-1])
    assert (out_image[out_masks[:, :, 0], 0] == 255).all()


def test_geometric_chain_keeps_masks_on_their_colours():
    image, masks = striped_example(n=6)  # > 4 channels: imgaug must handle wide mask stacks
    aug = iaa.Sequential(
        [
            iaa.Sometimes(0.5, iaa.Fliplr(1.0)),
            iaa.OneOf([iaa.Affine(rotate=(-20, 20), scale=(0.9, 1.1)), iaa.CropAndPad(px=(-4, 4))]),
            iaa.Multiply((0.9, 1.1)),
        ]
    )
    for seed in range(5):
        out_image, out_masks = augment_image_and_masks(image, masks, aug, seed=seed)
        assert out_masks.dtype == bool and out_masks.shape == masks.shape
        for k in range(6):
            if out_masks[:, :, k].sum() > 20:
                assert np.median(out_image[out_masks[:, :, k], k % 3]) > 200


def test_zero_instances():
    image, _ = striped_example()
    out_image, out_masks = augment_image_and_masks(image, np.zeros([64, 64, 0], bool), iaa.Fliplr(1.0))
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    assert out_masks.shape == (64, 64, 0)


def test_shape_changing_augmentation_is_rejected():
    image, masks = striped_example()
    with pytest.raises(ValueError, match="keep image and mask shapes"):
        augment_image_and_masks(image, masks, iaa.Resize(32))


def test_seed_does_not_freeze_the_callers_augmenter():
    image, masks = striped_example()
    aug = iaa.Affine(rotate=(-45, 45))
    a = augment_image_and_masks(image, masks, aug, seed=1)
    b = augment_image_and_masks(image, masks, aug, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not aug.deterministic
    unseeded = [augment_image_and_masks(image, masks, aug)[0] for _ in range(3)]
    assert not all(np.array_equal(unseeded[0], u) for u in unseeded[1:])


def test_callable_augmentation():
    image, masks = striped_example()

    def shift(img, m, seed):
        return np.roll(img, 2, axis=1), np.roll(m, 2, axis=1)

    out_image, out_masks = augment_image_and_masks(image, masks, shift)
    np.testing.assert_array_equal(out_masks, np.roll(masks, 2, axis=1))


class FakeAlbumentations:
    """Duck-typed albumentations transform: a horizontal flip of image and masks."""

    def __call__(self, image, masks):
        return {"image": image[:, ::-1].copy(), "masks": [m[:, ::-1].copy() for m in masks]}


def test_albumentations_adapter_with_a_duck_typed_transform():
    image, masks = striped_example()
    adapter = AlbumentationsAugmentation(FakeAlbumentations(), require=False)
    out_image, out_masks = augment_image_and_masks(image, masks, adapter, seed=0)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    assert out_masks.dtype == bool


def test_albumentations_adapter_with_the_real_package():
    A = pytest.importorskip("albumentations")
    image, masks = striped_example()
    adapter = AlbumentationsAugmentation(
        A.Compose([A.HorizontalFlip(p=1.0), A.RandomBrightnessContrast(p=1.0)])
    )
    out_image, out_masks = augment_image_and_masks(image, masks, adapter, seed=0)
    np.testing.assert_array_equal(out_masks, masks[:, ::-1])
    assert out_image.shape == image.shape
