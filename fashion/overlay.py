"""The overlay picture of a parsed image: translucent masks with outlines, dashed boxes and "name score"
captions, in each class's fixed colour.

One implementation for every tool that draws overlays (``fashion/infer.py``'s PNGs, the service's
``/v1/overlay``). It draws with numpy and Pillow, at most ``max_size`` pixels on the longer side: about 10 ms
for an 800-pixel picture, where :func:`mrcnn.visualize.display_instances` (matplotlib, kept for notebooks)
takes a few hundred. Colours are :func:`mrcnn.visualize.class_colors`, the ones of the label-map palettes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["draw_overlay", "overlay_png", "overlay_scale"]

MASK_ALPHA = 0.5
CAPTION_ALPHA = 0.6
_DASH, _GAP = 6, 4


def overlay_scale(height: int, width: int, max_size: int = 800, min_size: int = 512) -> float:
    """The factor an ``height x width`` image is drawn at: its longer side brought within
    ``[min_size, max_size]`` (small images are enlarged so that captions stay readable)."""
    longer = max(int(height), int(width), 1)
    target = min(max(longer, min_size), max_size)
    return target / longer


def _sample_indices(size: int, out_size: int) -> np.ndarray:
    """Nearest source index of each of ``out_size`` output pixels along an axis of ``size`` pixels."""
    centres = (np.arange(out_size) + 0.5) * (size / out_size)
    return np.clip(centres.astype(np.int64), 0, size - 1)


def _outline(mask: np.ndarray) -> np.ndarray:
    """``[h, w]`` bool: the pixels of ``mask`` with a 4-neighbour outside it (pixels beyond the array count as
    outside, so a mask touching the image border is outlined along it)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _dashed_rectangle(draw, box: Sequence[float], color: tuple[int, ...], width: int) -> None:
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (
        ((x1, y1), (x2, y1)),
        ((x2, y1), (x2, y2)),
        ((x2, y2), (x1, y2)),
        ((x1, y2), (x1, y1)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        steps = np.arange(0.0, length, _DASH + _GAP)
        for start in steps:
            end = min(start + _DASH, length)
            t0, t1 = (start / length, end / length) if length else (0.0, 1.0)
            draw.line(
                [(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                fill=color,
                width=width,
            )


def draw_overlay(
    image: np.ndarray,
    detections: Mapping,
    class_names: Sequence[str],
    max_size: int = 800,
    min_size: int = 512,
    title: str | None = None,
    captions: Sequence[str] | None = None,
):
    """Draw ``detections`` over ``image``.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        detections: ``MaskRCNN.detect``'s dict for it: ``rois [N, (y1, x1, y2, x2)]`` pixels (y2/x2
            exclusive), ``class_ids [N]``, ``scores [N]``, ``masks [H, W, N]`` bool.
        class_names: names by class id (0 the background).
        max_size, min_size: the longer side of the picture is brought within this range
            (:func:`overlay_scale`).
        title: a line of text above the picture (e.g. the file name), or None.
        captions: one text per instance instead of "name score".

    Returns:
        A Pillow RGB image. The most confident instance is drawn last (on top).
    """
    from PIL import Image, ImageDraw, ImageFont

    from mrcnn.visualize import class_colors

    image = np.asarray(image)
    height, width = image.shape[:2]
    scale = overlay_scale(height, width, max_size, min_size)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    picture = Image.fromarray(image[:, :, :3].astype(np.uint8))
    if (out_w, out_h) != (width, height):
        picture = picture.resize((out_w, out_h), Image.BILINEAR)
    canvas = np.asarray(picture, dtype=np.float32).copy()

    boxes = np.asarray(detections["rois"], dtype=np.float64).reshape(-1, 4)
    class_ids = np.asarray(detections["class_ids"]).reshape(-1).astype(np.int64)
    scores = np.asarray(detections["scores"], dtype=np.float64).reshape(-1)
    masks = np.asarray(detections["masks"])
    n = class_ids.size
    if not (boxes.shape[0] == n == masks.shape[-1] == scores.size):
        raise ValueError(
            f"rois ({boxes.shape[0]}), class_ids ({n}), scores ({scores.size}) and masks ({masks.shape[-1]}) "
            "disagree in count"
        )
    colors = [np.array(c[:3], np.float32) * 255.0 for c in class_colors(class_ids)]
    # From the least to the most confident, so that the most confident lies on top (ties: the first listed).
    order = np.argsort(-scores, kind="stable")[::-1]
    if n:
        rows, cols = _sample_indices(height, out_h), _sample_indices(width, out_w)
        small = masks[rows][:, cols].astype(bool)  # [out_h, out_w, N], nearest sample
        for i in order:
            rows_in = np.flatnonzero(small[:, :, i].any(axis=1))
            if not rows_in.size:
                continue
            cols_in = np.flatnonzero(small[:, :, i].any(axis=0))
            # Work inside the mask's extent only (the pixels beyond it are outside the mask).
            top, bottom = rows_in[0], rows_in[-1] + 1
            left, right = cols_in[0], cols_in[-1] + 1
            inside = small[top:bottom, left:right, i]
            region = canvas[top:bottom, left:right]
            region[inside] = region[inside] * (1.0 - MASK_ALPHA) + colors[i] * MASK_ALPHA
            region[_outline(inside)] = colors[i]

    picture = Image.fromarray(np.round(canvas).astype(np.uint8)).convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(11, round(max(out_w, out_h) / 50)))
    line = max(1, round(max(out_w, out_h) / 400))
    for i in order:
        if not np.any(boxes[i]):
            continue
        color = tuple(int(v) for v in colors[i])
        y1, x1, y2, x2 = boxes[i] * scale
        _dashed_rectangle(draw, (x1, y1, x2 - 1, y2 - 1), (*color, 220), line + 1)
        if captions is not None:
            text = captions[i]
        else:
            c = int(class_ids[i])
            name = str(class_names[c]) if 0 <= c < len(class_names) else str(c)
            text = f"{name} {scores[i]:.2f}"
        if text:
            # Inside the box's top-left corner, moved left / up where it would leave the picture.
            width_px = draw.textlength(text, font=font)
            at = (max(0.0, min(x1 + 2, out_w - width_px - 4)), max(0.0, min(y1 + 1, out_h - font.size - 4)))
            left, top, right, bottom = draw.textbbox(at, text, font=font)
            draw.rectangle(
                (left - 2, top - 1, right + 2, bottom + 1), fill=(*color, int(255 * CAPTION_ALPHA))
            )
            draw.text(at, text, font=font, fill=(255, 255, 255, 255))
    picture = Image.alpha_composite(picture, layer).convert("RGB")

    if title:
        band = font.size + 10
        titled = Image.new("RGB", (picture.width, picture.height + band), (255, 255, 255))
        titled.paste(picture, (0, band))
        ImageDraw.Draw(titled).text((6, 4), title, font=font, fill=(0, 0, 0))
        picture = titled
    return picture


def overlay_png(image: np.ndarray, detections: Mapping, class_names: Sequence[str], **options) -> bytes:
    """:func:`draw_overlay` encoded as PNG bytes (``options``: its keyword arguments)."""
    buffer = io.BytesIO()
    draw_overlay(image, detections, class_names, **options).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
