"""Resampling in numpy: Matterport's bilinear resize (scikit-image's, no anti-aliasing), fast; masks pasted.

Matterport resized images and masks with ``skimage.transform.resize(x, shape, order=1, mode="constant", cval=0,
clip=True, anti_aliasing=False)``: output pixel ``i`` samples the source at ``(i + 0.5) * n_in / n_out - 0.5``
(:func:`mrcnn.pipeline.rules.source_coordinates`), samples beyond the outermost pixel centres blend with
zeros, and the result is clipped to the source's value range (over all channels). Two implementations of that
one operation:

- :func:`resize_bilinear_exact`: float64 gathers, equal to skimage to ~1e-12; the reference, and the
  fallback for arrays OpenCV does not take.
- :func:`resize_bilinear`: OpenCV's INTER_LINEAR in float32 (10-50x faster; it samples at the same points but
  repeats the edge pixel), then the rim rows and columns scaled by :func:`mrcnn.pipeline.rules.rim_factors`
  and the clip. Equal to skimage up to float32 rounding (~1e-5 on 0-255 images).

Integer images are truncated afterwards (Matterport's ``astype(image.dtype)``); a truncated pixel can differ
from Matterport's by one level only where its exact value is within float rounding of an integer (about
3 pixels in 10,000 on photos).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.ndimage
import skimage.transform

from mrcnn.pipeline import rules

try:
    import cv2  # installed with imgaug
except ImportError:  # pragma: no cover
    cv2 = None

# OpenCV's largest channel count (CV_CN_MAX).
_CV2_MAX_CHANNELS = 512
# Downscaling the height by this much or more converts only the sampled rows to floats (at most half of
# them): 2x faster on a 3000x2000 photo molded to 512, no gain below (measured).
_ROWS_FIRST_RATIO = 4


def resize(
    image: np.ndarray,
    output_shape: tuple[int, ...],
    order: int = 1,
    mode: str = "constant",
    cval: float = 0,
    clip: bool = True,
    preserve_range: bool = False,
    anti_aliasing: bool = False,
    anti_aliasing_sigma: Any = None,
) -> np.ndarray:
    """Matterport's ``utils.resize``: ``skimage.transform.resize`` with no anti-aliasing, zero-padded border.

    Returns a float array of ``output_shape`` (values in the input's range with ``preserve_range=True``).
    """
    return skimage.transform.resize(
        image,
        output_shape,
        order=order,
        mode=mode,
        cval=cval,
        clip=clip,
        preserve_range=preserve_range,
        anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma,
    )


def _neighbours(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the index of its left neighbour in the source zero-padded by one pixel on each side,
    and the weight of the right neighbour."""
    coords = rules.source_coordinates(np.arange(n_out, dtype=np.float64), n_in, n_out)
    lo = np.floor(coords)
    return lo.astype(np.intp) + 1, coords - lo


def resize_bilinear_exact(
    image: np.ndarray, shape: tuple[int, int], rows: slice = slice(None), cols: slice = slice(None)
) -> np.ndarray:
    """skimage's zero-padded bilinear resize of ``[H, W, ...]`` to ``shape``, in float64 gathers.

    Returns float64 ``[h, w, ...][rows, cols]`` (only the requested part is computed), clipped to the
    source's value range. Separable, done with gathers rather than BLAS so that it does not compete for
    threads.
    """
    src = np.asarray(image, dtype=np.float64)
    out_h, out_w = int(shape[0]), int(shape[1])
    if src.size == 0:
        return np.zeros((out_h, out_w) + src.shape[2:])[rows, cols]
    padded = np.pad(src, [(1, 1), (1, 1)] + [(0, 0)] * (src.ndim - 2))
    iy, fy = _neighbours(src.shape[0], out_h)
    ix, fx = _neighbours(src.shape[1], out_w)
    trailing = (1,) * (src.ndim - 2)
    iy, fy, ix, fx = (
        iy[rows],
        fy[rows].reshape((-1, 1) + trailing),
        ix[cols],
        fx[cols].reshape((-1,) + trailing),
    )
    by_rows = padded[iy] * (1.0 - fy) + padded[iy + 1] * fy
    out = by_rows[:, ix] * (1.0 - fx) + by_rows[:, ix + 1] * fx
    return np.clip(out, src.min(), src.max(), out=out)


def _rim(n_in: int, n_out: int) -> np.ndarray:
    """:func:`mrcnn.pipeline.rules.rim_factors` of a resize from ``n_in`` to ``n_out`` pixels: [n_out] float64."""
    return rules.rim_factors(rules.source_coordinates(np.arange(n_out, dtype=np.float64), n_in, n_out), n_in)


def _work_dtype(dtype: np.dtype) -> type:
    """float32 where it holds every value exactly (bool, 8/16-bit ints, float16/32), else float64."""
    if dtype == np.float32 or dtype.itemsize <= 2:
        return np.float32
    return np.float64


def resize_bilinear(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """skimage's bilinear resize (as :func:`resize_bilinear_exact`), fast.

    image: ``[H, W]`` or ``[H, W, C]``, any real dtype. shape: ``(h, w)``.
    Returns ``[h, w]`` / ``[h, w, C]`` float32 (float64 for float64 and 32/64-bit integer images), clipped to
    the source's range, not truncated.
    """
    out_h, out_w = int(shape[0]), int(shape[1])
    image = np.asarray(image)
    channels = int(np.prod(image.shape[2:], dtype=np.int64))
    if cv2 is None or image.ndim > 3 or channels > _CV2_MAX_CHANNELS or image.size == 0 or out_h * out_w == 0:
        return resize_bilinear_exact(image, shape).astype(_work_dtype(image.dtype), copy=False)
    work = _work_dtype(image.dtype)
    if _ROWS_FIRST_RATIO * out_h <= image.shape[0]:
        out = _resize_rows_first(image, out_h, out_w, work)
    else:
        out = cv2.resize(image.astype(work, copy=False), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        out = out.reshape((out_h, out_w) + image.shape[2:])
    # OpenCV repeats the edge pixel where skimage blends with zeros: scale the rim rows and columns.
    trailing = (1,) * (image.ndim - 2)
    fy, fx = _rim(image.shape[0], out_h), _rim(image.shape[1], out_w)
    ry, rx = np.flatnonzero(fy < 1), np.flatnonzero(fx < 1)
    if ry.size:
        out[ry] *= fy[ry].astype(out.dtype).reshape((-1, 1) + trailing)
    if rx.size:
        out[:, rx] *= fx[rx].astype(out.dtype).reshape((-1,) + trailing)
    # The range of the input in its own dtype: 4 bytes a pixel fewer to read than the float copy for uint8.
    return np.clip(out, image.min(), image.max(), out=out)


def _resize_rows_first(image: np.ndarray, out_h: int, out_w: int, work: type) -> np.ndarray:
    """OpenCV's bilinear resize for a strong downscale in height, converting only the source rows that are
    sampled to floats: those rows, resized in width by OpenCV (same columns as a whole resize), blended
    in height here. For a large photo molded to 512 pixels this converts a fraction of the image.
    """
    in_h = image.shape[0]
    coords = rules.source_coordinates(np.arange(out_h, dtype=np.float64), in_h, out_h)
    top = np.floor(coords).astype(np.intp)  # >= 0 when downscaling
    bottom = np.minimum(top + 1, in_h - 1)
    rows, where = np.unique(np.concatenate([top, bottom]), return_inverse=True)
    trailing = (1,) * (image.ndim - 2)
    weight = (coords - top).astype(work).reshape((-1, 1) + trailing)
    sampled = cv2.resize(image[rows].astype(work), (out_w, rows.size), interpolation=cv2.INTER_LINEAR)
    sampled = sampled.reshape((rows.size, out_w) + image.shape[2:])
    out = sampled[where[:out_h]]
    out *= 1 - weight
    out += sampled[where[out_h:]] * weight
    return out


# -- masks ---------------------------------------------------------------------------------------------------


def resize_masks_nearest(
    mask: np.ndarray,
    scale: float,
    padding: list[tuple[int, int]],
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Matterport's ``resize_mask``: ``[H, W, N]`` masks zoomed by ``scale`` (nearest neighbour, scipy's
    ``zoom(order=0)``), then cropped to ``crop = (y, x, h, w)`` or zero-padded by ``padding``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, h, w = crop
        return mask[y : y + h, x : x + w]
    return np.pad(mask, padding[: mask.ndim], mode="constant", constant_values=0)


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, ...], *, exact: bool = False
) -> np.ndarray:
    """Resize predicted masks to their boxes and paste them into empty images (Matterport's ``unmold_mask``).

    Args:
        masks: ``[N, mh, mw]`` float probabilities.
        boxes: ``[N, (y1, x1, y2, x2)]`` int pixel boxes in the image.
        image_shape: ``(H, W, ...)``.
        exact: use the float64 reference resize instead of OpenCV.

    Returns:
        ``[H, W, N]`` bool: each mask resized to its box (skimage's bilinear), thresholded at 0.5 (>=) and
        pasted; the parts of a box outside the image are cut off and a box of zero area gives an empty mask.
        Only box-sized arrays are computed per instance. The result is a view of an ``[N, H, W]`` array, so
        each ``[:, :, i]`` slice is contiguous.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    masks = np.asarray(masks)
    boxes = np.asarray(boxes)
    n = masks.shape[0]
    full = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        y1, x1, y2, x2 = (int(v) for v in boxes[i][:4])
        # Only the part of the box that lies inside the image is pasted.
        cy1, cx1, cy2, cx2 = max(y1, 0), max(x1, 0), min(y2, h), min(x2, w)
        if y2 <= y1 or x2 <= x1 or cy2 <= cy1 or cx2 <= cx1:
            continue
        low, high = masks[i].min(), masks[i].max()
        if high < rules.MASK_THRESHOLD:  # interpolation never exceeds the maximum
            continue
        if low >= rules.MASK_THRESHOLD:  # skimage clips to [min, max], so every pixel stays >= 0.5
            full[i, cy1:cy2, cx1:cx2] = True
            continue
        rows, cols = slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1)
        if exact or cv2 is None:
            resized = resize_bilinear_exact(masks[i], (y2 - y1, x2 - x1), rows, cols)
        else:
            resized = _resize_probabilities(masks[i], y2 - y1, x2 - x1, rows, cols)
        np.greater_equal(resized, rules.MASK_THRESHOLD, out=full[i, cy1:cy2, cx1:cx2])
    return np.moveaxis(full, 0, -1)


def _resize_probabilities(mask: np.ndarray, out_h: int, out_w: int, rows: slice, cols: slice) -> np.ndarray:
    """:func:`resize_bilinear` of one ``[mh, mw]`` mask without the clip (thresholding at 0.5 does not need
    it once masks entirely above or below 0.5 are handled), ``[rows, cols]`` part only."""
    resized = cv2.resize(mask.astype(np.float32), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    resized = resized.reshape(out_h, out_w)[rows, cols]
    fy, fx = _rim(mask.shape[0], out_h)[rows], _rim(mask.shape[1], out_w)[cols]
    ry, rx = np.flatnonzero(fy < 1), np.flatnonzero(fx < 1)
    resized[ry] *= fy[ry, None].astype(np.float32)
    resized[:, rx] *= fx[rx].astype(np.float32)
    return resized
