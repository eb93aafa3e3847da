"""Shrinking a photo and its detections for display (overlays), not for the network.

The network's resize is :func:`mrcnn.pipeline.molding.resize_image` (Matterport's pixels); a picture for people
to look at only needs to be small and cheap: area averaging, one mask at a time, so memory does not grow with
the photo's size.
"""

from __future__ import annotations

import numpy as np


def display_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) with the longer side at most ``max_side`` pixels (never enlarged)."""
    if max(height, width) <= max_side:
        return int(height), int(width)
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink_for_display(
    image: np.ndarray, rois: np.ndarray, masks: np.ndarray, max_side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image`` [H, W, 3] uint8, ``rois`` [N, (y1, x1, y2, x2)] pixels and ``masks`` [H, W, N] bool shrunk so
    that the longer side is at most ``max_side`` (returned as they are when already small).

    Pixels are area-averaged (OpenCV INTER_AREA); a mask pixel stays set where at least half of what it covers
    was, computed one mask at a time from a uint8 view (no full-size copy); boxes are scaled and rounded.
    Returns (image [h, w, 3], rois [N, 4] int32, masks [h, w, N] bool).
    """
    import cv2

    height, width = image.shape[:2]
    th, tw = display_size(height, width, max_side)
    masks = np.asarray(masks, dtype=bool)
    if (th, tw) == (height, width):
        return image, np.asarray(rois), masks
    small_image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    small_masks = np.zeros((th, tw, masks.shape[-1]), dtype=bool)
    for i in range(masks.shape[-1]):
        share = cv2.resize(
            masks[:, :, i].view(np.uint8) * np.uint8(255), (tw, th), interpolation=cv2.INTER_AREA
        )
        small_masks[:, :, i] = share >= 128
    scale = np.array([th / height, tw / width, th / height, tw / width])
    small_rois = np.round(np.asarray(rois, dtype=np.float64).reshape(-1, 4) * scale).astype(np.int32)
    return small_image, small_rois, small_masks
