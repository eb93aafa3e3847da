"""A synthetic "shapes" dataset for tests, benchmarks and smoke training.

Each image is a flat random background with a few coloured squares, circles and triangles. Everything is
drawn on the fly from a per-image spec that is fully determined by ``(seed, image index)``, so two datasets
built with the same arguments are identical, and no files are involved::

    dataset = ShapesDataset.build(count=50, height=128, width=128, seed=0)
    image = dataset.load_image(0)            # [128, 128, 3] uint8
    mask, class_ids = dataset.load_mask(0)   # [128, 128, N] bool, [N] int32 in {1, 2, 3}

:class:`AttributeShapesDataset` adds per-instance attributes that can be seen in the image (for models with an
attribute head, ``NUM_ATTRIBUTES = 3``): "reddish", "large" and "greenish", the last not annotated on
triangles (loss weight 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrcnn.data.dataset import Dataset

SHAPE_CLASSES = ("square", "circle", "triangle")


def _box_iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of box a [4] with boxes [N, 4], all (y1, x1, y2, x2) floats."""
    y1 = np.maximum(a[0], boxes[:, 0])
    x1 = np.maximum(a[1], boxes[:, 1])
    y2 = np.minimum(a[2], boxes[:, 2])
    x2 = np.minimum(a[3], boxes[:, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area_a + areas - inter)


def shape_crop(
    shape: str, center: tuple[float, float], size: float, height: int, width: int
) -> tuple[int, int, np.ndarray]:
    """Rasterises one shape within its bounding box (clipped to the image).

    shape: "square" (half-side ``size``), "circle" (radius ``size``) or "triangle" (pointing up, half-height
    ``size``, 60-degree base angles), centred at ``center`` (y, x) in pixels; a pixel is inside when its
    centre is. Returns (y0, x0, inside) with inside [h, w] bool covering rows y0..y0+h and columns x0..x0+w.
    """
    if shape not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape {shape!r}")
    cy, cx = center
    half_base = size / np.sin(np.deg2rad(60))
    half_w = half_base if shape == "triangle" else size
    y0, y1 = max(0, int(np.floor(cy - size)) - 1), min(height, int(np.ceil(cy + size)) + 1)
    x0, x1 = max(0, int(np.floor(cx - half_w)) - 1), min(width, int(np.ceil(cx + half_w)) + 1)
    yy, xx = np.ogrid[y0 : max(y0, y1), x0 : max(x0, x1)]
    if shape == "square":
        inside = (np.abs(yy + 0.5 - cy) <= size) & (np.abs(xx + 0.5 - cx) <= size)
    elif shape == "circle":
        inside = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= size**2
    else:
        # Apex at (cy - size, cx); base at row cy + size from cx - half_base to cx + half_base.
        dy = (yy + 0.5) - (cy - size)
        inside = (dy >= 0) & (dy <= 2 * size) & (np.abs(xx + 0.5 - cx) <= dy * half_base / (2 * size))
    return y0, x0, inside


def draw_shape_mask(
    shape: str, center: tuple[float, float], size: float, height: int, width: int
) -> np.ndarray:
    """The full-image mask of one shape (see :func:`shape_crop`): [height, width] bool."""
    mask = np.zeros([height, width], dtype=bool)
    y0, x0, inside = shape_crop(shape, center, size, height, width)
    mask[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]] = inside
    return mask


