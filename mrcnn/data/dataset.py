"""The ``Dataset`` base class with Matterport's API.

Subclass it, register classes with :meth:`Dataset.add_class` and images with :meth:`Dataset.add_image`,
override :meth:`Dataset.load_mask` (and :meth:`Dataset.load_image` when images do not live in files), then
call :meth:`Dataset.prepare` before use::

    class BalloonDataset(Dataset):
        def load_balloons(self, folder):
            self.add_class("balloon", 1, "balloon")
            for path in sorted(folder.glob("*.jpg")):
                self.add_image("balloon", image_id=path.name, path=str(path))

        def load_mask(self, image_id):
            ...  # -> mask [H, W, N] bool, class_ids [N] int32

Classes and images are identified internally by consecutive integer ids; ``"source.id"`` strings map the ids
of each source dataset (e.g. ``"coco.18"``) to the internal class and image ids.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class ImageLoadError(OSError):
    """An image file is missing, unreadable or not an image. The message names the file and the image id."""


class MissingImageError(ImageLoadError, FileNotFoundError):
    """The image file does not exist."""


def _clean_name(name: str) -> str:
    """Keeps the first comma-separated part of a class name ("person, human" -> "person")."""
    return ",".join(name.split(",")[:1])


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Converts a decoded image to RGB uint8: the one conversion every loader and command uses.

    image: [H, W], [H, W, 1], [H, W, 2] (gray + alpha), [H, W, 3] or [H, W, 4] (RGBA) of uint8, 16-bit
    integers (scaled down by 256, keeping the whole range: 65535 -> 255), float (range [0, 1]) or bool; a
    [frames, H, W, C] stack keeps its first frame. Other integer types are read as 16-bit when a value
    exceeds 255 (Pillow gives some 16-bit PNGs as int32), else as 8-bit.
    Returns [H, W, 3] uint8.
    """
    image = np.asarray(image)
    if image.ndim == 4:
        image = image[0]
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {image.shape}")
    channels = image.shape[-1]
    if channels in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    elif channels != 3:
        raise ValueError(f"expected 1, 2, 3 or 4 channels, got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # uint16, either byte order
        return (image.astype(np.uint16) >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.size and image.max() > 255:  # e.g. 16-bit PNGs decoded as int32
        return (np.clip(image, 0, 65535) >> 8).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def pil_to_array(img: Any) -> np.ndarray:
    """The pixels of an opened Pillow image as an array for :func:`to_rgb_uint8`, at the file's bit depth:
    palette images as RGB(A), bilevel/CMYK/YCbCr/LAB/HSV as RGB, 16-bit grayscale ("I;16*") as uint16 (never
    through Pillow's ``convert``, which clips 16-bit values to 255 and turns the image white)."""
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    elif img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        array = array.astype(np.uint16)
    return array


def read_image_file(path: str) -> np.ndarray:
    """Decodes an image file (or URL) with Pillow, falling back to scikit-image for formats Pillow does not
    know. Returns the raw array ([H, W] or [H, W, C], file dtype, see :func:`pil_to_array`); convert it with
    :func:`to_rgb_uint8`."""
    from PIL import Image, UnidentifiedImageError

    if "://" not in str(path):
        try:
            with Image.open(path) as img:
                return pil_to_array(img)
        except UnidentifiedImageError:
            pass
    import skimage.io  # deferred: slow to import, needed only for exotic formats and URLs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # imageio's legacy plugins warn when probed
        return skimage.io.imread(path)


class InvalidImageError(ValueError):
    """An image given to ``detect()`` cannot be used; the message names its index and what is wrong."""


def check_image_for_detection(image: Any, index: int = 0) -> np.ndarray:
    """The image at position ``index`` of a ``detect()`` call as [H, W, 3] uint8 RGB, or an error saying why not.

    Used as is: [H, W, 3] uint8. Converted, with a warning saying so (``warnings.warn``): grayscale [H, W]
    or [H, W, 1] (repeated to 3 channels), [H, W, 2] gray + alpha and [H, W, 4] RGBA (alpha dropped),
    bool (True -> 255), 16-bit integers (scaled by 1/256), other integers within [0, 255], floats within
    [0, 255] (rounded), and floats within [0, 1] (times 255: scikit-image's convention for float images, what
    ``skimage.img_as_float`` gives; such an image read as 0-255 would be black). Refused
    (:class:`InvalidImageError`): None, non-numeric arrays, an empty image (a side of 0 pixels), other shapes,
    NaN or infinite values, negative values, floats above 255, integers above 65535.
    """
    where = f"image {index} given to detect()"
    if image is None:
        raise InvalidImageError(f"{where} is None (an image file that failed to load?)")
    array = np.asarray(image)
    if array.dtype == object or not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise InvalidImageError(f"{where} is not an array of numbers (dtype {array.dtype})")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise InvalidImageError(
            f"{where} has shape {array.shape}; expected [H, W, 3] RGB (or [H, W] gray, [H, W, 4] RGBA)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidImageError(f"{where} is empty (shape {array.shape})")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return array
    done = []
    if array.ndim == 2 or array.shape[2] == 1:
        done.append(f"grayscale {array.shape} repeated to 3 channels")
    elif array.shape[2] == 2:
        done.append(f"gray + alpha {array.shape}: alpha dropped, gray repeated to 3 channels")
    elif array.shape[2] == 4:
        done.append(f"RGBA {array.shape}: alpha channel dropped")
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[:, :, : array.shape[2] - 1]
    if array.dtype == bool:
        done.append("bool read as 0/255")
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.complexfloating):
            raise InvalidImageError(f"{where} has complex values (dtype {array.dtype})")
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InvalidImageError(f"{where} holds NaN or infinite values (dtype {array.dtype})")
        if low < 0:
            raise InvalidImageError(
                f"{where} has negative values (min {low:g}, dtype {array.dtype}); give 0-255"
            )
        if np.issubdtype(array.dtype, np.floating):
            if high > 255:
                raise InvalidImageError(
                    f"{where} has float values above 255 (max {high:g}); give 0-255 or 0-1"
                )
            if high <= 1.0:
                array = array * 255.0
                done.append(f"float image in [0, 1] scaled to 0-255 ({array.dtype} -> uint8)")
            else:
                done.append(f"float image in [0, 255] rounded to uint8 ({array.dtype})")
            array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        elif high > 65535:
            raise InvalidImageError(f"{where} has values above 65535 (max {high:g}, dtype {array.dtype})")
        elif array.dtype == np.uint16 or high > 255:
            done.append(f"16-bit image ({array.dtype}) scaled to 8 bits")
            array = (array.astype(np.uint16) >> 8).astype(np.uint8)
        else:
            done.append(f"{array.dtype} values 0-255 read as uint8")
            array = array.astype(np.uint8)
    rgb = to_rgb_uint8(array)
    warnings.warn(f"{where}: {'; '.join(done)}", stacklevel=3)
    return rgb


class Dataset:
    """Base class for datasets: a registry of classes and images plus image/mask loading.

    After :meth:`prepare`:
        num_classes: number of classes including background (class id 0, "BG").
        class_ids: [num_classes] int, 0..num_classes-1.
        class_names: list of class names, index = class id.
        num_images, image_ids: [num_images] int, 0..num_images-1.
        sources: sorted list of the source names that have classes.
        source_class_ids: {source: [class ids of that source, always including 0]}.
        class_from_source_map / image_from_source_map: {"source.source_id": internal id}.
    """

    def __init__(self, class_map: Any = None) -> None:
        self._image_ids: np.ndarray = np.zeros([0], dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}
        self.class_from_source_map: dict[str, int] = {}
        self.image_from_source_map: dict[str, int] = {}
        self.class_names: list[str] = []
        self.sources: list[str] = []
        self.num_classes = 0
        self.num_images = 0
        self.class_ids: np.ndarray = np.zeros([0], dtype=np.int64)

    # ----------------------------------------------------------------- registration
    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Registers class ``class_id`` of ``source``; registering the same (source, id) twice is a no-op."""
        if "." in source:
            raise ValueError(f"source names cannot contain a dot: {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id: Any, path: str | None, **kwargs: Any) -> None:
        """Registers an image. ``image_id`` is the id in the source; extra kwargs are kept in image_info."""
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id: int) -> str:
        """A string (e.g. URL or path) that identifies the image for debugging; override in subclasses."""
        return ""

    def prepare(self, class_map: Any = None) -> None:
        """Builds the id maps and the derived attributes. Call after adding classes and images.

        class_map is accepted for Matterport compatibility and ignored (as in Matterport).
        """
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [_clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": class_id
            for info, class_id in zip(self.class_info, self.class_ids.tolist())
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": image_id
            for info, image_id in zip(self.image_info, self._image_ids.tolist())
        }
        # Sorted (Matterport leaves set order) so that runs are reproducible.
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source]
            for source in self.sources
        }

    # ----------------------------------------------------------------- id mapping
    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of a ``"source.class_id"`` string, e.g. ``"coco.12"`` -> 23."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id: int, source: str) -> Any:
        """The source's own id of internal class ``class_id``; the class must belong to ``source``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"class {class_id} belongs to source {info['source']!r}, not {source!r}")
        return info["id"]

    @property
    def image_ids(self) -> np.ndarray:
        """[num_images] int: the internal image ids."""
        return self._image_ids

    def source_image_link(self, image_id: int) -> str | None:
        """Path or URL of the image file."""
        return self.image_info[image_id]["path"]

    # ----------------------------------------------------------------- loading
    def load_image(self, image_id: int) -> np.ndarray:
        """Loads image ``image_id`` from its file.

        Returns [H, W, 3] uint8 RGB: grayscale is repeated to 3 channels, an alpha channel is dropped.
        Raises MissingImageError / ImageLoadError naming the file and the image id when the file is missing
        or cannot be decoded.
        """
        path = self.image_info[image_id]["path"]
        where = f"image file {path!r} (image id {image_id}, source id {self.image_info[image_id]['id']!r})"
        if path is None:
            raise ImageLoadError(f"no path for {where}; override load_image() for in-memory datasets")
        if "://" not in str(path) and not os.path.exists(path):
            raise MissingImageError(f"missing {where}")
        try:
            image = read_image_file(path)
        except Exception as e:
            raise ImageLoadError(f"cannot read {where}: {type(e).__name__}: {e}") from e
        try:
            return to_rgb_uint8(image)
        except ValueError as e:
            raise ImageLoadError(f"unusable {where}: {e}") from e

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks of an image; override in subclasses.

        Returns mask [H, W, N] bool (one channel per instance) and class_ids [N] int32 (internal class ids).
        This base version warns and returns no instances, as Matterport's does.
        """
        logger.warning("You are using the default load_mask(), maybe you need to define your own one.")
        return np.empty([0, 0, 0], dtype=bool), np.empty([0], dtype=np.int32)

    # ----------------------------------------------------------------- per-instance attributes
    @property
    def num_attributes(self) -> int:
        """A, the attributes each instance is labelled with (a model trains them with NUM_ATTRIBUTES = A); 0 for
        a dataset without attributes. Datasets with attributes override this, :attr:`model_attribute_names` and
        :meth:`load_attribute_targets`."""
        return 0

    @property
    def model_attribute_names(self) -> list[str]:
        """[A] attribute names by attribute index (what a checkpoint records)."""
        return []

    def load_attribute_targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Attributes of :meth:`load_mask`'s instances, in the same order: multi-hot ``[N, A]`` float32 and
        loss weights ``[N, A]`` float32 (1 where the instance is labelled for the attribute, 0 where it is not:
        such entries are neither trained nor scored). This base version has no attributes."""
        raise NotImplementedError(
            f"{type(self).__name__} has no per-instance attributes (num_attributes is 0); a model with "
            "NUM_ATTRIBUTES > 0 needs a dataset that implements load_attribute_targets(image_id)"
        )

    def load_mask_and_attribute_targets(
        self, image_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(mask [H, W, N] bool, class_ids [N] int32, attributes [N, A] float32, weights [N, A] float32):
        :meth:`load_mask` and :meth:`load_attribute_targets` together. Override it where both come from one
        decoding of the annotations."""
        mask, class_ids = self.load_mask(image_id)
        attributes, weights = self.load_attribute_targets(image_id)
        return mask, class_ids, attributes, weights
