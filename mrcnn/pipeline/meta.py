"""Image meta: a typed record (:class:`ImageMeta`) in Python, Matterport's float vector where the graph needs it.

Vector layout (length ``1 + 3 + 3 + 4 + 1 + NUM_CLASSES`` = ``config.IMAGE_META_SIZE``), :data:`META_LAYOUT`::

    [image_id, original_image_shape (h, w, c), image_shape (h, w, c),
     window (y1, x1, y2, x2 in pixels of the molded image), scale, active_class_ids (NUM_CLASSES)]

Stored as float32: integer fields are exact up to 2**24 (image ids beyond that lose precision). The graph
face (``graph.compose_image_meta_graph``, ``modeling.graph_utils.parse_image_meta_graph``) uses the same
layout through :func:`meta_slices`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# (Matterport's key, length); None: the rest of the vector.
META_LAYOUT: tuple[tuple[str, int | None], ...] = (
    ("image_id", 1),
    ("original_image_shape", 3),
    ("image_shape", 3),
    ("window", 4),
    ("scale", 1),
    ("active_class_ids", None),
)
FIXED_META_SIZE = sum(n for _, n in META_LAYOUT if n)  # 12


def meta_slices() -> dict[str, slice | int]:
    """Matterport's key -> index (one-value fields) or slice of the meta vector's last axis."""
    slices: dict[str, slice | int] = {}
    start = 0
    for key, length in META_LAYOUT:
        if length is None:
            slices[key] = slice(start, None)
        elif length == 1:
            slices[key] = start
        else:
            slices[key] = slice(start, start + length)
        start += length or 0
    return slices


def meta_size(num_classes: int) -> int:
    """Length of the meta vector for ``num_classes`` classes (``config.IMAGE_META_SIZE``)."""
    return FIXED_META_SIZE + int(num_classes)


@dataclass(frozen=True)
class ImageMeta:
    """What molding did to one image, in Python types.

    image_id: the dataset's internal image id (0 at inference).
    original_shape: ``(h, w, c)`` before resizing.
    image_shape: ``(h, w, c)`` after resizing and padding (the network input).
    window: ``(y1, x1, y2, x2)`` pixels of the molded image that hold the real image (the rest is padding).
    scale: the resize factor.
    active_class_ids: ``NUM_CLASSES`` values, 1 for the classes of the image's source dataset, else 0.
    """

    image_id: int
    original_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    window: tuple[int, int, int, int]
    scale: float
    active_class_ids: tuple[int, ...] = field(default=())

    def __post_init__(self):
        for name, size in (("original_shape", 3), ("image_shape", 3), ("window", 4)):
            value = tuple(int(v) for v in np.asarray(getattr(self, name)).reshape(-1))
            if len(value) != size:
                raise ValueError(f"{name} must have {size} values, got {len(value)}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "image_id", int(self.image_id))
        object.__setattr__(self, "scale", float(self.scale))
        active = tuple(int(v) for v in np.rint(np.asarray(self.active_class_ids, np.float64)).reshape(-1))
        object.__setattr__(self, "active_class_ids", active)

    def to_vector(self) -> np.ndarray:
        """Matterport's image_meta vector: ``[12 + NUM_CLASSES]`` float32."""
        return compose_image_meta(
            self.image_id,
            self.original_shape,
            self.image_shape,
            self.window,
            self.scale,
            self.active_class_ids,
        )

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> ImageMeta:
        """The record of one ``[META]`` vector (as made by :meth:`to_vector` or ``compose_image_meta``)."""
        vector = np.asarray(vector)
        if vector.ndim != 1:
            raise ValueError(f"ImageMeta.from_vector takes one [META] vector, got shape {vector.shape}")
        p = parse_image_meta(vector)
        return cls(
            image_id=p["image_id"],
            original_shape=p["original_image_shape"],
            image_shape=p["image_shape"],
            window=p["window"],
            scale=p["scale"],
            active_class_ids=p["active_class_ids"],
        )


def compose_image_meta(
    image_id: int,
    original_image_shape: Sequence[int],
    image_shape: Sequence[int],
    window: Sequence[int],
    scale: float,
    active_class_ids: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """Packs image attributes into one vector (Matterport's function; see :class:`ImageMeta` for the fields).

    Returns ``[12 + NUM_CLASSES]`` float32.
    """
    values = {
        "image_id": [image_id],
        "original_image_shape": original_image_shape,
        "image_shape": image_shape,
        "window": window,
        "scale": [scale],
        "active_class_ids": active_class_ids,
    }
    parts = []
    for key, length in META_LAYOUT:
        part = np.asarray(values[key], dtype=np.float64).reshape(-1)
        if length is not None and part.size != length:
            raise ValueError(f"{key} must have {length} values, got {part.size}")
        parts.append(part)
    return np.concatenate(parts).astype(np.float32)


def parse_image_meta(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Unpacks image_meta vectors (Matterport's function).

    meta: ``[B, META]`` (or one ``[META]`` vector, which gives unbatched fields).
    Returns a dict: image_id [B] int32, original_image_shape [B, 3] int32, image_shape [B, 3] int32,
    window [B, 4] int32 (pixels), scale [B] float32, active_class_ids [B, NUM_CLASSES] int32.
    """
    meta = np.asarray(meta)
    if meta.shape[-1] < FIXED_META_SIZE:
        raise ValueError(
            f"image_meta needs at least {FIXED_META_SIZE} values in its last axis, got shape {meta.shape}"
        )
    parsed = {}
    for key, where in meta_slices().items():
        values = meta[..., where]
        parsed[key] = values.astype(np.float32) if key == "scale" else np.rint(values).astype(np.int32)
    return parsed
