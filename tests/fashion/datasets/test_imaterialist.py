import logging
import os

import numpy as np
import pytest
from PIL import Image

from fashion.datasets import IMaterialistDataset, load_dataset
from mrcnn.data.dataset import ImageLoadError


@pytest.fixture
def small(tmp_path, write, box):
    """Three images: a shirt+shoe, a dress with attributes, a sleeve (a part) only."""
    return write.imaterialist(
        str(tmp_path),
        {
            "a.jpg": (30, 20, [("0", box(30, 20, 2, 3, 10, 12)), ("23", box(30, 20, 25, 0, 30, 5))]),
            "b.jpg": (24, 40, [("10_1_4", box(24, 40, 0, 10, 24, 30))]),
            "c.jpg": (16, 16, [("31", box(16, 16, 4, 4, 8, 8))]),
        },
    )


def test_loads_all_classes_masks_and_attributes(small, box):
    ds = IMaterialistDataset()
    ds.load_imaterialist(small)
    ds.prepare()
    assert ds.num_classes == 47 and ds.num_images == 3
    by_id = {info["id"]: i for i, info in enumerate(ds.image_info)}
    mask, class_ids = ds.load_mask(by_id["a.jpg"])
    assert mask.shape == (30, 20, 2) and mask.dtype == bool
    np.testing.assert_array_equal(mask[:, :, 0], box(30, 20, 2, 3, 10, 12))
    np.testing.assert_array_equal(mask[:, :, 1], box(30, 20, 25, 0, 30, 5))
    assert class_ids.tolist() == [
        ds.map_source_class_id("imaterialist.0"),
        ds.map_source_class_id("imaterialist.23"),
    ]
    assert class_ids.tolist() == [1, 24]  # internal id = category + 1 with all 46
    assert ds.load_image(by_id["b.jpg"]).shape == (24, 40, 3)
    assert ds.load_attributes(by_id["b.jpg"]) == [(1, 4)]
    assert ds.attribute_labels(by_id["b.jpg"]) == [["stripe", "long sleeve"]]
    assert ds.image_info[by_id["a.jpg"]]["attributes"] == ((), ())
    assert ds.warnings.total == 0


def test_index_keeps_offsets_not_rle_strings(small):
    ds = IMaterialistDataset()
    ds.load_imaterialist(small)
    info = ds.image_info[0]
    assert info["offsets"].dtype == np.int64 and info["lines"].tolist() == [2, 3]
    assert sorted(info) == [
        "attributes",
        "categories",
        "height",
        "id",
        "lines",
        "offsets",
        "path",
        "source",
        "width",
    ]


def test_thesis5_subset_remaps_and_skips_images_left_empty(small):
    ds = load_dataset("imaterialist", small, classes="thesis5")
    ds.prepare()
    assert ds.class_names == ["BG", "top", "jacket", "pants", "dress", "shoe"]
    ids = [info["id"] for info in ds.image_info]
    assert ids == ["a.jpg", "b.jpg"]  # c.jpg had only a sleeve; a.jpg lost its shirt
    mask, class_ids = ds.load_mask(0)
    assert class_ids.tolist() == [5] and mask.shape == (30, 20, 1)
    assert ds.load_mask(1)[1].tolist() == [4]
    assert ds.stats["segments_dropped_by_class"] == 2
    assert ds.stats["images_skipped_no_selected_class"] == 1


def test_explicit_class_list_with_commas_in_names(small):
    ds = load_dataset("imaterialist", small, classes="shirt, blouse;23")
    ds.prepare()
    assert [c["name"] for c in ds.class_info[1:]] == ["shirt, blouse", "shoe"]
    assert ds.load_mask(0)[1].tolist() == [1, 2]


def test_bad_rows_are_counted_named_and_skipped(tmp_path, write, box):
    root = write.imaterialist(
        str(tmp_path),
        {
            "a.jpg": (10, 10, [("1", box(10, 10, 0, 0, 5, 5))]),
            "b.jpg": (10, 10, [("6", box(10, 10, 2, 2, 8, 8))]),
        },
        extra_rows=[
            ["a.jpg", "95 10", 10, 10, "23"],  # runs to pixel 104 > 100
            ["a.jpg", "1 3", 10, 10, "77"],  # unknown category
            ["a.jpg", "1 3", 10, 10, "shoe"],  # not an id
            ["a.jpg", "1 3", "ten", 10, "23"],  # bad size
            ["nofile.jpg", "1 3", 10, 10, "23"],  # missing image
        ],
    )
    ds = IMaterialistDataset()
    ds.load_imaterialist(root)
    ds.prepare()
    csv_path = os.path.join(root, "train.csv")
    w = ds.warnings
    assert w.counts == {
        "rle_overrun": 1,
        "unknown_class": 1,
        "bad_class_id": 1,
        "bad_size": 1,
        "missing_image": 1,
    }
    assert (
        f"{csv_path}:4:" in w.messages["rle_overrun"][0]
        and "past Height*Width" in w.messages["rle_overrun"][0]
    )
    assert f"{csv_path}:5:" in w.messages["unknown_class"][0]
    assert "nofile.jpg" in w.messages["missing_image"][0]
    assert [info["id"] for info in ds.image_info] == ["a.jpg", "b.jpg"]
    assert ds.load_mask(0)[1].tolist() == [2]


def test_overrun_inside_an_unsorted_row_is_caught_when_decoding(tmp_path, write, box):
    root = write.imaterialist(
        str(tmp_path),
        {"a.jpg": (10, 10, [("1", box(10, 10, 0, 0, 5, 5))])},
        extra_rows=[["a.jpg", "500 3 1 2", 10, 10, "23"]],  # last run fine, first run past the end
    )
    ds = IMaterialistDataset()
    ds.load_imaterialist(root)
    ds.prepare()
    mask, class_ids = ds.load_mask(0)
    assert class_ids.tolist() == [2] and mask.shape == (10, 10, 1)
    assert ds.warnings.counts["rle_overrun"] == 1 and "train.csv:3" in ds.warnings.messages["rle_overrun"][0]


