import logging

import numpy as np
import pytest
from PIL import Image

from mrcnn.data.dataset import (
    Dataset,
    ImageLoadError,
    InvalidImageError,
    MissingImageError,
    check_image_for_detection,
    read_image_file,
    to_rgb_uint8,
)


def two_source_dataset() -> Dataset:
    ds = Dataset()
    ds.add_class("coco", 1, "person, human")
    ds.add_class("coco", 18, "dog")
    ds.add_class("coco", 18, "dog again")  # duplicate (source, id): ignored
    ds.add_class("fashion", 1, "shirt")
    ds.add_image("coco", image_id=42, path="a.jpg", width=10)
    ds.add_image("fashion", image_id="x7", path="b.png")
    ds.prepare()
    return ds


def test_prepare_builds_maps_and_derived_attributes():
    ds = two_source_dataset()
    assert ds.num_classes == 4
    assert ds.class_names == ["BG", "person", "dog", "shirt"]
    assert list(ds.class_ids) == [0, 1, 2, 3]
    assert ds.num_images == 2
    assert list(ds.image_ids) == [0, 1]
    assert ds.sources == ["", "coco", "fashion"]
    assert ds.source_class_ids == {"": [0], "coco": [0, 1, 2], "fashion": [0, 3]}
    assert ds.class_from_source_map == {".0": 0, "coco.1": 1, "coco.18": 2, "fashion.1": 3}
    assert ds.image_from_source_map == {"coco.42": 0, "fashion.x7": 1}
    assert ds.image_info[0] == {"id": 42, "source": "coco", "path": "a.jpg", "width": 10}
    assert ds.class_info[2] == {"source": "coco", "id": 18, "name": "dog"}


def test_id_mapping_both_ways():
    ds = two_source_dataset()
    assert ds.map_source_class_id("coco.18") == 2
    assert ds.map_source_class_id("fashion.1") == 3
    assert ds.get_source_class_id(2, "coco") == 18
    with pytest.raises(ValueError, match="fashion"):
        ds.get_source_class_id(2, "fashion")
    with pytest.raises(KeyError):
        ds.map_source_class_id("coco.99")
    assert ds.source_image_link(1) == "b.png"
    assert ds.image_reference(0) == ""


def test_source_with_dot_is_rejected():
    with pytest.raises(ValueError, match="dot"):
        Dataset().add_class("my.source", 1, "x")


def test_base_load_mask_warns_and_is_empty(caplog):
    ds = two_source_dataset()
    with caplog.at_level(logging.WARNING):
        mask, class_ids = ds.load_mask(0)
    assert "default load_mask()" in caplog.text
    assert mask.shape == (0, 0, 0)
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32


def _file_dataset(paths) -> Dataset:
    ds = Dataset()
    ds.add_class("files", 1, "thing")
    for i, p in enumerate(paths):
        ds.add_image("files", image_id=f"img{i}", path=str(p))
    ds.prepare()
    return ds


