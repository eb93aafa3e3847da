"""Upload decoding: formats sniffed from the bytes, the pixel limit before decoding, EXIF orientation, and the
conversion of grayscale, palette, RGBA, CMYK and 16-bit images."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fashion.serve.images import ImageInputError, decode_image

LIMIT = 10_000_000


def encode(array: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels but whose data is a 2x2 image's (a bomb's
    header: decoding it would fail, so a 413 proves the size was refused before decoding)."""
    data = encode(np.zeros((2, 2, 3), np.uint8))
    start = data.index(b"IHDR")
    fields = bytearray(data[start + 4 : start + 17])
    fields[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(fields)) & 0xFFFFFFFF)
    return data[: start + 4] + bytes(fields) + crc + data[start + 21 :]


def status_of(data: bytes, max_pixels: int = LIMIT) -> int:
    with pytest.raises(ImageInputError) as caught:
        decode_image(data, max_pixels)
    assert caught.value.message
    return caught.value.status


def test_rgb_png_and_jpeg_decode_to_the_same_pixels_size():
    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    png = decode_image(encode(rgb), LIMIT)
    assert png.format == "PNG" and png.mode == "RGB" and not png.rotated
    np.testing.assert_array_equal(png.pixels, rgb)
    jpeg = decode_image(encode(rgb, "JPEG", quality=95), LIMIT)
    assert jpeg.format == "JPEG" and jpeg.pixels.shape == (30, 40, 3) and jpeg.pixels.dtype == np.uint8


@pytest.mark.parametrize(
    "mode, make, expected",
    [
        ("L", lambda: np.full((8, 6), 77, np.uint8), 77),
        ("LA", lambda: np.dstack([np.full((8, 6), 90, np.uint8), np.full((8, 6), 10, np.uint8)]), 90),
        ("RGBA", lambda: np.dstack([np.full((8, 6, 3), 200, np.uint8), np.zeros((8, 6), np.uint8)]), 200),
        ("I;16", lambda: np.full((8, 6), 0x8A00, np.uint16), 0x8A),
    ],
)
def test_grayscale_alpha_and_16_bit_images_become_rgb_uint8(mode, make, expected):
    data = encode(make())
    decoded = decode_image(data, LIMIT)
    assert decoded.mode.startswith(mode.split(";")[0])
    assert decoded.pixels.shape == (8, 6, 3) and decoded.pixels.dtype == np.uint8
    assert np.all(decoded.pixels == expected)


def test_palette_cmyk_and_bilevel_images_become_rgb():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:, 5:] = (255, 0, 0)
    palette = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(palette, format="PNG")
    decoded = decode_image(palette.getvalue(), LIMIT)
    assert decoded.mode == "P" and tuple(decoded.pixels[0, 9]) == (255, 0, 0)

    cmyk = io.BytesIO()
    Image.new("CMYK", (12, 10), (0, 255, 255, 0)).save(cmyk, format="JPEG", quality=95)
    decoded = decode_image(cmyk.getvalue(), LIMIT)
    assert decoded.mode == "CMYK" and decoded.pixels.shape == (10, 12, 3)
    assert decoded.pixels[5, 5, 0] > 200 and decoded.pixels[5, 5, 1] < 60  # red

    bilevel = io.BytesIO()
    Image.new("1", (7, 5), 1).save(bilevel, format="PNG")
    assert np.all(decode_image(bilevel.getvalue(), LIMIT).pixels == 255)


def test_gif_webp_bmp_and_tiff_are_read_from_their_bytes():
    rgb = np.full((6, 9, 3), 128, np.uint8)
    for fmt in ("GIF", "WEBP", "BMP", "TIFF"):
        decoded = decode_image(encode(rgb, fmt), LIMIT)
        assert decoded.format == fmt and decoded.pixels.shape == (6, 9, 3)


def test_exif_orientation_is_applied():
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the stored left column becomes the top row
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data, LIMIT)
    assert decoded.rotated
    assert decoded.pixels.shape == (40, 20, 3)
    assert decoded.pixels[:15, :, 0].mean() > 200 and decoded.pixels[:15, :, 2].mean() < 60
    assert decoded.pixels[-15:, :, 2].mean() > 200 and decoded.pixels[-15:, :, 0].mean() < 60


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is text",
        b"%PDF-1.4\n1 0 obj << >> endobj\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        b"\x00" * 64,
    ],
)
def test_bytes_that_are_no_image_are_415(data):
    assert status_of(data) == 415


def test_the_pixel_limit_is_checked_before_decoding():
    # 4000 x 3000 = 12 M pixels over a 10 M limit: refused from the header (its data would not decode).
    with pytest.raises(ImageInputError) as caught:
        decode_image(png_declaring(4000, 3000), LIMIT)
    assert caught.value.status == 413
    assert "4000x3000" in caught.value.message and str(LIMIT) in caught.value.message
    # A header past Pillow's own bomb limit (2 x Image.MAX_IMAGE_PIXELS) is 413 too, not a 500.
    assert status_of(png_declaring(100_000, 100_000)) == 413
    # Under the limit, the same broken data is decoded, and fails as an undecodable image.
    assert status_of(png_declaring(300, 200)) == 400
    # A real image over a small limit.
    assert status_of(encode(np.zeros((60, 80, 3), np.uint8)), max_pixels=1000) == 413


def test_empty_and_truncated_images_are_400():
    assert status_of(b"") == 400
    jpeg = encode(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")
    assert status_of(jpeg[: len(jpeg) // 2]) == 400
    png = encode(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert status_of(png[: len(png) // 2]) == 400