def test_empty_and_header_only_csv_raise_naming_the_file(tmp_path, write):
    root = write.imaterialist(str(tmp_path), {})
    with pytest.raises(ValueError, match="train.csv: empty annotation file"):
        IMaterialistDataset().load_imaterialist(root)
    open(os.path.join(root, "train.csv"), "w").close()
    with pytest.raises(ValueError, match="train.csv: empty annotation file"):
        IMaterialistDataset().load_imaterialist(root)


def test_corrupt_image_dropped_by_check_or_skipped_at_load(tmp_path, write, box):
    root = write.imaterialist(
        str(tmp_path),
        {
            "a.jpg": (10, 10, [("1", box(10, 10, 0, 0, 5, 5))]),
            "b.jpg": (10, 10, [("6", box(10, 10, 2, 2, 8, 8))]),
        },
    )
    with open(os.path.join(root, "train", "a.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    ds = IMaterialistDataset()
    ds.load_imaterialist(root)
    ds.prepare()
    with pytest.raises(ImageLoadError, match="a.jpg"):
        ds.load_image(0)
    tolerant = IMaterialistDataset(skip_unreadable=True)
    tolerant.load_imaterialist(root)
    tolerant.prepare()
    image = tolerant.load_image(0)
    assert image.shape == (10, 10, 3) and not image.any()
    assert tolerant.load_mask(0)[1].size == 0  # so the training loader skips it
    assert tolerant.warnings.counts["unreadable_image"] == 1
    assert ds.check_images() == 1
    assert [info["id"] for info in ds.image_info] == ["b.jpg"] and ds.num_images == 1
    assert "a.jpg" in ds.warnings.messages["unreadable_image"][0]


def test_large_images_shrink_with_their_masks(tmp_path, write, box):
    mask = box(400, 300, 100, 60, 300, 240)
    root = write.imaterialist(str(tmp_path), {"big.jpg": (400, 300, [("10", mask)])})
    ds = IMaterialistDataset(max_dim=100)
    ds.load_imaterialist(root)
    ds.prepare()
    image = ds.load_image(0)
    small, class_ids = ds.load_mask(0)
    assert image.shape == (100, 75, 3) and small.shape == (100, 75, 1)
    ys, xs = np.nonzero(small[:, :, 0])
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (25, 75, 15, 60)


def test_image_ids_without_extension_and_attribute_column(tmp_path, write, box):
    root = str(tmp_path)
    write.imaterialist(root, {"x.jpg": (8, 8, [])})  # the file is x.jpg, the CSV says "x"
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("ImageId,EncodedPixels,Height,Width,ClassId,AttributesIds\n")
        f.write('x,1 4,8,8,10,"1,4"\n')
    ds = IMaterialistDataset()
    ds.load_imaterialist(root)
    ds.prepare()
    assert ds.image_info[0]["path"].endswith("x.jpg")
    assert ds.load_attributes(0) == [(1, 4)]
    assert ds.load_mask(0)[0][:4, 0, 0].all()


def test_truncated_jpeg_is_warned_about_once_and_counted_as_failed_to_load(tmp_path, write, box, caplog):
    """Its header reads (check_images keeps it), its pixels do not: one warning naming it, however often the
    loader draws it and from whichever split, and the loader counts it as failed, not as without instances."""
    from fashion.datasets import split
    from mrcnn.data.loader import DataLoader
    from mrcnn.testing import tiny_config

    images = {f"{k}.jpg": (64, 64, [("1", box(64, 64, 8, 8, 40, 40))]) for k in range(4)}
    root = write.imaterialist(str(tmp_path), images)
    path = os.path.join(root, "train", "0.jpg")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 3])
    ds = IMaterialistDataset(skip_unreadable=True)
    ds.load_imaterialist(root)
    assert ds.check_images() == 0
    ds.prepare()
    train, val = split(ds, 0.5, seed=0)
    caplog.set_level(logging.WARNING)
    for subset in (ds, train, val, train):
        for image_id in subset.image_ids:
            subset.load_image(image_id)
    config = tiny_config(NUM_CLASSES=ds.num_classes, IMAGES_PER_GPU=1, USE_MINI_MASK=True)
    loader = DataLoader(ds, config, shuffle=False, workers=1)
    for _epoch in range(3):
        for index in range(len(loader)):
            loader[index]
        loader.on_epoch_end()
    assert ds.warnings.counts == {"unreadable_image": 1}
    assert len([r for r in caplog.records if "0.jpg" in r.getMessage()]) == 1
    assert loader.failed_image_ids == {ds.image_from_source_map["imaterialist.0.jpg"]}
    assert loader.skipped == 0 and loader.errors >= 3  # drawn once per epoch, counted each time as failed


def test_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path, write, box):
    root = write.imaterialist(str(tmp_path), {"deep.png": (8, 16, [("1", box(8, 16, 1, 1, 6, 6))])})
    ramp = np.tile(np.arange(16, dtype=np.uint16) * 4096 + 2048, (8, 1))
    Image.fromarray(ramp).save(os.path.join(root, "train", "deep.png"))
    ds = IMaterialistDataset()
    ds.load_imaterialist(root)
    ds.prepare()
    image = ds.load_image(0)
    assert image.shape == (8, 16, 3)
    np.testing.assert_array_equal(image[0, :, 0], (ramp[0] >> 8).astype(np.uint8))
