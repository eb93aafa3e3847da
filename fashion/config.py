"""``FashionConfig`` and the presets that reproduce the seed documents' set-ups.

=========== ==========================================================================================
preset      what it reproduces
=========== ==========================================================================================
thesis001   MSc thesis 001 (Appendix B, 4.2-4.4): ResNet101-FPN, 512x512 square, anchors 16-256, 2 images
            per GPU, 5,000 steps per epoch (Table 6), COCO transfer, 11-class full set (Table 5); at
            inference at most 10 detections (4.4.1). Schedule ``thesis001``, augmentation ``thesis001``.
thesis000   BSc thesis 000 (4.2.2): SE-ResNet101-FPN on DeepFashion2's 13 classes, Matterport's default
            800/1024 square images, SGD lr 0.001, momentum 0.9, weight decay 0.0001, 400 iterations per
            epoch, 10,000 images per class. Schedule ``thesis000``, augmentation ``thesis000``.
deck002     Slide deck 002: ResNet50, loss weights rpn_class 1.0, rpn_bbox 0.8, mrcnn_* 6.0, at most 50
            detections, lr 0.001, 46 classes. Image size is not given in the deck: Matterport's default.
sample      The shipped synthetic sample on a 2-core CPU: small CNN from scratch, 128x128, few ROIs.
=========== ==========================================================================================

A preset is data (:class:`Preset`): settings, inference settings and the defaults of a run (class subset, data
format, schedule, augmentation, per-class cap) that ``fashion/train.py`` uses unless told otherwise.
:func:`make_config` turns one into a :class:`FashionConfig` through :func:`mrcnn.config.build_config`, so
``config.origin("IMAGE_MAX_DIM")`` says whether a setting comes from the preset, its inference settings, an
override or the class::

    config = make_config("thesis001", num_classes=1 + 11)
    inference_config = make_config("thesis001", num_classes=1 + 11, inference=True)
    print(config.describe())

:func:`register_preset` adds a preset (the tests' ``tiny`` preset lives in :mod:`fashion.testing`, which
registers it when imported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrcnn.config import Config, build_config, settings_from_plain


class FashionConfig(Config):
    """Base fashion configuration: thesis 001's Appendix B with the 11-class full set."""

    NAME = "fashion"
    NUM_CLASSES = 1 + 11
    BACKBONE = "resnet101"
    IMAGES_PER_GPU = 2
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    STEPS_PER_EPOCH = 5000
    VALIDATION_STEPS = 50


@dataclass(frozen=True)
class Preset:
    """Settings of one seed's set-up.

    config: FashionConfig overrides for training. inference: further overrides for the inference model.
    classes, fmt, schedule, augmentation, cap: run defaults (class subset, dataset format, schedule name,
    augmentation name, images-per-class cap or None).
    attributes: default garment attribute selection (``--attributes``: "all", "none" or names/ids separated
        by ';'; see :func:`fashion.datasets.resolve_attributes`). "none" where the preset reproduces a seed
        that predicted no attributes or whose data has none (DeepFashion2); "all" for the shipped sample,
        whose attributes are drawn to be learnable.
    """

    name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    classes: str = "thesis11"
    fmt: str = "imaterialist"
    schedule: str = "thesis001"
    augmentation: str = "thesis001"
    cap: int | None = None
    attributes: str = "none"


# The shipped sample trains from scratch on a CPU: the small CNN backbone with trainable BatchNorm and a
# 7x7 -> 14x14 mask head (the ResNet heads need pretrained weights and hours).
SMALL_SETTINGS = {
    "BACKBONE": "small",
    "TRAIN_BN": True,
    "BATCH_NORM_MOMENTUM": 0.9,
    "MASK_POOL_SIZE": 7,
    "MASK_SHAPE": [14, 14],
    "IMAGE_MIN_DIM": 128,
    "IMAGE_MAX_DIM": 128,
    "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    "IMAGES_PER_GPU": 2,
    "TOP_DOWN_PYRAMID_SIZE": 64,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 128,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 64,
    "PRE_NMS_LIMIT": 1000,
    "POST_NMS_ROIS_TRAINING": 200,
    "POST_NMS_ROIS_INFERENCE": 100,
    "TRAIN_ROIS_PER_IMAGE": 32,
    "MAX_GT_INSTANCES": 20,
    "MINI_MASK_SHAPE": (28, 28),
    "DETECTION_MIN_CONFIDENCE": 0.5,
    "STEPS_PER_EPOCH": 16,
    "VALIDATION_STEPS": 2,
}

