"""fashion/infer.py on a large photo: writing one image's outputs (label map, COCO records with RLE masks,
overlay) allocates at most about 6 bytes per pixel beyond the detections themselves plus a fixed amount for
the overlay, which is drawn at OVERLAY_MAX_SIDE whatever the photo's size.

Before: the overlay was drawn at full size (about 25 bytes per pixel, 1.6 GB and 40 s for 8000 x 8000) and the
COCO records copied all N masks twice over (about 3 N bytes per pixel).
"""

import tracemalloc

import numpy as np

from fashion import infer
from fashion import postprocess as pp

SIDE = 3000
INSTANCES = 8


def _detections(side, n, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, side, side), bool)  # as unmold_masks gives them: [H, W, N] views of [N, H, W]
    rois = []
    for i in range(n):
        y1, x1 = (int(v) for v in rng.integers(0, side // 2, 2))
        y2, x2 = y1 + side // 3, x1 + side // 4
        masks[i, y1:y2, x1:x2] = True
        rois.append([y1, x1, y2, x2])
    return {
        "rois": np.array(rois, np.int32),
        "class_ids": np.arange(n, dtype=np.int32) % 5 + 1,
        "scores": np.linspace(0.9, 0.5, n).astype(np.float32),
        "masks": masks.transpose(1, 2, 0),
    }


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_outputs_of_a_large_image_stay_within_the_memory_bound(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    detections = _detections(SIDE, INSTANCES)
    names = ["BG"] + [f"class{i}" for i in range(1, 6)]
    infer._palette(6)  # imports matplotlib once, outside the measurement

    def outputs():
        result = pp.postprocess(detections, pp.PostprocessOptions())
        infer.save_label_map(str(tmp_path / "label.png"), pp.semantic_label_map(result), len(names))
        infer.coco_result_records(result, 1, "big.jpg", names)
        infer.save_overlay(str(tmp_path / "overlay.png"), image, result, names, "big.jpg")

    pixels = SIDE * SIDE
    peak = _peak(outputs)
    assert peak < 6 * pixels + 160 * 2**20, f"{peak / 2**20:.0f} MiB for {SIDE} x {SIDE}"


def test_the_overlay_is_drawn_at_a_capped_size():
    image = np.zeros((5000, 2500, 3), np.uint8)
    detections = _detections(2500, 2)
    detections["masks"] = np.zeros((5000, 2500, 2), bool)
    detections["masks"][1000:3000, 500:1500, 0] = True
    detections["rois"] = np.array([[1000, 500, 3000, 1500], [0, 0, 10, 10]], np.int32)
    small, shrunk = infer.shrink_for_overlay(image, detections)
    assert small.shape == (infer.OVERLAY_MAX_SIDE, infer.OVERLAY_MAX_SIDE // 2, 3)
    assert shrunk["masks"].shape == (1024, 512, 2)
    np.testing.assert_array_equal(shrunk["rois"][0], [205, 102, 614, 307])
    ys, xs = np.nonzero(shrunk["masks"][:, :, 0])
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (205, 614, 102, 307)
    same, unchanged = infer.shrink_for_overlay(image[:800, :600], detections)
    assert same.shape == (800, 600, 3) and unchanged["masks"] is detections["masks"]
