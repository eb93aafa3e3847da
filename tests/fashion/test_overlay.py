"""fashion.overlay: the one overlay drawing of infer and the service."""

import numpy as np
import pytest

from fashion.overlay import MASK_ALPHA, draw_overlay, overlay_png, overlay_scale
from mrcnn.visualize import class_colors

NAMES = ["BG", "shirt", "shoe"]


def detections(h, w, boxes, class_ids, scores):
    masks = np.zeros((h, w, len(boxes)), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return {
        "rois": np.array(boxes, np.int32).reshape(-1, 4),
        "class_ids": np.array(class_ids, np.int32),
        "scores": np.array(scores, np.float32),
        "masks": masks,
    }


def blend(base, class_id):
    color = np.array(class_colors([class_id])[0]) * 255.0
    return np.round(np.asarray(base, float) * (1 - MASK_ALPHA) + color * MASK_ALPHA)


def test_sizes_are_brought_within_min_and_max():
    assert overlay_scale(100, 200) == pytest.approx(512 / 200)  # small images are enlarged
    assert overlay_scale(1000, 2000) == pytest.approx(800 / 2000)
    assert overlay_scale(600, 700) == 1.0
    picture = draw_overlay(np.zeros((100, 200, 3), np.uint8), detections(100, 200, [], [], []), NAMES)
    assert picture.size == (512, 256)


def test_masks_are_tinted_with_their_class_colour_and_outlined():
    image = np.full((600, 700, 3), 100, np.uint8)  # drawn at its own size
    found = detections(600, 700, [(100, 100, 300, 300)], [1], [0.9])
    pixels = np.asarray(draw_overlay(image, found, NAMES))
    # inside, below the caption
    np.testing.assert_allclose(pixels[250, 250], blend([100, 100, 100], 1), atol=1)
    color = np.round(np.array(class_colors([1])[0]) * 255.0)
    np.testing.assert_allclose(pixels[200, 100], color, atol=1)  # the mask's left edge: the outline
    assert tuple(pixels[500, 500]) == (100, 100, 100)  # outside: untouched


def test_the_most_confident_instance_lies_on_top():
    image = np.full((600, 600, 3), 50, np.uint8)
    # The shoe (0.8) is listed first and overlaps the shirt (0.6): the shoe must be drawn last.
    found = detections(600, 600, [(200, 200, 400, 400), (100, 100, 500, 500)], [2, 1], [0.8, 0.6])
    pixels = np.asarray(draw_overlay(image, found, NAMES, captions=["", ""]))
    np.testing.assert_allclose(pixels[300, 300], blend(blend([50, 50, 50], 1), 2), atol=1)


def test_title_band_png_and_count_check():
    image = np.zeros((600, 600, 3), np.uint8)
    titled = draw_overlay(image, detections(600, 600, [], [], []), NAMES, title="photo.jpg")
    assert titled.size[0] == 600 and titled.size[1] > 600
    assert overlay_png(image, detections(600, 600, [], [], []), NAMES).startswith(b"\x89PNG")
    broken = detections(600, 600, [(0, 0, 10, 10)], [1], [0.5])
    broken["class_ids"] = np.array([1, 2], np.int32)
    with pytest.raises(ValueError, match="disagree"):
        draw_overlay(image, broken, NAMES)