PRESETS: dict[str, Preset] = {
    "thesis001": Preset(
        "thesis001",
        "MSc thesis 001: ResNet101, 512 square, anchors 16-256, 11 classes, COCO transfer",
        config={
            "BACKBONE": "resnet101",
            "IMAGE_MIN_DIM": 512,
            "IMAGE_MAX_DIM": 512,
            "RPN_ANCHOR_SCALES": (16, 32, 64, 128, 256),
            "IMAGES_PER_GPU": 2,
            "STEPS_PER_EPOCH": 5000,
            # Appendix B records 4212 (the validation set / 2); each epoch then validates on every image.
            "VALIDATION_STEPS": 4212,
        },
        inference={"DETECTION_MAX_INSTANCES": 10},
    ),
    "thesis000": Preset(
        "thesis000",
        "BSc thesis 000: SE-ResNet101 on DeepFashion2 (13 classes), heads -> 4+ -> all",
        config={
            "BACKBONE": "se_resnet101",
            "IMAGE_MIN_DIM": 800,
            "IMAGE_MAX_DIM": 1024,
            "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512),
            "STEPS_PER_EPOCH": 400,
            "LEARNING_RATE": 0.001,
            "LEARNING_MOMENTUM": 0.9,
            "WEIGHT_DECAY": 0.0001,
            "USE_MINI_MASK": True,
        },
        classes="deepfashion2",
        fmt="deepfashion2",
        schedule="thesis000",
        augmentation="thesis000",
        cap=10000,
    ),
    "deck002": Preset(
        "deck002",
        "Slide deck 002: ResNet50, tuned loss weights, 50 detections, 46 classes",
        config={
            "BACKBONE": "resnet50",
            "IMAGE_MIN_DIM": 800,
            "IMAGE_MAX_DIM": 1024,
            "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512),
            "LEARNING_RATE": 0.001,
            "LOSS_WEIGHTS": {
                "rpn_class_loss": 1.0,
                "rpn_bbox_loss": 0.8,
                "mrcnn_class_loss": 6.0,
                "mrcnn_bbox_loss": 6.0,
                "mrcnn_mask_loss": 6.0,
            },
            "DETECTION_MAX_INSTANCES": 50,
        },
        inference={"DETECTION_MAX_INSTANCES": 50},
        classes="all",
        schedule="deck002",
        augmentation="thesis001",
    ),
    "sample": Preset(
        "sample",
        "Shipped synthetic sample on a CPU, from scratch: small CNN backbone, 128x128, light heads",
        config={**SMALL_SETTINGS, "STEPS_PER_EPOCH": 30},
        inference={"DETECTION_MAX_INSTANCES": 10, "DETECTION_MIN_CONFIDENCE": 0.3},
        schedule="sample",
        attributes="all",
    ),
}


def register_preset(preset: Preset, replace: bool = False) -> Preset:
    """Add ``preset`` to :data:`PRESETS` (``--preset NAME`` of the commands built after this). A name already
    taken by another preset is an error unless ``replace``. Returns ``preset``."""
    current = PRESETS.get(preset.name)
    if current is not None and current != preset and not replace:
        raise ValueError(f"preset {preset.name!r} is already registered; pass replace=True to replace it")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {sorted(PRESETS)}") from None


def make_config(
    preset: str = "thesis001", num_classes: int | None = None, inference: bool = False, **overrides: Any
) -> FashionConfig:
    """A FashionConfig instance with the preset's settings, then ``overrides`` (Config attribute names).

    num_classes: NUM_CLASSES including background (default: the preset's class subset, which needs no data).
    inference: apply the preset's inference settings and use one image per batch (GPU_COUNT = IMAGES_PER_GPU
        = 1), as Matterport's InferenceConfig does.
    ``config.origin(setting)`` names the source of each setting (see :func:`mrcnn.config.build_config`).
    """
    p = get_preset(preset)
    if num_classes is None:
        from fashion.categories import resolve_classes
        from fashion.datasets import DATASET_FORMATS

        table = DATASET_FORMATS.get(p.fmt).categories
        count = 1 + len(resolve_classes(p.classes, table))
        classes = (f"preset {p.name} classes ({p.classes})", {"NUM_CLASSES": count})
    else:
        classes = ("num_classes argument", {"NUM_CLASSES": int(num_classes)})
    sources = [(f"preset {p.name}", p.config), classes]
    if inference:
        sources += [
            (f"preset {p.name} inference", p.inference),
            ("inference: one image per batch", _ONE_IMAGE),
        ]
    sources.append(("override", overrides))
    return build_config(FashionConfig, *sources)


# Matterport's InferenceConfig: one image per batch.
_ONE_IMAGE = {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1}


def inference_config(
    preset: str, num_classes: int, settings: dict[str, Any] | None = None, **overrides: Any
) -> FashionConfig:
    """The inference config of a model trained with ``preset``.

    settings: every setting the model was trained with (a checkpoint's recorded ``Config.to_dict()``); then
        the model is rebuilt exactly as trained, with the preset's inference settings and one image per batch
        on top. Without it: :func:`make_config` of the preset with ``num_classes``, ``inference=True``.
    overrides: Config settings applied last (e.g. DETECTION_MIN_CONFIDENCE from a command-line option).
    """
    if settings is None:
        return make_config(preset, num_classes=num_classes, inference=True, **overrides)
    return build_config(
        FashionConfig,
        ("checkpoint", settings_from_plain(FashionConfig, settings)),
        (f"preset {preset} inference", get_preset(preset).inference),
        ("inference: one image per batch", _ONE_IMAGE),
        ("model's classes", {"NUM_CLASSES": int(num_classes)}),
        ("override", overrides),
    )
