import logging

import numpy as np
import pytest

from fashion.categories import Category
from fashion.datasets.base import (
    FashionDataset,
    WarningCounter,
    polygons_ok,
    rasterize_polygons,
    resize_bool_mask,
    target_size,
)


def test_target_size_only_shrinks():
    assert target_size(10717, 6824, 512) == (512, 326)
    assert target_size(300, 200, 512) == (300, 200)
    assert target_size(300, 200, None) == (300, 200)


def test_resize_bool_mask_averages_areas():
    mask = np.zeros([100, 80], bool)
    mask[20:60, 40:80] = True
    small = resize_bool_mask(mask, 10, 8)
    expected = np.zeros([10, 8], bool)
    expected[2:6, 4:8] = True
    np.testing.assert_array_equal(small, expected)
    assert resize_bool_mask(mask, 100, 80) is mask


def test_warning_counter_counts_everything_and_logs_a_few(caplog):
    counter = WarningCounter(max_logged=2)
    with caplog.at_level(logging.WARNING, logger="fashion.datasets"):
        for i in range(5):
            counter.warn("bad_polygon", f"row {i}")
    assert counter.counts["bad_polygon"] == 5 and counter.total == 5
    assert counter.messages["bad_polygon"] == ["row 0", "row 1"]
    assert len(caplog.records) == 3  # two messages and one "only counting from now on"
    assert counter.summary() == "5 x bad_polygon (first: row 0)"


def test_polygon_checks_and_rasterization():
    good, bad = polygons_ok([[0, 0, 4, 0, 4, 4, 0, 4], [1, 1, 2, 2], [1, 2, 3], ["a"]])
    assert len(good) == 1 and good[0].dtype == np.float32
    assert bad == [
        "polygon 1 has 2 points (needs >= 3 (x, y) pairs)",
        "polygon 2 has 1 points (needs >= 3 (x, y) pairs)",
        "polygon 3 is not a list of numbers",
    ]
    mask = rasterize_polygons(good, 8, 8)
    assert mask.shape == (8, 8) and mask[1:4, 1:4].all() and not mask[6:, 6:].any()


def test_subset_renames_repeats_and_shares_classes():
    ds = FashionDataset()
    ds.register_classes([Category(5, "shoe", "feet"), Category(9, "bag", "others")])
    for i in range(3):
        cats = np.array([5, 9][: i + 1], np.int32)
        ds.add_image("fashion", image_id=i, path=None, height=4, width=4, categories=cats)
    ds.prepare()
    sub = ds.subset([2, 0, 2, 2])
    assert [info["id"] for info in sub.image_info] == [2, 0, "2#2", "2#3"]
    assert sub.num_images == 4 and sub.class_names == ["BG", "shoe", "bag"]
    assert sub.image_class_ids(0).tolist() == [1, 2]
    assert sub.class_image_counts() == {1: 4, 2: 3}
    assert len(ds.image_info) == 3
    with pytest.raises(NotImplementedError):
        ds.load_mask_and_attributes(0)
