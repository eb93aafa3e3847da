"""The pipeline's rules, written once for both faces: numpy (``NUMPY_OPS``) and TensorFlow (``graph.TF_OPS``).

Each function here takes an ``ops`` namespace for the few operations numpy and TensorFlow spell differently
(maximum, where, round, stack, ...) and uses plain operators for the rest, so the numpy face (``molding``,
``resample``) and the in-graph face (``graph``) run the very same arithmetic:

- the resize scale and the resized size (:func:`resize_scale`, :func:`scaled_size`),
- the padding per IMAGE_RESIZE_MODE and the window (:func:`padding`, :func:`window`),
- where bilinear resampling samples the source (:func:`source_coordinates`) and how much of a sample a
  zero-padded border keeps (:func:`rim_factors`), the interpolation weights (:func:`bilinear_weights`),
- boxes normalized in the molded image back to pixels of the original image (:func:`boxes_to_original`).

Sizes are ``(h, w)`` in pixels; boxes ``(y1, x1, y2, x2)``, pixel boxes with y2/x2 exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mrcnn.boxes import denorm_boxes, norm_boxes

RESIZE_MODES = ("none", "square", "pad64", "crop")
PAD64 = 64
MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class ResizeRule:
    """How images are resized: Matterport's IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE, IMAGE_RESIZE_MODE.

    Modes:
        "none": no change (scale 1, window the whole image).
        "square": scale, then pad with zeros to ``[max_dim, max_dim]``, image centred.
        "pad64": scale (``max_dim`` ignored), then pad each side to a multiple of 64, image centred;
            ``min_dim`` must be a multiple of 64.
        "crop": scale, then take a random ``[min_dim, min_dim]`` crop (``max_dim`` ignored; numpy face only).
    """

    min_dim: int | None = None
    max_dim: int | None = None
    min_scale: float | None = None
    mode: str = "square"

    def __post_init__(self):
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"mode {self.mode!r} not supported; use one of {RESIZE_MODES}")
        if self.mode == "pad64" and (not self.min_dim or self.min_dim % PAD64):
            raise ValueError(f"pad64 mode needs min_dim to be a multiple of 64, got {self.min_dim}")

    @classmethod
    def from_config(cls, config: Any) -> ResizeRule:
        return cls(
            min_dim=config.IMAGE_MIN_DIM,
            max_dim=config.IMAGE_MAX_DIM,
            min_scale=config.IMAGE_MIN_SCALE,
            mode=config.IMAGE_RESIZE_MODE,
        )


class NumpyOps:
    """The ``ops`` of the numpy face: float64 scalar arithmetic as Matterport's (Python floats)."""

    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    where = staticmethod(np.where)
    round = staticmethod(np.round)  # half to even, as Python's round and tf.round
    abs = staticmethod(np.abs)
    stack = staticmethod(np.stack)
    expand_dims = staticmethod(np.expand_dims)
    norm_boxes = staticmethod(norm_boxes)
    denorm_boxes = staticmethod(denorm_boxes)

    @staticmethod
    def round_int(x):
        rounded = np.round(x)
        return int(rounded) if np.ndim(rounded) == 0 else rounded.astype(np.int32)

    @staticmethod
    def to_float(x):
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def arange(n):
        return np.arange(n, dtype=np.float64)

    @staticmethod
    def unstack(x):
        return list(np.asarray(x))


NUMPY_OPS = NumpyOps()


# -- sizes ---------------------------------------------------------------------------------------------------


def resize_scale(h, w, rule: ResizeRule, ops=NUMPY_OPS):
    """The scale factor for an ``h x w`` image (``h``, ``w`` floats).

    ``max(1, min_dim / min(h, w))`` (upscale so the short side reaches ``min_dim``, never downscale for it),
    then at least ``min_scale``, then in "square" mode reduced to ``max_dim / max(h, w)`` when the long side
    would round to more than ``max_dim``. 1 in "none" mode.
    """
    scale = ops.to_float(1.0)
    if rule.mode == "none":
        return scale
    if rule.min_dim:
        scale = ops.maximum(scale, rule.min_dim / ops.minimum(h, w))
    if rule.min_scale:
        scale = ops.maximum(scale, ops.to_float(rule.min_scale))
    if rule.max_dim and rule.mode == "square":
        long_side = ops.maximum(h, w)
        scale = ops.where(ops.round(long_side * scale) > rule.max_dim, rule.max_dim / long_side, scale)
    return scale


