"""The model a service runs: what it is (:class:`ModelInfo`, from the checkpoint's metadata) and a
``detect(images)`` that batches when it can (:class:`ServedModel`).

``MaskRCNN.detect`` runs its images in chunks of the config's BATCH_SIZE, and every image of a chunk must be
molded to the same size. In the "square" resize mode every image is, so the service builds the inference model
with IMAGES_PER_GPU = the largest batch and hands ``detect`` a whole batch; in the other modes it runs one
image per call. The graph's batch dimension varies with the batch: the warm-up runs a batch of one and a batch
of two, after which ``tf.function`` (``reduce_retracing``) holds one trace with an unknown batch size that
serves every later size without tracing again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ModelInfo", "ServedModel", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /v1/model`` says and the responses name.

    name: the checkpoint's file name. class_names: full names by class id ("BG" first). source_ids: the
    dataset's category id per class (0 where unknown). attribute_names: by attribute index, or None for a model
    without attributes. resize_mode, min_dim, max_dim: the config's IMAGE_RESIZE_MODE / _MIN_DIM / _MAX_DIM.
    precision: "float32", "bfloat16" or "float16". preset: the training recipe, when recorded.
    max_batch: the most images per ``detect()`` call.
    """

    name: str
    class_names: list[str]
    source_ids: list[int]
    backbone: str
    resize_mode: str
    min_dim: int
    max_dim: int
    precision: str
    package_version: str
    attribute_names: list[str] | None = None
    preset: str | None = None
    max_batch: int = 1

    @property
    def short_names(self) -> list[str]:
        """Class names cut at their first comma ("shirt, blouse" -> "shirt"), as the overlays print them."""
        return [str(n).split(",")[0] for n in self.class_names]


def model_info(choice: Any, config: Any, precision: str, max_batch: int) -> ModelInfo:
    """The :class:`ModelInfo` of a :class:`fashion.cli_common.ModelChoice` built with ``config``."""
    import os

    from mrcnn import __version__

    meta = choice.metadata
    backbone = config.BACKBONE
    if callable(backbone):
        backbone = getattr(backbone, "__qualname__", repr(backbone))
    return ModelInfo(
        name=os.path.basename(choice.weights),
        class_names=list(choice.class_names),
        source_ids=[int(i) for i in choice.source_ids],
        backbone=str(backbone),
        resize_mode=str(config.IMAGE_RESIZE_MODE),
        min_dim=int(config.IMAGE_MIN_DIM or 0),
        max_dim=int(config.IMAGE_MAX_DIM or 0),
        precision=precision,
        package_version=__version__,
        attribute_names=list(meta.attribute_names) if meta is not None and meta.attribute_names else None,
        preset=choice.preset,
        max_batch=int(max_batch),
    )


class ServedModel:
    """``detect(images)`` of a ``MaskRCNN`` in inference mode, batched in the square resize mode.

    model: the MaskRCNN (its config's BATCH_SIZE should be the service's largest batch).
    """

    def __init__(self, model: Any):
        self.model = model
        config = model.config
        self.batches = str(config.IMAGE_RESIZE_MODE) == "square" and int(config.BATCH_SIZE) > 1

    def detect(self, images: Sequence[np.ndarray]) -> list[dict]:
        """One detections dict per image (``MaskRCNN.detect``'s), in order."""
        if self.batches:
            return self.model.detect(list(images))
        return [self.model.detect([image])[0] for image in images]

    def warm_up(self) -> None:
        """Detect on blank images: a batch of one, then (when batching) of two, so that the graph is traced
        for any batch size before the first request."""
        config = self.model.config
        side = int(config.IMAGE_MAX_DIM or config.IMAGE_MIN_DIM or 256)
        blank = np.full((side, side, 3), 127, np.uint8)
        self.detect([blank])
        if self.batches:
            self.detect([blank, blank])