class ShapesDataset(Dataset):
    """Synthetic images of squares (class 1), circles (2) and triangles (3) on a random background."""

    def load_shapes(
        self,
        count: int,
        height: int,
        width: int,
        seed: int = 0,
        min_shapes: int = 1,
        max_shapes: int = 4,
        empty_fraction: float = 0.0,
    ) -> None:
        """Adds ``count`` images of ``height`` x ``width`` pixels.

        Each image has between min_shapes and max_shapes shapes (boxes overlap by IoU <= 0.3); a fraction
        ``empty_fraction`` of the images have no shapes at all (to exercise "no instances" paths).
        """
        for i, name in enumerate(SHAPE_CLASSES, start=1):
            self.add_class("shapes", i, name)
        for i in range(count):
            rng = np.random.default_rng([seed, i])
            spec = self._random_image_spec(rng, height, width, min_shapes, max_shapes, empty_fraction)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height, **spec)

    @classmethod
    def build(cls, count: int, height: int, width: int, seed: int = 0, **kwargs: Any) -> ShapesDataset:
        """Makes, loads (see :meth:`load_shapes`) and prepares a dataset."""
        dataset = cls()
        dataset.load_shapes(count, height, width, seed=seed, **kwargs)
        dataset.prepare()
        return dataset

    @staticmethod
    def _random_image_spec(
        rng: np.random.Generator,
        height: int,
        width: int,
        min_shapes: int,
        max_shapes: int,
        empty_fraction: float,
    ) -> dict[str, Any]:
        bg_color = rng.integers(0, 256, size=3)
        shapes: list[tuple[str, tuple[int, int, int], tuple[float, float], float]] = []
        if rng.random() >= empty_fraction:
            wanted = int(rng.integers(min_shapes, max_shapes + 1))
            boxes = np.zeros([0, 4])
            dim = min(height, width)
            min_size, max_size = max(3.0, dim / 16), max(4.0, dim / 6)
            for _ in range(20 * wanted):
                if len(shapes) == wanted:
                    break
                kind = SHAPE_CLASSES[int(rng.integers(0, 3))]
                size = float(rng.uniform(min_size, max_size))
                cy = float(rng.uniform(size + 1, height - size - 1))
                cx = float(rng.uniform(size + 1, width - size - 1))
                half_w = size / np.sin(np.deg2rad(60)) if kind == "triangle" else size
                box = np.array([cy - size, cx - half_w, cy + size, cx + half_w])
                if boxes.shape[0] and _box_iou(box, boxes).max() > 0.3:
                    continue
                # A colour far from the background, so every shape is visible.
                while True:
                    color = rng.integers(0, 256, size=3)
                    if np.abs(color - bg_color).sum() >= 150:
                        break
                shapes.append((kind, tuple(int(c) for c in color), (cy, cx), size))
                boxes = np.concatenate([boxes, box[np.newaxis]])
        return {"bg_color": tuple(int(c) for c in bg_color), "shapes": shapes}

    def _crops(self, image_id: int) -> list[tuple[int, int, np.ndarray]]:
        info = self.image_info[image_id]
        return [
            shape_crop(kind, center, size, info["height"], info["width"])
            for kind, _, center, size in info["shapes"]
        ]

    def load_image(self, image_id: int) -> np.ndarray:
        """Draws the image: [H, W, 3] uint8; later shapes are drawn over earlier ones."""
        info = self.image_info[image_id]
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:] = np.array(info["bg_color"], dtype=np.uint8)
        for (y0, x0, inside), (_, color, _, _) in zip(self._crops(image_id), info["shapes"]):
            region = image[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]]
            region[inside] = np.array(color, dtype=np.uint8)
        return image

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Visible part of each shape: mask [H, W, N] bool, class_ids [N] int32. Shapes hidden entirely by
        later shapes are left out."""
        info = self.image_info[image_id]
        crops = self._crops(image_id)
        masks = np.zeros([info["height"], info["width"], len(crops)], dtype=bool)
        # Occlusion: a pixel belongs to the last shape drawn over it.
        covered_later = np.zeros(masks.shape[:2], dtype=bool)
        keep = np.zeros([len(crops)], dtype=bool)  # see also AttributeShapesDataset._visible
        for i in range(len(crops) - 1, -1, -1):
            y0, x0, inside = crops[i]
            window = (slice(y0, y0 + inside.shape[0]), slice(x0, x0 + inside.shape[1]))
            visible = inside & ~covered_later[window]
            masks[window + (i,)] = visible
            covered_later[window] |= visible
            keep[i] = visible.any()
        class_ids = np.array([SHAPE_CLASSES.index(s[0]) + 1 for s in info["shapes"]], dtype=np.int32)
        return masks[:, :, keep], class_ids[keep]

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"shapes image {image_id}: " + ", ".join(s[0] for s in info["shapes"])


class AttributeShapesDataset(ShapesDataset):
    """:class:`ShapesDataset` whose shapes carry three attributes read off how they are drawn:

    * "reddish": the shape's red channel is at least 128;
    * "large": its size (half height) is above the middle of the size range of the image;
    * "greenish": its green channel is at least 128; not annotated on triangles (weight 0 there), to
      exercise attributes a dataset leaves out for a class.
    """

    ATTRIBUTES = ("reddish", "large", "greenish")

    @property
    def num_attributes(self) -> int:
        return len(self.ATTRIBUTES)

    @property
    def model_attribute_names(self) -> list[str]:
        return list(self.ATTRIBUTES)

    def _visible(self, image_id: int) -> np.ndarray:
        """[S] bool: which of the image's shapes :meth:`load_mask` keeps (not hidden by later shapes)."""
        info = self.image_info[image_id]
        covered = np.zeros([info["height"], info["width"]], dtype=bool)
        crops = self._crops(image_id)
        keep = np.zeros([len(crops)], dtype=bool)
        for i in range(len(crops) - 1, -1, -1):
            y0, x0, inside = crops[i]
            window = (slice(y0, y0 + inside.shape[0]), slice(x0, x0 + inside.shape[1]))
            visible = inside & ~covered[window]
            covered[window] |= visible
            keep[i] = visible.any()
        return keep

    def load_attribute_targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Multi-hot [N, 3] float32 and weights [N, 3] float32 of :meth:`load_mask`'s instances."""
        info = self.image_info[image_id]
        dim = min(info["height"], info["width"])
        middle = (max(3.0, dim / 16) + max(4.0, dim / 6)) / 2
        rows, weights = [], []
        for kind, color, _, size in info["shapes"]:
            rows.append([color[0] >= 128, size > middle, color[1] >= 128])
            weights.append([1, 1, 0 if kind == "triangle" else 1])
        keep = self._visible(image_id)
        shape = (-1, len(self.ATTRIBUTES))
        attributes = np.asarray(rows, dtype=np.float32).reshape(shape)[keep]
        return attributes, np.asarray(weights, dtype=np.float32).reshape(shape)[keep]
