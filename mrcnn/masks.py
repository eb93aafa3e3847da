"""Instance-mask utilities in numpy, with Matterport's names and semantics.

Masks are ``[H, W, N]`` bool, one channel per instance. Mini masks are ``[mh, mw, N]`` bool: each instance
cropped to its box and resized to ``MINI_MASK_SHAPE``. Boxes are int pixel ``(y1, x1, y2, x2)``, y2/x2
exclusive.

Resizing and pasting are the image pipeline's (:mod:`mrcnn.pipeline.resample`): bilinear as Matterport's
``skimage.transform.resize(m, shape, order=1, mode="constant", cval=0, anti_aliasing=False)`` (pixel centres
aligned, samples outside the source blend with zeros, clipped to the source's range; bool masks accepted),
nearest neighbour (``scipy.ndimage.zoom(order=0)``) for ``resize_mask``. ``unmold_masks`` (inference hot
path) uses OpenCV with a border correction, ~50x faster and equal up to float32 rounding; without OpenCV
(``cv2`` None) the float64 reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrcnn.pipeline.resample import paste_masks, resize_bilinear_exact, resize_masks_nearest

try:
    import cv2  # installed with imgaug; the fast path of unmold_masks
except ImportError:  # pragma: no cover
    cv2 = None

__all__ = [
    "compute_overlaps_masks",
    "resize_mask",
    "mold_mask",
    "minimize_mask",
    "expand_mask",
    "unmold_mask",
    "unmold_masks",
]


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU of every mask of ``masks1`` with every mask of ``masks2``.

    Args:
        masks1: ``[H, W, N1]`` bool (or probabilities; > 0.5 counts as inside).
        masks2: ``[H, W, N2]``, same ``H, W``.

    Returns:
        ``[N1, N2]`` float IoUs; 0 where both masks are empty; an empty ``[N1, 0]`` or ``[0, N2]`` array
        when either set has no instances.
    """
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    m1 = (np.reshape(masks1, (-1, n1)) > 0.5).astype(np.float32)
    m2 = (np.reshape(masks2, (-1, n2)) > 0.5).astype(np.float32)
    area1 = m1.sum(axis=0)
    area2 = m2.sum(axis=0)
    intersections = (m1.T @ m2).astype(np.float64)
    union = area1[:, None] + area2[None, :] - intersections
    overlaps = np.zeros_like(intersections)
    np.divide(intersections, union, out=overlaps, where=union > 0)
    return overlaps


