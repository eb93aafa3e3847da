"""Small models for tests, benchmarks and quick experiments on a CPU.

``BACKBONE = "small"`` selects :func:`mrcnn.modeling.backbone.small_cnn_graph`, a five-stage CNN at ResNet's
strides: the whole Mask R-CNN then builds and trains in seconds. ``small_backbone`` is the same network as a
callable (for code that exercises ``BACKBONE`` callables) and ``small_backbone_shapes`` its
``COMPUTE_BACKBONE_SHAPE``.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.backbone import small_cnn_graph as small_backbone
from mrcnn.modeling.layers import BatchNorm

SMALL_STRIDES = (4, 8, 16, 32, 64)

__all__ = [
    "TINY_SETTINGS",
    "calibrate_random_weights",
    "real_photos",
    "small_backbone",
    "small_backbone_shapes",
    "tiny_config",
]


def small_backbone_shapes(image_shape) -> np.ndarray:
    """Feature-map sizes of the FPN levels for ``small_backbone``: [5, (height, width)]."""
    return np.array([[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)] for s in SMALL_STRIDES])


# A whole Mask R-CNN that builds and takes a training step in seconds: the small backbone at 64x64 with narrow
# heads and few anchors, ROIs and instances.
TINY_SETTINGS = dict(
    NAME="tiny",
    BACKBONE="small",
    NUM_CLASSES=4,
    IMAGES_PER_GPU=2,
    IMAGE_MIN_DIM=64,
    IMAGE_MAX_DIM=64,
    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
    TOP_DOWN_PYRAMID_SIZE=32,
    FPN_CLASSIF_FC_LAYERS_SIZE=64,
    RPN_TRAIN_ANCHORS_PER_IMAGE=32,
    PRE_NMS_LIMIT=300,
    POST_NMS_ROIS_TRAINING=64,
    POST_NMS_ROIS_INFERENCE=50,
    TRAIN_ROIS_PER_IMAGE=16,
    MAX_GT_INSTANCES=8,
    MINI_MASK_SHAPE=(16, 16),
    DETECTION_MAX_INSTANCES=8,
    STEPS_PER_EPOCH=2,
    VALIDATION_STEPS=1,
)


def tiny_config(**overrides):
    """A :class:`mrcnn.config.Config` with :data:`TINY_SETTINGS`, changed by ``overrides`` (setting=value).

    ``config.origin(name)`` says "mrcnn.testing.TINY_SETTINGS" or "tiny_config override" for those settings.
    """
    from mrcnn.config import Config, build_config

    return build_config(
        Config, ("mrcnn.testing.TINY_SETTINGS", TINY_SETTINGS), ("tiny_config override", overrides)
    )


# ------------------------------------------------------------------------------ random-but-calibrated weights
# Photos shipped with scikit-image (no download): real image statistics for calibrating random weights.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def real_photos(names: Sequence[str] = SKIMAGE_PHOTOS, folder: str | None = None, limit: int | None = None):
    """RGB uint8 photos [H, W, 3]: scikit-image's sample photos ``names``, then the .jpg/.png files of
    ``folder`` (sorted by name), at most ``limit`` in all."""
    import os

    import skimage.data
    from PIL import Image

    photos = [np.asarray(getattr(skimage.data, name)())[..., :3] for name in names]
    if folder is not None:
        for file_name in sorted(os.listdir(folder)):
            if file_name.lower().endswith((".jpg", ".jpeg", ".png")):
                with Image.open(os.path.join(folder, file_name)) as image:
                    photos.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return photos[:limit]


@contextlib.contextmanager
def _batch_norms_from_batch(model: keras.Model):
    """Within the block every BatchNorm of ``model`` normalizes with its input batch's statistics when called
    with training=True and stores them as its moving statistics (momentum 0); folded convolutions are
    unfolded. Everything is put back afterwards."""
    norms = [layer for layer in _all_layers(model) if isinstance(layer, BatchNorm)]
    saved = [(bn, bn.train_bn, bn.trainable, bn.momentum, bn._folded_into) for bn in norms]
    convs = [(bn.folded_into(), bn.folded_into()._folded_batch_norm) for bn in norms if bn.folded_into()]
    for conv, _ in convs:
        conv._folded_batch_norm = None
    for bn in norms:
        bn.train_bn, bn.trainable, bn.momentum, bn._folded_into = True, True, 0.0, None
    try:
        yield
    finally:
        for bn, train_bn, trainable, momentum, folded_into in saved:
            bn.train_bn, bn.trainable, bn.momentum, bn._folded_into = (
                train_bn,
                trainable,
                momentum,
                folded_into,
            )
        for conv, folded in convs:
            conv._folded_batch_norm = folded


def _all_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


# The BatchNorm at the end of each ResNet residual branch (Matterport's names, e.g. bn4b_branch2c).
RESIDUAL_BRANCH_END = re.compile(r"bn\d+[a-z]+_branch2c")


def _scale_layer(layer, factor: float) -> None:
    """Multiply a layer's kernel and bias by ``factor`` (its outputs scale by it when its input is unchanged)."""
    layer.set_weights([w * factor for w in layer.get_weights()])


