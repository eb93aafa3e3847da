"""The service's JSON documents as pydantic models, so that the generated OpenAPI page (``/docs``) shows them.

Coordinates are pixels of the uploaded image after its EXIF orientation is applied: ``x`` to the right, ``y``
down; a box's ``x2`` / ``y2`` are exclusive (the box of a one-pixel mask at (x, y) is ``x..x+1``); polygon
vertices are continuous coordinates in which pixel ``(x, y)`` covers ``[x, x+1] x [y, y+1]``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "AttributeScore",
    "Box",
    "ClassDescription",
    "ErrorResponse",
    "Garment",
    "HealthResponse",
    "ImageDescription",
    "ImageSettings",
    "ModelDescription",
    "ModelReference",
    "ParseResponse",
    "RLEMask",
    "Timing",
]


class Box(BaseModel):
    """A box in pixels; x2 and y2 are exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int


class RLEMask(BaseModel):
    """A mask as COCO run-length encoding (``pycocotools.mask.decode`` reads it): column-major runs that
    alternate background and mask, compressed into a string."""

    size: list[int] = Field(description="[height, width] of the image")
    counts: str


class AttributeScore(BaseModel):
    id: int = Field(description="attribute index in the model's attribute list (GET /v1/model)")
    name: str
    score: float


class Garment(BaseModel):
    class_id: int = Field(description="the model's class id (GET /v1/model lists them)")
    class_name: str
    score: float = Field(description="confidence in [0, 1]")
    box: Box
    area: int = Field(description="mask pixels")
    mask: RLEMask
    polygons: list[list[float]] | None = Field(
        None,
        description="with ?polygons=true: the mask's outlines as COCO polygons [x1, y1, x2, y2, ...] "
        "(continuous pixel coordinates, simplified to within 1 pixel)",
    )
    attributes: list[AttributeScore] | None = Field(
        None,
        description="attributes scoring at least ?attribute_threshold, by decreasing score; only for models "
        "with an attribute head",
    )


class ImageDescription(BaseModel):
    width: int
    height: int
    format: str = Field(description="the format read from the bytes (JPEG, PNG, ...)")
    mode: str = Field(
        description="Pillow's pixel mode as stored (RGB, L, I;16, RGBA, ...), before conversion"
    )
    exif_rotated: bool = Field(description="whether the EXIF orientation turned or flipped the stored pixels")


class ModelReference(BaseModel):
    name: str = Field(description="the checkpoint's file name")
    precision: str


class Timing(BaseModel):
    """Milliseconds spent on this request."""

    decode_ms: float
    queue_ms: float = Field(description="waiting for the model (other batches, the batching window)")
    inference_ms: float = Field(description="the detect() call this image was part of")
    postprocess_ms: float = Field(description="filters, RLE and polygons")
    total_ms: float


class ParseResponse(BaseModel):
    image: ImageDescription
    model: ModelReference
    timing: Timing
    batch_size: int = Field(description="images in the detect() call that ran this one")
    garments: list[Garment] = Field(description="by decreasing score")


class ClassDescription(BaseModel):
    id: int
    name: str
    source_id: int = Field(description="the dataset's own category id (0 where unknown)")


class ImageSettings(BaseModel):
    resize_mode: str
    min_dim: int
    max_dim: int


class ModelDescription(BaseModel):
    name: str = Field(description="the checkpoint's file name")
    preset: str | None
    backbone: str
    classes: list[ClassDescription] = Field(description="class ids 1..K (0 is the background)")
    attributes: list[str] = Field(description="attribute names by index; empty without an attribute head")
    image: ImageSettings
    precision: str
    package_version: str
    max_batch: int = Field(description="the most images run in one detect() call")


class HealthResponse(BaseModel):
    status: str
    message: str | None = None


class ErrorResponse(BaseModel):
    """Every error: its HTTP status, the status's name and a message saying what to change."""

    status: int
    error: str
    message: str
