"""Augmenting an image and its instance masks together.

imgaug (Matterport's contract): one ``augmentation.to_deterministic()`` augmenter is applied to the image and
then to the masks, so both get the same random parameters; for the masks only geometric ("mask-safe")
augmenters run, selected by a hooks activator on the augmenter class name. Colour, blur and noise augmenters
leave masks untouched. Masks are augmented as uint8 0/1 and come back as bool of the same shape.

albumentations (optional, never a dependency): wrap a transform in :class:`AlbumentationsAugmentation`
and pass it wherever an imgaug augmenter is accepted; albumentations itself knows which transforms
touch masks.

Caveat (same as Matterport): a mask-safe augmenter that pads with a non-zero constant (e.g.
``CropAndPad(pad_cval=(0, 255))``) pads masks with that value too, which reads as "inside the mask". Use
``pad_cval=0``/``cval=0`` or a non-constant ``pad_mode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Augmenters whose effect on masks is the geometric one applied to the image, plus the containers.
MASK_AUGMENTERS = frozenset(
    {
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
)


def mask_augmenter_hook(images: Any, augmenter: Any, parents: Any, default: bool) -> bool:
    """imgaug hooks activator: runs only the augmenters in MASK_AUGMENTERS on masks."""
    return augmenter.__class__.__name__ in MASK_AUGMENTERS


def is_imgaug_augmenter(augmentation: Any) -> bool:
    """True for imgaug augmenters (without importing imgaug when it is not loaded yet)."""
    return any(
        cls.__module__.startswith("imgaug.") and cls.__name__ == "Augmenter"
        for cls in type(augmentation).__mro__
    )


def augment_image_and_masks(
    image: np.ndarray, masks: np.ndarray, augmentation: Any, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Applies ``augmentation`` to an image and its masks in the same way.

    image: [H, W, C] uint8. masks: [H, W, N] bool. augmentation: an imgaug augmenter, an
    :class:`AlbumentationsAugmentation`, or any callable ``f(image, masks, seed) -> (image, masks)``.
    seed: makes the draw reproducible (the augmenter's own random state is left alone); None draws from it.
    Returns image [H, W, C] uint8 and masks [H, W, N] bool, same shapes as given.
    """
    if is_imgaug_augmenter(augmentation):
        aug_image, aug_masks = _augment_imgaug(image, masks, augmentation, seed)
    else:
        aug_image, aug_masks = augmentation(image, masks, seed)
    if aug_image.shape != image.shape or aug_masks.shape != masks.shape:
        raise ValueError(
            "augmentation must keep image and mask shapes: image "
            f"{image.shape} -> {aug_image.shape}, masks {masks.shape} -> {aug_masks.shape}"
        )
    return aug_image, aug_masks.astype(bool)


def _augment_imgaug(
    image: np.ndarray, masks: np.ndarray, augmentation: Any, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    import imgaug

    det = augmentation.to_deterministic()
    if seed is not None:
        # det is a fresh copy of the augmenter tree; reseeding it leaves the caller's augmenter alone.
        det.seed_(int(seed), deterministic_too=True)
    aug_image = det.augment_image(image)
    if masks.shape[-1] == 0:
        return aug_image, masks
    hooks = imgaug.HooksImages(activator=mask_augmenter_hook)
    aug_masks = det.augment_image(masks.astype(np.uint8), hooks=hooks)
    return aug_image, aug_masks > 0


def _albumentations_available() -> bool:
    try:
        import albumentations  # noqa: F401
    except ImportError:
        return False
    return True


class AlbumentationsAugmentation:
    """Adapts an albumentations transform (e.g. ``A.Compose([...])``) to ``augment_image_and_masks``.

    The transform is called as ``transform(image=image, masks=[mask_0, mask_1, ...])`` with uint8 0/1 masks
    and must return the same keys. A ``seed`` goes to ``transform.set_random_seed`` (albumentations 2), or
    else seeds numpy's and Python's global generators, which older albumentations draw from.
    Constructing one raises ImportError when albumentations is not installed, unless ``require=False``
    (for duck-typed transforms, e.g. in tests).
    """

    def __init__(self, transform: Any, require: bool = True) -> None:
        if require and not _albumentations_available():
            raise ImportError("AlbumentationsAugmentation needs the albumentations package (pip install it)")
        self.transform = transform

    def __call__(
        self, image: np.ndarray, masks: np.ndarray, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if seed is not None:
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(int(seed))
            else:
                import random

                random.seed(int(seed))
                np.random.seed(int(seed) % 2**32)
        channels = [np.ascontiguousarray(masks[:, :, i], dtype=np.uint8) for i in range(masks.shape[-1])]
        result = self.transform(image=image, masks=channels)
        aug_image = np.asarray(result["image"])
        out = list(result.get("masks", channels))
        if out:
            aug_masks = np.stack([np.asarray(m) > 0 for m in out], axis=-1)
        else:
            aug_masks = np.zeros(aug_image.shape[:2] + (0,), dtype=bool)
        return aug_image, aug_masks