def scaled_size(h, w, scale, ops=NUMPY_OPS):
    """``(round(h * scale), round(w * scale))``: the size after scaling, before padding or cropping."""
    return ops.round_int(h * scale), ops.round_int(w * scale)


def _centred(size, target):
    before = (target - size) // 2
    return before, target - size - before


def _to_multiple(size, multiple):
    total = -size % multiple
    return total // 2, total - total // 2


def padding(h, w, rule: ResizeRule):
    """``((top, bottom), (left, right))`` zero padding of a scaled ``h x w`` image (ints or int tensors).

    "square": centred in ``[max_dim, max_dim]``; "pad64": each side to a multiple of 64, centred; other
    modes: none. The extra pixel of an odd total goes to the bottom/right.
    """
    if rule.mode == "square":
        return _centred(h, rule.max_dim), _centred(w, rule.max_dim)
    if rule.mode == "pad64":
        return _to_multiple(h, PAD64), _to_multiple(w, PAD64)
    return (0, 0), (0, 0)


def window(h, w, pads):
    """``(y1, x1, y2, x2)`` of a scaled ``h x w`` image inside its padded canvas."""
    (top, _), (left, _) = pads
    return top, left, top + h, left + w


# -- bilinear sampling ---------------------------------------------------------------------------------------


def source_coordinates(pixels, n_in, n_out):
    """Where output pixels sample a source of ``n_in`` pixels resized to ``n_out``: ``(p + 0.5) * n_in / n_out - 0.5``.

    Pixel centres aligned, no anti-aliasing: skimage's ``resize(order=1)``, OpenCV's INTER_LINEAR and
    ``tf.image.resize(method="bilinear")`` all sample there.
    pixels: output pixel indices ``[..., P]`` (``0..n_out-1``, or an image's pixels minus a box's first pixel;
    ``n_in``, ``n_out`` then ``[N, 1]`` per box). Returns float source coordinates of the same shape.
    """
    return (pixels + 0.5) * (n_in / n_out) - 0.5


def rim_factors(coords, n_in, ops=NUMPY_OPS):
    """Per output pixel, the share of a bilinear sample that falls inside a source of ``n_in`` pixels.

    skimage blends samples beyond the outermost pixel centres with zeros (``mode="constant", cval=0``), where
    OpenCV and TensorFlow repeat the edge pixel; a sample at ``c`` in ``(-1, 0)`` keeps ``c + 1`` of the edge
    pixel, one in ``(n_in - 1, n_in)`` keeps ``n_in - c``. Multiplying an edge-replicating result by these
    factors (rows, then columns: the filter is separable) gives skimage's. 1 for interior samples.
    """
    return ops.minimum(1.0, ops.minimum(coords + 1.0, n_in - coords))


def bilinear_weights(coords, n_in, ops=NUMPY_OPS):
    """Interpolation weights from ``n_in`` source pixels to the samples at ``coords``, zero outside the source.

    coords: ``[..., n_out]``. Returns ``[..., n_out, n_in]``: the triangle kernel ``max(0, 1 - |c - j|)``, the
    same weights as skimage's zero-padded bilinear resampling (a row sums to its :func:`rim_factors`).
    """
    cells = ops.arange(n_in)
    distance = ops.abs(ops.expand_dims(coords, -1) - cells)
    return ops.maximum(1.0 - distance, 0.0)


# -- boxes ---------------------------------------------------------------------------------------------------


def boxes_to_original(boxes, window_px, image_hw, original_hw, ops=NUMPY_OPS):
    """Boxes normalized in the molded image -> int pixel boxes of the original image.

    boxes: ``[N, (y1, x1, y2, x2)]`` normalized in the molded image of size ``image_hw``.
    window_px: ``(y1, x1, y2, x2)`` pixels of the molded image that hold the original image.
    original_hw: ``(h, w)`` of the original image.
    The window is normalized the same way, the boxes re-expressed relative to it, then denormalized in the
    original image (``mrcnn.boxes.norm_boxes`` / ``denorm_boxes`` conventions, rounded to the nearest pixel).
    """
    wy1, wx1, wy2, wx2 = ops.unstack(ops.norm_boxes(window_px, image_hw))
    shift = ops.stack([wy1, wx1, wy1, wx1])
    extent = ops.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return ops.denorm_boxes((boxes - shift) / extent, original_hw)
