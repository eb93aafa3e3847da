"""The numpy face: molding images for the network and unmolding its detections.

Molding one image: a :class:`ResizePlan` (scale, resized size, padding or crop, window; the arithmetic of
:mod:`mrcnn.pipeline.rules`), the image resized as Matterport's ``resize_image`` does (skimage's bilinear,
truncated for integer images, :mod:`mrcnn.pipeline.resample`), padded or cropped, the mean pixel subtracted,
and an :class:`~mrcnn.pipeline.meta.ImageMeta`. Unmolding: boxes back to pixels of the original image, masks
resized to their boxes and pasted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mrcnn.pipeline import rules
from mrcnn.pipeline.meta import ImageMeta
from mrcnn.pipeline.resample import paste_masks, resize_bilinear, resize_masks_nearest
from mrcnn.pipeline.rules import ResizeRule

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ResizePlan:
    """What resizing does to an image of a given size.

    scale: the scale factor. resized_shape: ``(h, w)`` after scaling.
    padding: ``[(top, bottom), (left, right), (0, 0)]`` zero padding added after scaling.
    crop: ``(y, x, h, w)`` taken from the scaled image in "crop" mode, else None.
    window: ``(y1, x1, y2, x2)`` of the image inside the output, in output pixels.
    output_shape: ``(h, w)`` of the result.
    """

    scale: float
    resized_shape: tuple[int, int]
    padding: list[tuple[int, int]]
    crop: Box | None
    window: Box
    output_shape: tuple[int, int]


def plan_resize(
    shape: Sequence[int], rule: ResizeRule, rng: random.Random | np.random.Generator | None = None
) -> ResizePlan:
    """The :class:`ResizePlan` of an image of ``shape`` ``(H, W, ...)`` under ``rule``.

    rng: random source of the "crop" mode's offsets (``random.Random`` or ``np.random.Generator``); by
    default Python's global ``random``, as Matterport.
    """
    h, w = int(shape[0]), int(shape[1])
    if rule.mode == "none":
        return ResizePlan(1, (h, w), [(0, 0), (0, 0), (0, 0)], None, (0, 0, h, w), (h, w))
    scale = float(rules.resize_scale(h, w, rule))
    new_h, new_w = rules.scaled_size(h, w, scale)
    if min(new_h, new_w) < 1:
        raise ValueError(
            f"an image of {h}x{w} pixels scales to {new_h}x{new_w} (scale {scale:.4g}): too thin to resize "
            f"with IMAGE_MIN_DIM={rule.min_dim}, IMAGE_MAX_DIM={rule.max_dim}"
        )
    if rule.mode == "crop":
        y = _randint(rng, new_h - rule.min_dim)
        x = _randint(rng, new_w - rule.min_dim)
        crop = (y, x, rule.min_dim, rule.min_dim)
        size = (rule.min_dim, rule.min_dim)
        return ResizePlan(scale, (new_h, new_w), [(0, 0), (0, 0), (0, 0)], crop, (0, 0) + size, size)
    (top, bottom), (left, right) = pads = rules.padding(new_h, new_w, rule)
    window = tuple(int(v) for v in rules.window(new_h, new_w, pads))
    output_shape = (new_h + top + bottom, new_w + left + right)
    return ResizePlan(
        scale, (new_h, new_w), [(top, bottom), (left, right), (0, 0)], None, window, output_shape
    )


def _resized(image: np.ndarray, plan: ResizePlan, truncate: bool = True) -> np.ndarray:
    """The image scaled to ``plan.resized_shape`` in the work float dtype (the image itself when the size does
    not change), truncated towards zero for integer images unless ``truncate`` is False (a cast to the
    image's dtype then truncates)."""
    if tuple(image.shape[:2]) == plan.resized_shape:
        return image  # also what Matterport's resize gives: sampling at the pixel centres is the identity
    resized = resize_bilinear(image, plan.resized_shape)
    if truncate and (np.issubdtype(image.dtype, np.integer) or image.dtype == bool):
        np.trunc(resized, out=resized)
    return resized


def apply_plan(image: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """Resize ``[H, W]`` / ``[H, W, C]`` ``image`` as ``plan`` says: a new array of the same dtype (Matterport's
    pixels)."""
    resized = _resized(image, plan, truncate=False).astype(image.dtype, copy=False)  # astype truncates
    if plan.crop is not None:
        y, x, h, w = plan.crop
        resized = resized[y : y + h, x : x + w]
    elif any(plan.padding[0] + plan.padding[1]):
        return np.pad(resized, plan.padding[: resized.ndim], mode="constant", constant_values=0)
    return resized.copy() if np.shares_memory(resized, image) else resized


def resize_masks(masks: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """Resize ``[H, W, N]`` instance masks as their image (nearest neighbour, Matterport's ``resize_mask``)."""
    return resize_masks_nearest(masks, plan.scale, plan.padding, plan.crop)


def resize_image(
    image: np.ndarray,
    min_dim: int | None = None,
    max_dim: int | None = None,
    min_scale: float | None = None,
    mode: str = "square",
    *,
    rng: random.Random | np.random.Generator | None = None,
) -> tuple[np.ndarray, Box, float, list[tuple[int, int]], Box | None]:
    """Matterport's ``resize_image``: resize keeping the aspect ratio, then pad or crop (see :class:`ResizeRule`).

    Same pixels as Matterport's (skimage's bilinear resize, no anti-aliasing, truncated to the input dtype).

    Returns:
        image: the resized image, same dtype as the input. In "none" mode the input itself.
        window: ``(y1, x1, y2, x2)`` of the image inside the output, in output pixels.
        scale: the scale factor applied.
        padding: ``[(top, bottom), (left, right), (0, 0)]`` pixels added.
        crop: ``(y, x, h, w)`` of the crop in the scaled image for "crop" mode, else None.
    """
    rule = ResizeRule(min_dim=min_dim, max_dim=max_dim, min_scale=min_scale, mode=mode)
    plan = plan_resize(image.shape, rule, rng)
    if mode == "none":
        return image, plan.window, plan.scale, plan.padding, plan.crop
    return apply_plan(image, plan), plan.window, plan.scale, plan.padding, plan.crop


def mold_image(images: np.ndarray, config: Any) -> np.ndarray:
    """Subtract the mean pixel: image(s) ``[..., C]`` -> float32 network input."""
    images = np.asarray(images)
    mean = np.asarray(config.MEAN_PIXEL, dtype=np.float32)
    if images.ndim >= 2:  # the mean repeated along a row: numpy then loops over rows, not over 3 channels
        mean = np.broadcast_to(mean, images.shape[-2:]).copy()
    return np.subtract(images, mean, dtype=np.float32)


def unmold_image(normalized_images: np.ndarray, config: Any) -> np.ndarray:
    """Inverse of :func:`mold_image`: add the mean pixel back; uint8, clipped to [0, 255], truncated."""
    return np.clip(normalized_images + config.MEAN_PIXEL, 0, 255).astype(np.uint8)


# -- a batch for detect() ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoldedBatch:
    """Images ready for the inference network.

    images: ``[B, H, W, C]`` float32, resized, padded, mean pixel subtracted.
    metas: one :class:`ImageMeta` per image.
    """

    images: np.ndarray
    metas: list[ImageMeta]

    @property
    def meta_vectors(self) -> np.ndarray:
        """``[B, IMAGE_META_SIZE]`` float32: the metas as the network takes them."""
        return np.stack([meta.to_vector() for meta in self.metas]).astype(np.float32, copy=False)

    @property
    def windows(self) -> np.ndarray:
        """``[B, (y1, x1, y2, x2)]`` int pixels of each molded image that hold the image."""
        return np.array([meta.window for meta in self.metas])


def mold_one(
    image: np.ndarray, config: Any, rng: random.Random | np.random.Generator | None = None
) -> tuple[np.ndarray, ImageMeta]:
    """Mold one ``[H, W, C]`` image: the same float32 values as ``mold_image(resize_image(image, ...)[0])``.

    Returns the molded image ``[h, w, C]`` float32 and its :class:`ImageMeta` (image_id 0, no active class).
    """
    plan = plan_resize(image.shape, ResizeRule.from_config(config), rng)
    molded = np.empty(plan.output_shape + image.shape[2:], dtype=np.float32)
    _mold_into(image, plan, np.asarray(config.MEAN_PIXEL, dtype=np.float32), molded)
    return molded, _inference_meta(image, molded.shape, plan, config)


def mold_images(images: Sequence[np.ndarray], config: Any) -> MoldedBatch:
    """Mold ``[H, W, C]`` images of any sizes into one batch (each as :func:`mold_one`).

    Raises ValueError when the molded images differ in size (IMAGE_RESIZE_MODE "none" or "pad64" on images
    of different sizes).
    """
    images = [np.asarray(image) for image in images]
    rule = ResizeRule.from_config(config)
    plans = [plan_resize(image.shape, rule) for image in images]
    shapes = sorted({plan.output_shape + image.shape[2:] for image, plan in zip(images, plans)})
    if len(shapes) > 1:
        raise ValueError(
            f"after resizing, images in one batch must have the same size; got {shapes} "
            f"(IMAGE_RESIZE_MODE {config.IMAGE_RESIZE_MODE!r}): use 'square' or detect them one at a time"
        )
    batch = np.empty((len(images),) + shapes[0], dtype=np.float32)
    mean = np.asarray(config.MEAN_PIXEL, dtype=np.float32)
    for image, plan, out in zip(images, plans, batch):
        _mold_into(image, plan, mean, out)
    metas = [_inference_meta(image, batch.shape[1:], plan, config) for image, plan in zip(images, plans)]
    return MoldedBatch(batch, metas)


def _mold_into(image: np.ndarray, plan: ResizePlan, mean: np.ndarray, out: np.ndarray) -> None:
    """Write the molded image into ``out`` (``plan.output_shape``) in one float pass: the resized float image,
    truncated, minus the mean pixel inside the window; ``-mean`` (molded zero padding) around it."""
    resized = _resized(image, plan)
    if plan.crop is not None:
        y, x, h, w = plan.crop
        resized = resized[y : y + h, x : x + w]
    y1, x1, y2, x2 = plan.window
    # The mean pixel repeated along a row: numpy then runs its loops over whole rows, not over 3 channels.
    mean_row = np.broadcast_to(mean, out.shape[1:]).copy()
    for band, row in ((out[:y1], mean_row), (out[y2:], mean_row), (out[y1:y2, :x1], mean_row[:x1])):
        np.negative(row, out=band)
    np.negative(mean_row[x2:], out=out[y1:y2, x2:])
    np.subtract(resized, mean_row[x1:x2], out=out[y1:y2, x1:x2], dtype=np.float32)


def _inference_meta(
    image: np.ndarray, molded_shape: tuple[int, ...], plan: ResizePlan, config: Any
) -> ImageMeta:
    return ImageMeta(
        image_id=0,
        original_shape=image.shape,
        image_shape=molded_shape,
        window=plan.window,
        scale=plan.scale,
        active_class_ids=np.zeros(config.NUM_CLASSES, np.int32),
    )


# -- unmolding -----------------------------------------------------------------------------------------------


def unmold_boxes(
    boxes: np.ndarray, window: Sequence[int], image_shape: Sequence[int], original_shape: Sequence[int]
) -> np.ndarray:
    """Boxes normalized in the molded image -> ``[N, (y1, x1, y2, x2)]`` int32 pixels of the original image.

    window: pixels of the molded image (of ``image_shape``) that hold the original image (of
    ``original_shape``).
    """
    return rules.boxes_to_original(
        np.asarray(boxes), np.asarray(window), tuple(image_shape[:2]), tuple(original_shape[:2])
    )


def unmold_detections(
    detections: np.ndarray,
    masks: np.ndarray,
    original_shape: Sequence[int],
    image_shape: Sequence[int],
    window: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's detections in its original coordinates (Matterport's ``unmold_detections``).

    Args:
        detections: ``[D, (y1, x1, y2, x2, class_id, score)]`` normalized, zero-padded.
        masks: ``[D, mh, mw, NUM_CLASSES]``, or ``[D, mh, mw]`` (already each detection's class mask).
        original_shape: ``(H, W, ...)`` before molding. image_shape: ``(h, w, ...)`` after.
        window: ``(y1, x1, y2, x2)`` pixels of the molded image that hold the image.

    Returns:
        boxes ``[N, 4]`` int32 pixels, class_ids ``[N]`` int32, scores ``[N]``, masks ``[H, W, N]`` bool: the
        detections up to the first padding row, less those whose box has no area in pixels.
    """
    detections = np.asarray(detections)
    keep, boxes = _kept_detections(detections, original_shape, image_shape, window)
    class_ids = detections[keep, 4].astype(np.int32)
    scores = detections[keep, 5]
    masks = np.asarray(masks)[keep]
    if masks.ndim == 4:
        masks = masks[np.arange(len(keep)), :, :, class_ids]
    return boxes, class_ids, scores, paste_masks(masks, boxes, tuple(original_shape[:2]))


def kept_detection_rows(
    detections: np.ndarray, original_shape: Sequence[int], image_shape: Sequence[int], window: Sequence[int]
) -> np.ndarray:
    """[N] int indices of the rows of ``detections`` that :func:`unmold_detections` returns, in its order
    (to select further per-detection outputs, e.g. attribute scores, the same way)."""
    return _kept_detections(np.asarray(detections), original_shape, image_shape, window)[0]


def _kept_detections(detections, original_shape, image_shape, window) -> tuple[np.ndarray, np.ndarray]:
    """(kept row indices [N], their boxes [N, 4] int32 in original pixels): the rows up to the first padding
    row, less those whose box has no area in pixels."""
    zero_ix = np.where(detections[:, 4] == 0)[0]
    n = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
    boxes = unmold_boxes(detections[:n, :4], window, image_shape, original_shape)
    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)[0]
    return keep, boxes[keep]


def _randint(rng: random.Random | np.random.Generator | None, high: int) -> int:
    """Uniform int in ``[0, high]``, inclusive like ``random.randint``."""
    if rng is None:
        return random.randint(0, high)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, high + 1))
    return rng.randint(0, high)