def calibrate_random_weights(
    model,
    images: Sequence[np.ndarray],
    rpn_logit_std: float = 3.0,
    class_logit_std: float = 2.0,
    delta_std: float = 1.0,
    mask_logit_std: float = 3.0,
    residual_gamma: float = 1.0,
    graph: bool = True,
) -> dict[str, float]:
    """Make a randomly initialised inference :class:`mrcnn.model.MaskRCNN` behave like a trained network
    numerically (no saturated activations or scores), for precision and speed measurements.

    1. Every BatchNorm's moving mean and variance are set to the batch statistics of its input on ``images``
       (RGB uint8, any sizes: molded as ``detect`` does), in the order the network computes them, so each layer
       sees inputs normalized by the layers before it (gamma and beta keep their initial 1 and 0).
    2. The heads' last layers are scaled so that over ``images`` the RPN's foreground-minus-background logit
       has standard deviation ``rpn_logit_std``, the classifier's logits (per ROI, across classes)
       ``class_logit_std``, the RPN's and the classifier's box deltas ``delta_std`` (before BBOX_STD_DEV), and
       the mask logits ``mask_logit_std``.
    3. Step 1 again, so the heads' BatchNorms see the proposals and detections of the scaled heads.

    Works on the model's float32 weights whatever its precision; calibrate a float32 model and copy its
    weights to compare precisions on the same weights. Returns the scale factors applied, by layer name.

    graph: run the network as traced graphs (far faster at 512 px); False runs it eagerly, which skips two
    traces and is cheaper for tiny models (tests). Both give the same factors up to float rounding.
    """
    keras_model = model.keras_model
    molded, metas, _ = model.mold_inputs(list(images))
    anchors = model.get_anchors(molded.shape[1:])
    inputs = [molded, metas, np.ascontiguousarray(np.broadcast_to(anchors, (len(molded), *anchors.shape)))]

    # With graph, each function is traced once per calibration and reused by both BatchNorm passes.
    def compiled(fn):
        return tf.function(fn) if graph else fn

    forward = compiled(lambda: keras_model(inputs, training=True))

    def calibrate_norms():
        # Each BatchNorm normalizes with the batch statistics it stores, so later layers see the calibrated
        # network's activations.
        with _batch_norms_from_batch(keras_model):
            forward()

    for layer in _all_layers(keras_model):
        if isinstance(layer, BatchNorm) and RESIDUAL_BRANCH_END.fullmatch(layer.name):
            layer.gamma.assign(np.full(layer.gamma.shape, residual_gamma, np.float32))
    calibrate_norms()
    probe = keras.Model(
        keras_model.inputs, [keras_model.get_layer("mrcnn_class_logits").output, *keras_model.outputs]
    )
    class_logits, detections, _, class_deltas, mask_probs, _, rpn_probs, rpn_deltas = (
        np.asarray(t, np.float64) for t in compiled(lambda: probe(inputs, training=False))()
    )
    rpn_probs = np.clip(rpn_probs, 1e-30, None)
    valid = detections[..., 4] > 0  # [B, D]: real detections (the rest is padding)
    mask_probs = np.clip(mask_probs[valid], 1e-6, 1 - 1e-6)
    measured = {
        "rpn_class_raw": (np.std(np.log(rpn_probs[..., 1] / rpn_probs[..., 0])), rpn_logit_std),
        "rpn_bbox_pred": (np.std(rpn_deltas), delta_std),
        "mrcnn_class_logits": (np.mean(np.std(class_logits, axis=-1)), class_logit_std),
        "mrcnn_bbox_fc": (np.std(class_deltas), delta_std),
        "mrcnn_mask": (np.std(np.log(mask_probs / (1 - mask_probs))), mask_logit_std),
    }
    rpn_model = keras_model.get_layer("rpn_model")
    factors = {}
    for name, (std, target) in measured.items():
        layer = rpn_model.get_layer(name) if name.startswith("rpn_") else keras_model.get_layer(name)
        factors[name] = float(target / max(std, 1e-12))
        _scale_layer(layer, factors[name])
    calibrate_norms()
    return factors
