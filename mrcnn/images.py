"""Image resizing and normalisation with Matterport's names and semantics (thin wrappers over
:mod:`mrcnn.pipeline`, which owns them).

Images are ``[H, W, C]`` arrays (uint8 RGB for the COCO weights). ``window`` is the ``(y1, x1, y2, x2)`` pixel
region of the resized image that holds the original image (the rest is padding).
"""

from __future__ import annotations

from mrcnn.pipeline.molding import mold_image, resize_image, unmold_image
from mrcnn.pipeline.resample import resize
from mrcnn.pipeline.rules import RESIZE_MODES

__all__ = ["RESIZE_MODES", "resize", "resize_image", "mold_image", "unmold_image"]
