"""What a checkpoint says about itself: class names, architecture, image settings, the run that wrote it.

Every ``.h5`` this package writes carries, as HDF5 attributes of the file's root, beside Keras-2's own
``layer_names`` / ``backend`` / ``keras_version`` (so Matterport's loader and other Keras-2 readers still read the
weights and ignore the rest):

============================ ================================================================================
attribute                    value
============================ ================================================================================
``mrcnn_metadata_version``   1 (its presence marks a file written by this package)
``class_names``              class names by class id, ``class_names[0]`` the background ("BG")
``class_source_ids``         the dataset's own category id of each class (0 for the background), when known
``num_classes``              NUM_CLASSES (background included)
``backbone``                 BACKBONE ("resnet101", ...; the function's name for a callable backbone)
``image_resize_mode``,       IMAGE_RESIZE_MODE, IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE
``image_min_dim``, ...
``attribute_names``          attribute names by attribute index (models with an attribute head)
``attribute_source_ids``     the dataset's own id of each attribute, when known
``preset``, ``dataset_format`` the recipe and data format of the run, when it had them (the fashion tools do)
``epoch``                    the training epoch the weights are from (1-based), when written by training
``epoch_logs``               that epoch's row of the run's ``history.csv`` (losses, validation losses,
                             learning rate), as JSON, when written by training: a row lost to a kill
                             between the checkpoint and the CSV is recovered from it
``package_version``          this package's version
``config``                   every Config setting, as JSON (``Config.to_dict``)
============================ ================================================================================

Any HDF5 tool reads them (``h5py.File(path).attrs["class_names"]``); :func:`read_metadata` gives them as a
:class:`CheckpointMetadata`, or None for files without them (Matterport's ``mask_rcnn_coco.h5``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

__all__ = ["METADATA_VERSION", "CheckpointMetadata", "read_metadata", "write_metadata"]

METADATA_VERSION = 1
_MARK = "mrcnn_metadata_version"
_NAME_LISTS = ("class_names", "attribute_names")
_JSON_FIELDS = ("config", "epoch_logs")
_ID_LISTS = ("class_source_ids", "attribute_source_ids")


@dataclasses.dataclass
class CheckpointMetadata:
    """The self-description of a checkpoint (see the module docstring for the file layout).

    class_names: [NUM_CLASSES] names by class id, "BG" first; None when the model never learnt them (built
    without a dataset and never given ``model.class_names``). class_source_ids: the dataset's category id per
    class (None when unknown). config: every Config setting (``Config.to_dict()``), None when unknown.
    """

    class_names: list[str] | None
    num_classes: int
    backbone: str
    image_resize_mode: str
    image_min_dim: int
    image_max_dim: int
    image_min_scale: float
    package_version: str
    class_source_ids: list[int] | None = None
    attribute_names: list[str] | None = None
    attribute_source_ids: list[int] | None = None
    preset: str | None = None
    dataset_format: str | None = None
    epoch: int | None = None
    config: dict[str, Any] | None = None
    epoch_logs: dict[str, Any] | None = None

    @classmethod
    def from_config(
        cls,
        config: Any,
        class_names: Sequence[str] | None = None,
        class_source_ids: Sequence[int] | None = None,
        **fields: Any,
    ) -> CheckpointMetadata:
        """Metadata of a model built from ``config``; class names are left out unless there is one per class.

        ``fields``: any other field (preset, dataset_format, attribute_names, attribute_source_ids, epoch,
        epoch_logs).
        """
        from mrcnn import __version__

        num_classes = int(config.NUM_CLASSES)
        if class_names is not None and len(class_names) != num_classes:
            class_names = None
        backbone = config.BACKBONE
        if callable(backbone):
            backbone = getattr(backbone, "__qualname__", repr(backbone))
        return cls(
            class_names=None if class_names is None else [str(n) for n in class_names],
            num_classes=num_classes,
            backbone=str(backbone),
            image_resize_mode=str(config.IMAGE_RESIZE_MODE),
            image_min_dim=int(config.IMAGE_MIN_DIM or 0),
            image_max_dim=int(config.IMAGE_MAX_DIM or 0),
            image_min_scale=float(config.IMAGE_MIN_SCALE or 0),
            package_version=__version__,
            class_source_ids=None if class_source_ids is None else [int(i) for i in class_source_ids],
            config=config.to_dict(),
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_metadata(root: h5py.Group, metadata: CheckpointMetadata) -> None:
    """Write ``metadata`` as attributes of ``root`` (an open file's root group)."""
    from mrcnn.weights import write_name_list

    root.attrs[_MARK] = METADATA_VERSION
    for field in dataclasses.fields(metadata):
        value = getattr(metadata, field.name)
        if value is None:
            continue
        if field.name in _NAME_LISTS:
            write_name_list(root, field.name, list(value))
        elif field.name in _JSON_FIELDS:
            root.attrs[field.name] = json.dumps(value, sort_keys=True)
        elif field.name in _ID_LISTS:
            root.attrs[field.name] = np.asarray(value, dtype=np.int64)
        elif isinstance(value, str):
            root.attrs[field.name] = value
        else:
            root.attrs[field.name] = value


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_metadata(path: str | os.PathLike) -> CheckpointMetadata | None:
    """The metadata of the ``.h5`` at ``path``, or None when it has none (e.g. Matterport's files).

    Raises the errors of :func:`mrcnn.weights.open_weights_file` for a missing or unreadable file.
    """
    from mrcnn.weights import open_weights_file, read_name_list

    with open_weights_file(os.fspath(path)) as f:
        attrs = f.attrs
        if _MARK not in attrs:
            return None
        values: dict[str, Any] = {}
        for field in dataclasses.fields(CheckpointMetadata):
            name = field.name
            if name in _NAME_LISTS:
                values[name] = read_name_list(f, name)
            elif name not in attrs:
                values[name] = None
            elif name in _JSON_FIELDS:
                values[name] = json.loads(_plain(attrs[name]))
            elif name in _ID_LISTS:
                values[name] = [int(v) for v in np.asarray(attrs[name]).ravel()]
            else:
                values[name] = _plain(attrs[name])
    return CheckpointMetadata(**values)
