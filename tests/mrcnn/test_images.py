import random

import numpy as np
import pytest
import skimage.transform
from hypothesis import given, settings
from hypothesis import strategies as st

from mrcnn.config import Config
from mrcnn.images import mold_image, resize, resize_image, unmold_image


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(1, 256, (h, w, 3)).astype(np.uint8)


def test_mode_none_returns_image_unchanged():
    image = _image(30, 50)
    out, window, scale, padding, crop = resize_image(image, min_dim=64, max_dim=128, mode="none")
    assert out is image
    assert window == (0, 0, 30, 50) and scale == 1 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_square_upscales_short_side_and_pads():
    image = _image(50, 100)
    out, window, scale, padding, crop = resize_image(image, min_dim=64, max_dim=128, mode="square")
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(1.28)
    assert padding == [(32, 32), (0, 0), (0, 0)]
    assert window == (32, 0, 96, 128) and crop is None
    # The pixels of Matterport's skimage bilinear resize (zero-padded border, truncated), up to float rounding.
    expected = skimage.transform.resize(
        image, (64, 128), order=1, mode="constant", preserve_range=True, anti_aliasing=False
    ).astype(np.uint8)
    diff = np.abs(out[32:96].astype(int) - expected)
    assert diff.max() <= 1 and diff.mean() <= 0.05
    assert not out[:32].any() and not out[96:].any()


def test_square_downscales_long_side_to_max_dim():
    out, window, scale, padding, _ = resize_image(_image(200, 400), min_dim=64, max_dim=128, mode="square")
    assert scale == pytest.approx(0.32)
    assert out.shape == (128, 128, 3)
    assert window == (32, 0, 96, 128)
    assert padding == [(32, 32), (0, 0), (0, 0)]


def test_min_scale_overrides_smaller_scale():
    out, window, scale, _, _ = resize_image(
        _image(40, 40), min_dim=32, max_dim=128, min_scale=2, mode="square"
    )
    assert scale == 2
    assert window == (24, 24, 104, 104)
    # max_dim still wins over min_scale in square mode.
    _, _, scale, _, _ = resize_image(_image(40, 40), min_dim=32, max_dim=64, min_scale=2, mode="square")
    assert scale == pytest.approx(1.6)


def test_pad64_pads_each_side_to_multiple_of_64():
    out, window, scale, padding, crop = resize_image(_image(100, 70), min_dim=64, max_dim=1024, mode="pad64")
    assert scale == 1 and crop is None
    assert out.shape == (128, 128, 3)
    assert padding == [(14, 14), (29, 29), (0, 0)]
    assert window == (14, 29, 114, 99)
    with pytest.raises(ValueError, match="multiple of 64"):
        resize_image(_image(100, 70), min_dim=50, mode="pad64")


def test_crop_takes_min_dim_square_from_scaled_image():
    image = _image(100, 80)
    out, window, scale, padding, crop = resize_image(image, min_dim=64, mode="crop", rng=random.Random(0))
    assert scale == 1 and out.shape == (64, 64, 3) and window == (0, 0, 64, 64)
    y, x, h, w = crop
    assert (h, w) == (64, 64) and 0 <= y <= 36 and 0 <= x <= 16
    np.testing.assert_array_equal(out, image[y : y + 64, x : x + 64])
    # Deterministic given the same rng; numpy Generators work too.
    assert resize_image(image, min_dim=64, mode="crop", rng=random.Random(0))[4] == crop
    g1 = resize_image(image, min_dim=64, mode="crop", rng=np.random.default_rng(5))[4]
    assert g1 == resize_image(image, min_dim=64, mode="crop", rng=np.random.default_rng(5))[4]


def test_unknown_mode_raises():
    with pytest.raises(ValueError):
        resize_image(_image(10, 10), min_dim=64, max_dim=64, mode="stretch")


def test_float_and_grayscale_images_keep_dtype_and_rank():
    out, *_ = resize_image(np.ones((20, 30), dtype=np.float32), min_dim=64, max_dim=128, mode="square")
    assert out.shape == (128, 128) and out.dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(
    st.integers(8, 300),
    st.integers(8, 300),
    st.sampled_from(["square", "pad64", "crop"]),
    st.sampled_from([64, 128]),
    st.sampled_from([0, 1.5]),
)
def test_window_scale_padding_consistent(h, w, mode, min_dim, min_scale):
    max_dim = 256
    image = np.full((h, w, 3), 200, dtype=np.uint8)
    out, window, scale, padding, crop = resize_image(
        image, min_dim=min_dim, max_dim=max_dim, min_scale=min_scale, mode=mode, rng=random.Random(1)
    )
    assert out.dtype == np.uint8
    assert scale >= min(min_scale or 0, max_dim / max(h, w)) - 1e-12
    sh, sw = round(h * scale), round(w * scale)
    if mode == "crop":
        assert min(sh, sw) >= min_dim
        assert out.shape == (min_dim, min_dim, 3) and window == (0, 0, min_dim, min_dim)
        y, x, ch, cw = crop
        assert ch == cw == min_dim and 0 <= y <= sh - min_dim and 0 <= x <= sw - min_dim
        return
    (top, bottom), (left, right), (c0, c1) = padding
    assert crop is None and (c0, c1) == (0, 0)
    assert window == (top, left, top + sh, left + sw)
    assert out.shape == (sh + top + bottom, sw + left + right, 3)
    if mode == "square":
        assert out.shape[:2] == (max_dim, max_dim)
        assert max(sh, sw) <= max_dim
    else:
        assert out.shape[0] % 64 == 0 and out.shape[1] % 64 == 0
        assert top + bottom < 64 and left + right < 64
    assert abs(top - bottom) <= 1 and abs(left - right) <= 1
    y1, x1, y2, x2 = window
    assert out[y1:y2, x1:x2].all()
    assert out.sum() == out[y1:y2, x1:x2].sum()


def test_resize_wrapper_defaults_match_skimage():
    image = np.random.default_rng(0).random((10, 14))
    np.testing.assert_allclose(
        resize(image, (25, 7)),
        skimage.transform.resize(image, (25, 7), order=1, mode="constant", anti_aliasing=False),
    )


def test_mold_unmold_round_trip():
    config = TinyConfig()
    image = _image(8, 8)
    molded = mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], image[0, 0] - np.array([123.7, 116.8, 103.9]), rtol=1e-6)
    np.testing.assert_array_equal(unmold_image(molded + 1e-3, config), image)
    assert unmold_image(np.full((1, 1, 3), 500.0), config).tolist() == [[[255, 255, 255]]]
