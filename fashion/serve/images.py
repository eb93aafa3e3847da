"""Uploaded bytes -> an RGB image the model can read, refusing what is not an image or too big to decode.

Nothing here trusts the client: the format comes from the bytes themselves (Pillow's content sniffing, limited
to :data:`ACCEPTED_FORMATS`), never from a file name or a Content-Type header; the pixel count is checked from
the image header *before* the pixels are decoded (a 50 kB PNG can declare 100 000 x 100 000 pixels: a
decompression bomb); the EXIF orientation is applied, so a phone photo comes out upright as it is shown; and
grayscale, palette, RGBA, CMYK and 16-bit images are converted to ``[H, W, 3]`` uint8 by the one converter the
datasets use (:func:`mrcnn.data.dataset.to_rgb_uint8`).

Each refusal is an :class:`ImageInputError` carrying the HTTP status it maps to (415 not an image, 413 too
many pixels, 400 an image that does not decode).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from mrcnn.data.dataset import to_rgb_uint8

__all__ = [
    "ACCEPTED_FORMATS",
    "DecodedImage",
    "ImageInputError",
    "decode_image",
]

# Pillow's format names of the photos a user may send (GIF and TIFF: their first frame).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG covers MPO (camera JPEGs)
# Pillow modes that to_rgb_uint8 cannot take as arrays: converted to RGB by Pillow first.
_CONVERT_TO_RGB = ("1", "CMYK", "YCbCr", "LAB", "HSV")


class ImageInputError(ValueError):
    """An upload that cannot be used as an image; ``status``: the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded: ``pixels`` [H, W, 3] uint8 RGB, upright (EXIF orientation applied).

    format: the sniffed format ("JPEG", "PNG", ...). mode: Pillow's mode of the stored pixels ("RGB", "L",
    "I;16", ...). rotated: whether an EXIF orientation turned or flipped the stored pixels.
    """

    pixels: np.ndarray
    format: str
    mode: str
    rotated: bool

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode an uploaded image.

    Args:
        data: the raw bytes of the upload.
        max_pixels: the largest width x height accepted, checked from the header before decoding.

    Returns:
        A :class:`DecodedImage`.

    Raises:
        ImageInputError: 400 for an empty body or pixels that do not decode (truncated, corrupt), 415 for bytes
        that are not an image of :data:`ACCEPTED_FORMATS`, 413 for more than ``max_pixels`` pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.init()  # register every format plugin (Pillow loads only a few until asked); cheap after once
    if not data:
        raise ImageInputError(
            400, "the request has no image: send the image file as the body or as a form file"
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its own limit raises) about big images; our limit is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise ImageInputError(
            415, f"the upload is not an image Pillow can read as {', '.join(ACCEPTED_FORMATS)}"
        ) from None
    except Image.DecompressionBombError as e:
        raise ImageInputError(413, f"the image has too many pixels ({e})") from None
    except Exception as e:  # a header Pillow recognises but cannot parse
        raise ImageInputError(400, f"the image header cannot be read: {type(e).__name__}: {e}") from None

    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageInputError(400, f"the image is {width}x{height} pixels: nothing to parse")
        if width * height > max_pixels:
            raise ImageInputError(
                413,
                f"the image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels} "
                "(scale it down, or start the service with a larger --max-pixels)",
            )
        fmt, mode = str(image.format), str(image.mode)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                orientation = image.getexif().get(0x0112, 1)
                upright = ImageOps.exif_transpose(image)
                if upright.mode in ("P", "PA"):
                    has_alpha = upright.mode == "PA" or "transparency" in upright.info
                    upright = upright.convert("RGBA" if has_alpha else "RGB")
                elif upright.mode in _CONVERT_TO_RGB:
                    upright = upright.convert("RGB")
                array = np.asarray(upright)
        except Exception as e:  # truncated or corrupt pixel data raise several types
            raise ImageInputError(400, f"the {fmt} image does not decode: {type(e).__name__}: {e}") from None
    try:
        pixels = to_rgb_uint8(array)
    except ValueError as e:
        raise ImageInputError(415, f"the {fmt} image ({mode}) has no usable pixels: {e}") from None
    return DecodedImage(pixels=pixels, format=fmt, mode=mode, rotated=orientation not in (1, None))
