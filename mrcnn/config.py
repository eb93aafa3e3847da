"""Model configuration with Matterport's attribute names, meanings and defaults.

Subclass :class:`Config` and override class attributes, exactly as with Matterport::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 1 + 3
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128

The derived values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) are computed in ``__init__`` and
the whole configuration is validated there, so a bad setting fails when the config is made, not an hour into
training. ``to_dict``/``to_json``/``from_json`` give the round trip every training run uses to record its config.

Settings given as data (a preset's table, command-line overrides, a checkpoint's recorded settings) become a
config through one function, :func:`build_config`, which records where each setting came from::

    config = build_config(Config, ("preset sample", {"BACKBONE": "small"}), ("--name", {"NAME": "run1"}))
    config.origin("NAME")        # "--name"
    config.origin("LEARNING_RATE")   # "class Config"
    print(config.describe())     # every setting, its value and its origin
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from mrcnn.modeling.registry import BACKBONES
from mrcnn.precision import MIXED_PRECISION_VALUES

RESIZE_MODES = ("none", "square", "pad64", "crop")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")
# The sixth loss, of the attribute head (NUM_ATTRIBUTES > 0); its LOSS_WEIGHTS entry defaults to 1.0.
ATTRIBUTE_LOSS_NAME = "mrcnn_attr_loss"
_DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")


class ConfigError(ValueError):
    """A configuration value that the model cannot work with."""


class Config:
    """Base configuration. Every attribute in UPPER_CASE is a setting."""

    # Name of the configuration; used in log folder and checkpoint names.
    NAME: str | None = None

    # Images per GPU and number of GPUs; the batch is their product.
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2

    # Training steps per epoch and validation steps at the end of each epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # A registered backbone name: "resnet50", "resnet101", "se_resnet50", "se_resnet101", "small" (a CPU
    # demo CNN, no pretrained weights) or one added with mrcnn.modeling.registry.register_backbone; or a
    # callable f(input_image, stage5=True, train_bn=...) -> [C1, C2, C3, C4, C5].
    BACKBONE: str | Callable = "resnet101"

    # With a callable BACKBONE: f(image_shape) -> [levels, (height, width)] of the feature maps.
    COMPUTE_BACKBONE_SHAPE: Callable | None = None

    # Strides of the FPN levels P2..P6 in pixels.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Width of the fully connected layers of the classifier head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024

    # Channels of the top-down FPN layers.
    TOP_DOWN_PYRAMID_SIZE = 256

    # Number of classes including background.
    NUM_CLASSES = 1

    # Per-instance attributes (garment attributes: sleeve length, pattern, ...). 0: no attribute head, and the
    # network, its layer names and its .h5 layout are Matterport's. N > 0: a head of N sigmoid outputs on
    # the ROI features, trained with a sixth loss, "mrcnn_attr_loss" (see mrcnn.modeling.heads).
    NUM_ATTRIBUTES = 0

    # Width of the attribute head's own two fully connected layers; 0 makes the head a single dense layer on
    # the classifier's fully connected features (shared with the class and box outputs).
    ATTRIBUTE_FC_LAYERS_SIZE = 0

    # Anchor side lengths in pixels, one per pyramid level, and width/height ratios.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]

    # 1: an anchor at every feature-map cell; 2: every other cell, and so on.
    RPN_ANCHOR_STRIDE = 1

    # Non-max suppression threshold for RPN proposals.
    RPN_NMS_THRESHOLD = 0.7

    # Anchors per image used to train the RPN.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256

    # Top anchors by score kept before non-max suppression.
    PRE_NMS_LIMIT = 6000

    # Proposals kept after non-max suppression.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store instance masks cropped to their box and resized to MINI_MASK_SHAPE (saves memory).
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)

    # Resizing: "none", "square", "pad64" or "crop" (see mrcnn.images.resize_image).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scaling ratio; 0 means none. Checked after IMAGE_MIN_DIM.
    IMAGE_MIN_SCALE = 0
    # 3 for RGB. Other values need a backbone whose first layer is not loaded from COCO.
    IMAGE_CHANNEL_COUNT = 3

    # Mean pixel (RGB) subtracted from images.
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the classifier and mask heads in training.
    TRAIN_ROIS_PER_IMAGE = 200
    # Fraction of positive ROIs among them.
    ROI_POSITIVE_RATIO = 0.33

    # ROI-align output sizes for the classifier and the mask head.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14

    # Output mask size; changing it means changing the mask head too.
    MASK_SHAPE = [28, 28]

    # Ground-truth instances kept per image.
    MAX_GT_INSTANCES = 100

    # Standard deviations of the box refinement targets, RPN and final detections.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Detections kept per image at inference.
    DETECTION_MAX_INSTANCES = 100
    # Detections scoring below this are dropped.
    DETECTION_MIN_CONFIDENCE = 0.7
    # Non-max suppression threshold between detections of the same class.
    DETECTION_NMS_THRESHOLD = 0.3

    # SGD with momentum. Matterport's paper value 0.02 tends to make weights explode; 0.001 is the default.
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9

    # L2 weight decay on convolution and dense kernels (not on BatchNorm gamma/beta).
    WEIGHT_DECAY = 0.0001

    # Weights of the five losses in the total loss, and of "mrcnn_attr_loss" with NUM_ATTRIBUTES > 0 (1.0 when
    # not listed).
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }

    # Train the heads on the RPN's proposals (True) or on ROIs given as an input (False).
    USE_RPN_ROIS = True

    # Train BatchNorm layers. False freezes them: small batches give poor statistics.
    TRAIN_BN = False

    # Moving-average momentum of BatchNorm layers that train (TRAIN_BN = True). Keras' (and Matterport's)
    # 0.99 suits long runs; short runs from scratch want less (0.9) or the inference statistics lag behind.
    BATCH_NORM_MOMENTUM = 0.99

    # Gradients are clipped to this global norm.
    GRADIENT_CLIP_NORM = 5.0

    # None or "float32"; "bfloat16" (= "mixed_bfloat16": CPUs with AMX or AVX512-BF16, TPUs, recent GPUs);
    # "float16" (= "mixed_float16": GPUs with tensor cores; training scales the loss dynamically); or "auto"
    # (one of those for this machine, see mrcnn.precision.resolve_precision). Convolutions and dense layers
    # compute in that type; box math, ROI align, targets, losses and the model's outputs stay float32.
    # Weights are float32 either way, in memory and in .h5 files.
    MIXED_PRECISION: str | None = None

    def __init__(self, **settings: Any) -> None:
        """settings: ``NAME=value`` pairs that override the class's settings for this instance
        (``Config(NUM_CLASSES=3)``); :meth:`origin` reports them as set by "argument"."""
        if settings:
            self._set_settings(settings, "argument")
        # A plain function assigned as a class attribute would bind to the instance; keep it unbound.
        for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
            value = getattr(self, name)
            if inspect.ismethod(value) and value.__self__ is self:
                setattr(self, name, value.__func__)
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM, self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, self.IMAGE_CHANNEL_COUNT])
        # image_id + original shape + image shape + window + scale + active class ids
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES
        if _positive_int(self.NUM_ATTRIBUTES) and ATTRIBUTE_LOSS_NAME not in self.LOSS_WEIGHTS:
            # An instance attribute: the class's dict (shared with every config of the class) stays as it is.
            self.LOSS_WEIGHTS = {**self.LOSS_WEIGHTS, ATTRIBUTE_LOSS_NAME: 1.0}
        self.validate()

    # -- validation -------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the setting if the configuration cannot work."""
        if not isinstance(self.NUM_CLASSES, (int, np.integer)) or self.NUM_CLASSES < 2:
            raise ConfigError(
                f"NUM_CLASSES must be an int >= 2 (background + at least one class), got {self.NUM_CLASSES!r}"
            )
        for name in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if not callable(self.BACKBONE) and self.BACKBONE not in BACKBONES:
            raise ConfigError(
                f"BACKBONE must be a registered backbone ({', '.join(BACKBONES)}) or a callable, got "
                f"{self.BACKBONE!r}; register your own with mrcnn.modeling.registry.register_backbone"
            )
        if callable(self.BACKBONE) and self.COMPUTE_BACKBONE_SHAPE is None:
            raise ConfigError("a callable BACKBONE needs COMPUTE_BACKBONE_SHAPE(image_shape) as well")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            raise ConfigError(
                f"IMAGE_RESIZE_MODE must be one of {RESIZE_MODES}, got {self.IMAGE_RESIZE_MODE!r}"
            )
        if self.IMAGE_RESIZE_MODE in ("square", "crop", "pad64"):
            # The FPN halves the image six times (P2..P6) and adds upsampled maps back,
            # so each side must divide by 2**6.
            h, w = int(self.IMAGE_SHAPE[0]), int(self.IMAGE_SHAPE[1])
            if h % 64 or w % 64:
                raise ConfigError(
                    f"image size {h}x{w} (from IMAGE_MAX_DIM/IMAGE_MIN_DIM with IMAGE_RESIZE_MODE="
                    f"{self.IMAGE_RESIZE_MODE!r}) must be divisible by 64 so the FPN levels line up; "
                    f"try {max(64, 64 * round(h / 64))}"
                )
        if self.IMAGE_RESIZE_MODE == "square" and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM:
            raise ConfigError(
                f"IMAGE_MIN_DIM ({self.IMAGE_MIN_DIM}) cannot exceed IMAGE_MAX_DIM ({self.IMAGE_MAX_DIM})"
            )
        if len(self.BACKBONE_STRIDES) != len(self.RPN_ANCHOR_SCALES):
            raise ConfigError(
                f"RPN_ANCHOR_SCALES needs one scale per pyramid level: {len(self.RPN_ANCHOR_SCALES)} scales "
                f"for {len(self.BACKBONE_STRIDES)} BACKBONE_STRIDES"
            )
        if len(self.MEAN_PIXEL) != self.IMAGE_CHANNEL_COUNT:
            raise ConfigError(
                f"MEAN_PIXEL has {len(self.MEAN_PIXEL)} values for IMAGE_CHANNEL_COUNT={self.IMAGE_CHANNEL_COUNT}"
            )
        if not 0 < self.ROI_POSITIVE_RATIO <= 1:
            raise ConfigError(f"ROI_POSITIVE_RATIO must be in (0, 1], got {self.ROI_POSITIVE_RATIO}")
        for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if tuple(self.MASK_SHAPE) != (2 * self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE):
            raise ConfigError(
                f"MASK_SHAPE {list(self.MASK_SHAPE)} must be twice MASK_POOL_SIZE ({self.MASK_POOL_SIZE}): "
                "the mask head upsamples once"
            )
        for name in ("NUM_ATTRIBUTES", "ATTRIBUTE_FC_LAYERS_SIZE"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
        missing = set(LOSS_NAMES) - set(self.LOSS_WEIGHTS)
        unknown = set(self.LOSS_WEIGHTS) - set(LOSS_NAMES) - {ATTRIBUTE_LOSS_NAME}
        if missing or unknown:
            raise ConfigError(
                f"LOSS_WEIGHTS must have exactly the keys {LOSS_NAMES} (and {ATTRIBUTE_LOSS_NAME!r} for a model "
                f"with NUM_ATTRIBUTES > 0); missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        if self.MIXED_PRECISION not in MIXED_PRECISION_VALUES:
            raise ConfigError(
                f"MIXED_PRECISION must be one of {MIXED_PRECISION_VALUES}, got {self.MIXED_PRECISION!r}"
            )
        if self.TRAIN_ROIS_PER_IMAGE < 1 or self.MAX_GT_INSTANCES < 1 or self.DETECTION_MAX_INSTANCES < 1:
            raise ConfigError(
                "TRAIN_ROIS_PER_IMAGE, MAX_GT_INSTANCES and DETECTION_MAX_INSTANCES must be >= 1"
            )
        if self.PRE_NMS_LIMIT < self.POST_NMS_ROIS_INFERENCE:
            raise ConfigError(
                f"PRE_NMS_LIMIT ({self.PRE_NMS_LIMIT}) must be at least POST_NMS_ROIS_INFERENCE "
                f"({self.POST_NMS_ROIS_INFERENCE})"
            )

    # -- inspection and serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All settings (upper-case attributes, derived ones included) as plain Python values."""
        out = {}
        for name in dir(self):
            if name.isupper() and not name.startswith("_"):
                value = getattr(self, name)
                if callable(value) and not isinstance(value, type):
                    value = getattr(value, "__qualname__", repr(value))
                out[name] = _to_plain(value)
        return out

    def display(self) -> None:
        """Print every setting, one per line, as Matterport does."""
        print("\nConfigurations:")
        for key, value in self.to_dict().items():
            print(f"{key:30} {value}")
        print("\n")

    def to_json(self, path: str | None = None) -> str:
        """Serialise the settings to JSON; write them to ``path`` when given. Returns the JSON text."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str) -> Config:
        """Make a config from JSON text or a JSON file written by :meth:`to_json`.

        Settings override the class defaults; derived values are recomputed, and a callable BACKBONE (stored
        by name) must be set again by the caller.
        """
        if source.lstrip().startswith("{"):
            data = json.loads(source)
        else:
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "saved settings") -> Config:
        """Make a config whose settings are ``data`` (as produced by :meth:`to_dict`; derived values are
        recomputed). JSON's lists become the class default's type (tuple, numpy array); a callable default
        stored by name is kept. ``source``: what :meth:`origin` reports for these settings."""
        return build_config(cls, (source, settings_from_plain(cls, data)))

    # -- where settings come from ------------------------------------------------------------------------

    def _set_settings(self, settings: Mapping[str, Any], source: str) -> None:
        """Set each setting on this instance (before ``__init__`` derives and validates), recording
        ``source`` as its origin. Raises ConfigError for a name the class has no setting for."""
        cls = type(self)
        origins = self.__dict__.setdefault("_origins", {})
        for key, value in settings.items():
            if key in _DERIVED:
                raise ConfigError(
                    f"{key} is derived (from IMAGES_PER_GPU and GPU_COUNT, the image size settings or "
                    "NUM_CLASSES) and cannot be set"
                )
            if not (isinstance(key, str) and key.isupper() and hasattr(cls, key)):
                raise ConfigError(f"unknown setting {key!r} for {cls.__name__} (from {source})")
            setattr(self, key, value)
            origins[key] = source

    def origin(self, name: str) -> str:
        """Where setting ``name``'s value comes from: the source that set it (a preset, an override, a
        checkpoint, ... as :func:`build_config` was told; "argument" for ``Config(NAME=value)``), "derived"
        for BATCH_SIZE, IMAGE_SHAPE and IMAGE_META_SIZE, else "class X" for the class that defines it."""
        if name in _DERIVED:
            return "derived"
        origins = self.__dict__.get("_origins", {})
        if name in origins:
            return origins[name]
        for klass in type(self).__mro__:
            if name in vars(klass):
                return f"class {klass.__name__}"
        raise ConfigError(f"unknown setting {name!r} for {type(self).__name__}")

    def describe(self) -> str:
        """Every setting, its value and where it comes from (:meth:`origin`), one per line."""
        return "\n".join(
            f"{key:30} {value!s:40} [{self.origin(key)}]" for key, value in self.to_dict().items()
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} NAME={self.NAME!r} BACKBONE={self.BACKBONE!r} NUM_CLASSES={self.NUM_CLASSES}>"


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


C = TypeVar("C", bound=Config)


def build_config(base: type[C], *sources: tuple[str, Mapping[str, Any]]) -> C:
    """The one way this package makes a config from data: an instance of ``base`` whose settings are the
    class's, then each source's in order (later sources win), derived values computed and validated.

    sources: ``(label, {SETTING: value})`` pairs, e.g. ``("preset sample", {...})``, ``("--steps-per-epoch",
        {"STEPS_PER_EPOCH": 7})``; the label is what ``config.origin(SETTING)`` reports.

    Unlike a class made at run time, the result is a plain ``base`` instance whose settings say where they
    come from (:meth:`Config.origin`, :meth:`Config.describe`). Raises ConfigError for an unknown setting or
    a configuration that cannot work.
    """
    config = base.__new__(base)
    for label, settings in sources:
        config._set_settings(settings, label)
    config.__init__()
    return config


def settings_from_plain(cls: type[Config], data: Mapping[str, Any]) -> dict[str, Any]:
    """Settings read back from JSON-like ``data`` (:meth:`Config.to_dict`'s output) in ``cls``'s types: lists
    become tuples or numpy arrays where the class default is one; derived values and callables stored by name
    are dropped. Raises ConfigError for a name ``cls`` has no setting for."""
    out = {}
    for key, value in data.items():
        if key in _DERIVED:
            continue
        if not (isinstance(key, str) and key.isupper() and hasattr(cls, key)):
            raise ConfigError(f"unknown setting {key!r} for {cls.__name__}")
        default = getattr(cls, key)
        if isinstance(default, np.ndarray):
            value = np.array(value, dtype=default.dtype)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif callable(default) and isinstance(value, str):
            continue
        out[key] = value
    return out


def _to_plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