def resize_mask(
    mask: np.ndarray,
    scale: float,
    padding: list[tuple[int, int]],
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Resize masks the way :func:`mrcnn.images.resize_image` resized their image.

    Args:
        mask: ``[H, W, N]`` masks.
        scale: the scale returned by ``resize_image``.
        padding: ``[(top, bottom), (left, right), (0, 0)]`` returned by ``resize_image``.
        crop: ``(y, x, h, w)`` returned by ``resize_image`` in "crop" mode, else None.

    Returns:
        ``[H', W', N]`` masks of the same dtype, nearest-neighbour resized, then cropped or padded.
    """
    return resize_masks_nearest(mask, scale, padding, crop)


def mold_mask(mask: np.ndarray, config: Any) -> np.ndarray:
    """Resize and pad an image's masks the way the model's input molding resizes and pads the image.

    Matterport's ``utils.mold_mask(mask, config)`` is an empty placeholder; this is the step it stands for, as
    ``load_image_gt`` does it: :func:`mrcnn.images.resize_image`'s scale and padding for an image of the
    masks' size under the config's resize settings, applied with :func:`resize_mask`.

    Args:
        mask: ``[H, W, N]`` (or ``[H, W]``) masks of an ``H x W`` image.
        config: uses ``IMAGE_MIN_DIM``, ``IMAGE_MAX_DIM``, ``IMAGE_MIN_SCALE`` and ``IMAGE_RESIZE_MODE``
            ("none", "square" or "pad64").

    Returns:
        The masks in the molded image's pixels, same dtype: ``[H', W', N]`` (or ``[H', W']``).

    Raises:
        ValueError: for ``IMAGE_RESIZE_MODE = "crop"``, whose crop is random: use ``resize_image`` and pass
            its ``crop`` to ``resize_mask``.
    """
    from mrcnn.images import resize_image

    mode = config.IMAGE_RESIZE_MODE
    if mode == "crop":
        raise ValueError(
            "mold_mask cannot reproduce IMAGE_RESIZE_MODE='crop' (a random crop): call resize_image on the "
            "image and resize_mask(mask, scale, padding, crop) with what it returns"
        )
    mask = np.asarray(mask)
    single = mask.ndim == 2
    if single:
        mask = mask[:, :, None]
    # Only the geometry of resize_image is used; a one-channel stand-in of the image's size gives it.
    _, _, scale, padding, _ = resize_image(
        np.zeros(mask.shape[:2] + (1,), dtype=np.uint8),
        min_dim=config.IMAGE_MIN_DIM,
        max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        mode=mode,
    )
    molded = resize_mask(mask, scale, padding)
    return molded[:, :, 0] if single else molded


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape: tuple[int, int]) -> np.ndarray:
    """Crop each mask to its box and resize it to ``mini_shape`` to save memory.

    Args:
        bbox: ``[N, (y1, x1, y2, x2)]`` int pixel boxes (usually from ``extract_bboxes``).
        mask: ``[H, W, N]`` masks.
        mini_shape: ``(mh, mw)``.

    Returns:
        ``[mh, mw, N]`` bool mini masks (bilinear, thresholded at 0.5). A box of zero area (an empty mask)
        gives an all-False mini mask instead of an error.
    """
    n = mask.shape[-1]
    mh, mw = int(mini_shape[0]), int(mini_shape[1])
    mini_mask = np.zeros((mh, mw, n), dtype=bool)
    for i in range(n):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        crop = mask[y1:y2, x1:x2, i]
        if crop.size == 0:
            continue
        mini_mask[:, :, i] = resize_bilinear_exact(crop, (mh, mw)) > 0.5
    return mini_mask


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Paste mini masks back into full-image masks (inverse of :func:`minimize_mask`).

    Args:
        bbox: ``[N, (y1, x1, y2, x2)]`` int pixel boxes.
        mini_mask: ``[mh, mw, N]`` mini masks.
        image_shape: ``(H, W, ...)``.

    Returns:
        ``[H, W, N]`` bool masks (bilinear, thresholded at 0.5). Zero-area boxes give empty masks.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    n = mini_mask.shape[-1]
    mask = np.zeros((h, w, n), dtype=bool)
    for i in range(n):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        if y2 <= y1 or x2 <= x1:
            continue
        mask[y1:y2, x1:x2, i] = resize_bilinear_exact(mini_mask[:, :, i], (y2 - y1, x2 - x1)) > 0.5
    return mask


def unmold_mask(mask: np.ndarray, bbox: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Turn one predicted mask into a full-image binary mask.

    Args:
        mask: ``[mh, mw]`` float probabilities (the mask head's output for the detected class).
        bbox: ``(y1, x1, y2, x2)`` int pixel box in the image.
        image_shape: ``(H, W, ...)``.

    Returns:
        ``[H, W]`` bool: the mask resized to the box, thresholded at 0.5 (>=), pasted into the image.
    """
    return unmold_masks(np.asarray(mask)[None], np.asarray(bbox)[None], image_shape)[:, :, 0]


def unmold_masks(masks: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Turn predicted masks into full-image binary masks.

    Args:
        masks: ``[N, mh, mw]`` float probabilities.
        boxes: ``[N, (y1, x1, y2, x2)]`` int pixel boxes in the image.
        image_shape: ``(H, W, ...)``.

    Returns:
        ``[H, W, N]`` bool: each mask resized to its box (bilinear, as Matterport's ``unmold_mask``),
        thresholded at 0.5 (>=) and pasted; the parts of a box outside the image are cut off and a box of
        zero area gives an empty mask. Only box-sized arrays are computed per instance. The result is a
        view of an ``[N, H, W]`` array, so each ``[:, :, i]`` slice is contiguous.
    """
    return paste_masks(masks, boxes, image_shape, exact=cv2 is None)
