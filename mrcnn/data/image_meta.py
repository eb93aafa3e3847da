"""Packing image attributes into the 1-D ``image_meta`` vector the model takes as an input, and back.

Layout (length ``1 + 3 + 3 + 4 + 1 + NUM_CLASSES`` = ``config.IMAGE_META_SIZE``)::

    [image_id, original_image_shape (h, w, c), image_shape (h, w, c),
     window (y1, x1, y2, x2 in pixels of the molded image), scale, active_class_ids (NUM_CLASSES)]

Stored as float32: integer fields are exact up to 2**24 (image ids beyond that lose precision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def compose_image_meta(
    image_id: int,
    original_image_shape: Sequence[int],
    image_shape: Sequence[int],
    window: Sequence[int],
    scale: float,
    active_class_ids: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """Packs image attributes into one vector.

    image_id: internal image id. original_image_shape: [h, w, c] before resizing. image_shape: [h, w, c]
    after resizing and padding. window: (y1, x1, y2, x2) pixels of the resized image that hold the real image
    (the rest is padding). scale: resize factor. active_class_ids: [NUM_CLASSES] 1 for the classes of the
    image's source dataset, else 0.
    Returns [12 + NUM_CLASSES] float32.
    """
    parts = [
        np.array([image_id], dtype=np.float64),
        np.asarray(original_image_shape, dtype=np.float64).reshape(-1),
        np.asarray(image_shape, dtype=np.float64).reshape(-1),
        np.asarray(window, dtype=np.float64).reshape(-1),
        np.array([scale], dtype=np.float64),
        np.asarray(active_class_ids, dtype=np.float64).reshape(-1),
    ]
    for name, part, size in zip(("original_image_shape", "image_shape", "window"), parts[1:4], (3, 3, 4)):
        if part.size != size:
            raise ValueError(f"{name} must have {size} values, got {part.size}")
    return np.concatenate(parts).astype(np.float32)


def parse_image_meta(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Unpacks image_meta vectors.

    meta: [B, META] (or one [META] vector, which gives unbatched fields).
    Returns a dict: image_id [B] int32, original_image_shape [B, 3] int32, image_shape [B, 3] int32,
    window [B, 4] int32 (pixels), scale [B] float32, active_class_ids [B, NUM_CLASSES] int32.
    """
    meta = np.asarray(meta)
    if meta.shape[-1] < 12:
        raise ValueError(f"image_meta needs at least 12 values in its last axis, got shape {meta.shape}")
    return {
        "image_id": np.rint(meta[..., 0]).astype(np.int32),
        "original_image_shape": np.rint(meta[..., 1:4]).astype(np.int32),
        "image_shape": np.rint(meta[..., 4:7]).astype(np.int32),
        "window": np.rint(meta[..., 7:11]).astype(np.int32),
        "scale": meta[..., 11].astype(np.float32),
        "active_class_ids": np.rint(meta[..., 12:]).astype(np.int32),
    }
