"""The seed documents' augmentation schemes as imgaug pipelines (pass them to ``MaskRCNN.train``).

- ``thesis001`` (thesis 001, 4.2.5): horizontal flip on about half of the images; add a brightness value in
  [-40, 40] to all pixels of about half; Gaussian blur (sigma 0-1) or additive Gaussian noise
  (scale 0-0.05*255) on about half. An image gets zero to three of these.
- ``thesis000`` (thesis 000, 4.2.1): rotation by up to +-25 degrees and additive Gaussian noise, each on about
  half of the images (the thesis gives neither the share nor the noise level; these follow thesis 001).
- ``fliplr``: horizontal flip on half of the images (thesis 001's Base1 run).
- ``none``: no augmentation.

Only the geometric steps (flip, rotation) move the masks; brightness, blur and noise touch the image only
(mrcnn.data.augmentation decides which augmenters run on masks). Rotation fills with black and zero mask.
"""

from __future__ import annotations

from typing import Any

import mrcnn  # noqa: F401  (restores the numpy attributes imgaug 0.4 needs; import before imgaug)

AUGMENTATIONS = ("thesis001", "thesis000", "fliplr", "none")


def thesis001_augmentation() -> Any:
    """Thesis 001's scheme (see module docstring)."""
    from imgaug import augmenters as iaa

    return iaa.Sequential(
        [
            iaa.Fliplr(0.5),
            iaa.Sometimes(0.5, iaa.Add((-40, 40))),
            iaa.Sometimes(
                0.5,
                iaa.OneOf(
                    [
                        iaa.GaussianBlur(sigma=(0.0, 1.0)),
                        iaa.AdditiveGaussianNoise(scale=(0, 0.05 * 255)),
                    ]
                ),
            ),
        ],
        name="thesis001",
    )


def thesis000_augmentation() -> Any:
    """Thesis 000's scheme: rotation within +-25 degrees and additive Gaussian noise."""
    from imgaug import augmenters as iaa

    return iaa.Sequential(
        [
            iaa.Sometimes(0.5, iaa.Affine(rotate=(-25, 25), order=1, cval=0, mode="constant")),
            iaa.Sometimes(0.5, iaa.AdditiveGaussianNoise(scale=(0, 0.05 * 255))),
        ],
        name="thesis000",
    )


def get_augmentation(name: str | None) -> Any:
    """The imgaug augmenter called ``name`` (one of AUGMENTATIONS); None for "none" or None."""
    if name is None or name == "none":
        return None
    if name == "thesis001":
        return thesis001_augmentation()
    if name == "thesis000":
        return thesis000_augmentation()
    if name == "fliplr":
        from imgaug import augmenters as iaa

        return iaa.Fliplr(0.5)
    raise ValueError(f"unknown augmentation {name!r}; one of {AUGMENTATIONS}")