def test_load_image_converts_gray_and_rgba_to_rgb(tmp_path):
    gray = (np.arange(20 * 30) % 256).astype(np.uint8).reshape(20, 30)
    rgba = np.zeros([20, 30, 4], dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 77
    rgb = np.random.default_rng(0).integers(0, 256, [20, 30, 3]).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    ds = _file_dataset([tmp_path / "gray.png", tmp_path / "rgba.png", tmp_path / "rgb.png"])

    g = ds.load_image(0)
    assert g.shape == (20, 30, 3) and g.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(g[..., c], gray)
    a = ds.load_image(1)
    assert a.shape == (20, 30, 3)
    np.testing.assert_array_equal(a[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(ds.load_image(2), rgb)


def test_load_image_palette_and_16_bit(tmp_path):
    palette = Image.new("P", (8, 6))
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((3, 2), 1)
    palette.save(tmp_path / "palette.png")
    Image.fromarray(np.full([6, 8], 65535, np.uint16)).save(tmp_path / "deep.png")
    ds = _file_dataset([tmp_path / "palette.png", tmp_path / "deep.png"])
    p = ds.load_image(0)
    assert p.shape == (6, 8, 3)
    np.testing.assert_array_equal(p[2, 3], [200, 100, 50])
    np.testing.assert_array_equal(p[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(ds.load_image(1)[0, 0], [255, 255, 255])


def test_missing_image_names_file_and_id(tmp_path):
    missing = tmp_path / "nowhere.jpg"
    ds = _file_dataset([tmp_path / "x.png", missing])
    with pytest.raises(MissingImageError) as info:
        ds.load_image(1)
    assert "nowhere.jpg" in str(info.value)
    assert "image id 1" in str(info.value) and "img1" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_corrupt_image_names_file_and_id(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    ds = _file_dataset([bad])
    with pytest.raises(ImageLoadError, match=r"broken\.jpg.*image id 0"):
        ds.load_image(0)


def test_to_rgb_uint8_dtypes():
    np.testing.assert_array_equal(to_rgb_uint8(np.full([2, 2], 1.0))[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(to_rgb_uint8(np.full([2, 2, 1], 65535, np.uint16))[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(to_rgb_uint8(np.full([2, 2, 2], 7, np.uint8))[0, 0], [7, 7, 7])
    assert to_rgb_uint8(np.zeros([3, 2, 2, 3], np.uint8)).shape == (2, 2, 3)  # first frame of a stack
    with pytest.raises(ValueError):
        to_rgb_uint8(np.zeros([2, 2, 5], np.uint8))


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    """A 16-bit PNG's mid-gray is mid-gray (Pillow's convert("RGB") clips it to white)."""
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4096 + 255).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    with Image.open(tmp_path / "ramp16.png") as im:
        assert im.mode.startswith("I;16") or im.mode == "I"
        assert np.asarray(im.convert("RGB")).min() == 255  # the bug this guards against
    expected = (ramp >> 8).astype(np.uint8)
    rgb = to_rgb_uint8(read_image_file(str(tmp_path / "ramp16.png")))
    np.testing.assert_array_equal(rgb[..., 0], expected)
    np.testing.assert_array_equal(_file_dataset([tmp_path / "ramp16.png"]).load_image(0)[..., 1], expected)
    big_endian = ramp.astype(">u2")
    np.testing.assert_array_equal(to_rgb_uint8(big_endian)[..., 2], expected)


GOOD = np.full((4, 6, 3), 100, np.uint8)
# (input, expected [H, W, 3] uint8 or None when refused, words of the warning or of the error)
DETECT_INPUTS = [
    (GOOD, GOOD, None),
    (GOOD[:, :, 0], GOOD, "grayscale (4, 6) repeated"),
    (GOOD[:, :, :1], GOOD, "grayscale (4, 6, 1) repeated"),
    (np.dstack([GOOD, np.full((4, 6), 9, np.uint8)]), GOOD, "alpha channel dropped"),
    (GOOD[:, :, :2], GOOD, "alpha dropped, gray repeated"),
    (GOOD.astype(np.float32) / 255.0, GOOD, "float image in [0, 1] scaled to 0-255"),
    (GOOD.astype(np.float64), GOOD, "float image in [0, 255] rounded"),
    (GOOD.astype(np.uint16) * 257, GOOD, "16-bit image (uint16) scaled to 8 bits"),
    (GOOD.astype(np.int64), GOOD, "int64 values 0-255 read as uint8"),
    (np.ones((4, 6, 3), bool), np.full((4, 6, 3), 255, np.uint8), "bool read as 0/255"),
    (None, None, "is None"),
    (np.zeros((0, 0, 3), np.uint8), None, "is empty (shape (0, 0, 3))"),
    (np.zeros((5, 0), np.uint8), None, "is empty"),
    (np.zeros((4, 6, 5), np.uint8), None, "has shape (4, 6, 5)"),
    (np.zeros((2, 4, 6, 3), np.uint8), None, "has shape (2, 4, 6, 3)"),
    (np.full((4, 6, 3), np.nan, np.float32), None, "NaN or infinite"),
    (np.full((4, 6, 3), -1.0), None, "negative values"),
    (np.full((4, 6, 3), 300.0), None, "float values above 255"),
    (np.full((4, 6, 3), 70000, np.int64), None, "above 65535"),
    (np.array([["a", "b"]]), None, "not an array of numbers"),
]


@pytest.mark.parametrize(
    "image, expected, words",
    DETECT_INPUTS,
    ids=[f"{i}:{(w or 'as is')[:30]}" for i, (_, _, w) in enumerate(DETECT_INPUTS)],
)
def test_detect_input_is_converted_with_a_warning_or_refused_with_a_reason(image, expected, words):
    import warnings

    if expected is None:
        with pytest.raises(InvalidImageError, match="image 3 given to detect()") as info:
            check_image_for_detection(image, 3)
        assert words in str(info.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = check_image_for_detection(image, 2)
    assert rgb.dtype == np.uint8 and rgb.shape == expected.shape
    np.testing.assert_array_equal(rgb, expected)
    if words is None:
        assert not caught and rgb is image  # the usual input is used as is, not copied
    else:
        (warning,) = caught
        assert "image 2 given to detect()" in str(warning.message) and words in str(warning.message)
