"""Matterport's ``mrcnn.model`` functions whose signature or meaning differs from ours, with Matterport's.

``mrcnn.model`` resolves Matterport's public names lazily (``_MATTERPORT_NAMES`` there): most point straight
at the module where the function now lives, under the same name and signature; the few below need an adapter.

- ``resnet_graph``: Matterport's default is ``stage5=False`` (ours builds stage 5 unless told not to).
- ``identity_block`` / ``conv_block``: Matterport's positional order ``(..., block, [strides,] use_bias,
  train_bn)``; ours is ``(..., block, [strides,] train_bn, se, use_bias)``.
- ``refine_detections_graph``: one image (``rois [N, 4]``, ``window [4]``) where ours takes a batch.
- ``ProposalLayer``, ``DetectionTargetLayer``, ``DetectionLayer``, ``detection_targets_graph``,
  ``rpn_bbox_loss_graph``: Matterport's take the ``Config``; ours take explicit settings, which
  :mod:`mrcnn.modeling.build` reads from a Config. These adapters translate the config with the same
  functions (``DetectionLayer``'s config may be left out of the constructor, as Matterport's allows). The
  layers also accept the explicit settings, which is how ``keras.saving.load_model`` rebuilds them.
- ``log2_graph``, ``batch_pack_graph``: Matterport's small graph helpers that our graphs do not need.

``train_bn`` keeps the meaning Matterport documents ("train or freeze Batch Norm layers"): False freezes the
BatchNorm layers (moving statistics, never updated); True trains them when the model runs in training mode.
(Matterport passed it as the layers' ``training`` flag, so True also used batch statistics at inference;
its Config warns not to use that.)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from mrcnn.modeling import backbone, build, detection, losses, proposals, targets

__all__ = [
    "DetectionLayer",
    "DetectionTargetLayer",
    "ProposalLayer",
    "batch_pack_graph",
    "conv_block",
    "detection_targets_graph",
    "identity_block",
    "log2_graph",
    "refine_detections_graph",
    "resnet_graph",
    "rpn_bbox_loss_graph",
]

# Keras finds a saved layer by its registered name: these adapters share their class names with ours.
_PACKAGE = "mrcnn.matterport"


def identity_block(
    input_tensor,
    kernel_size: int,
    filters: Sequence[int],
    stage: int,
    block: str,
    use_bias: bool = True,
    train_bn: bool = True,
):
    """Matterport's ResNet identity block: ``[B, H, W, filters[2]] -> [B, H, W, filters[2]]``.

    Layers ``res{stage}{block}_branch2a|2b|2c``, ``bn{stage}{block}_branch2a|2b|2c`` and
    ``res{stage}{block}_out``, as in Matterport's weight files.
    """
    return backbone.identity_block(
        input_tensor, kernel_size, filters, stage, block, train_bn=train_bn, use_bias=use_bias
    )


def conv_block(
    input_tensor,
    kernel_size: int,
    filters: Sequence[int],
    stage: int,
    block: str,
    strides=(2, 2),
    use_bias: bool = True,
    train_bn: bool = True,
):
    """Matterport's ResNet block with a projection shortcut: ``[B, H, W, C] -> [B, H/s, W/s, filters[2]]``.

    Adds ``res{stage}{block}_branch1`` / ``bn{stage}{block}_branch1`` (the shortcut) to the identity block's
    layers.
    """
    return backbone.conv_block(
        input_tensor,
        kernel_size,
        filters,
        stage,
        block,
        strides=strides,
        train_bn=train_bn,
        use_bias=use_bias,
    )


def resnet_graph(input_image, architecture: str, stage5: bool = False, train_bn: bool = True) -> list:
    """Matterport's ResNet on ``input_image`` [B, H, W, C]: ``[C1, C2, C3, C4, C5]``.

    architecture: "resnet50" or "resnet101" (or our "se_resnet50" / "se_resnet101").
    Strides 4, 4, 8, 16, 32 and 64, 256, 512, 1024, 2048 channels; C5 is None unless ``stage5``
    (Matterport's default leaves stage 5 out).
    """
    return backbone.resnet_graph(input_image, architecture, stage5=stage5, train_bn=train_bn)


def log2_graph(x: tf.Tensor) -> tf.Tensor:
    """Element-wise base-2 logarithm of a float tensor."""
    x = tf.convert_to_tensor(x)
    return tf.math.log(x) / tf.math.log(tf.constant(2.0, x.dtype))


def batch_pack_graph(x: tf.Tensor, counts: tf.Tensor, num_rows: int) -> tf.Tensor:
    """The first ``counts[i]`` entries of each row ``x[i]``, for ``i < num_rows``, concatenated.

    x: [B, N, ...]. counts: [B] int (a count above N takes the whole row). num_rows: how many rows to take.
    Returns [sum(min(counts[:num_rows], N)), ...] in row order, e.g. the targets of each image's positive
    anchors packed into one list.
    """
    x = tf.convert_to_tensor(x)[:num_rows]
    counts = tf.cast(tf.convert_to_tensor(counts)[:num_rows], tf.int32)
    keep = tf.range(tf.shape(x)[1])[tf.newaxis, :] < counts[:, tf.newaxis]
    return tf.boolean_mask(x, keep)


def refine_detections_graph(rois, probs, deltas, window, config) -> tf.Tensor:
    """Final detections of one image.

    rois: [N, (y1, x1, y2, x2)] normalized.
    probs: [N, NUM_CLASSES] class probabilities.
    deltas: [N, NUM_CLASSES, (dy, dx, log(dh), log(dw))] as predicted (divided by BBOX_STD_DEV).
    window: [(y1, x1, y2, x2)] normalized part of the image that holds the real image.
    config: uses BBOX_STD_DEV, DETECTION_MIN_CONFIDENCE, DETECTION_NMS_THRESHOLD, DETECTION_MAX_INSTANCES.
    Returns [DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)] normalized, by decreasing score,
    zero-padded.
    """
    window = tf.reshape(tf.cast(window, tf.float32), [1, 4])
    batched = detection.refine_detections_graph(
        tf.convert_to_tensor(rois)[tf.newaxis],
        tf.convert_to_tensor(probs)[tf.newaxis],
        tf.convert_to_tensor(deltas)[tf.newaxis],
        window,
        **build.detection_layer_args(config),
    )
    return batched[0]


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config):
    """Matterport's signature of :func:`mrcnn.modeling.targets.detection_targets_graph` (one image).

    config: uses TRAIN_ROIS_PER_IMAGE, ROI_POSITIVE_RATIO, MASK_SHAPE, BBOX_STD_DEV, USE_MINI_MASK.
    Returns rois [T, 4], class_ids [T], deltas [T, 4], masks [T, MASK_SHAPE[0], MASK_SHAPE[1]] with
    T = TRAIN_ROIS_PER_IMAGE.
    """
    return targets.detection_targets_graph(
        proposals, gt_class_ids, gt_boxes, gt_masks, **build.detection_target_args(config)
    )


def rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox) -> tf.Tensor:
    """Matterport's signature of :func:`mrcnn.modeling.losses.rpn_bbox_loss_graph`; ``config`` is unused (the
    batch size comes from the tensors). Returns the mean smooth-L1 over the positive anchors' coordinates."""
    del config
    return losses.rpn_bbox_loss_graph(target_bbox, rpn_match, rpn_bbox)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProposalLayer(proposals.ProposalLayer):
    """Our :class:`mrcnn.modeling.proposals.ProposalLayer` with Matterport's
    ``(proposal_count, nms_threshold, config=None)``: the config gives PRE_NMS_LIMIT and RPN_BBOX_STD_DEV.

    call([rpn_probs, rpn_bbox, anchors]) -> [B, proposal_count, (y1, x1, y2, x2)] normalized, zero-padded.
    """

    def __init__(self, proposal_count, nms_threshold, config=None, **kwargs):
        if config is not None:
            settings = build.proposal_layer_args(config, "inference")
            kwargs.update(
                pre_nms_limit=settings["pre_nms_limit"], rpn_bbox_std_dev=settings["rpn_bbox_std_dev"]
            )
        super().__init__(proposal_count, nms_threshold, **kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DetectionTargetLayer(targets.DetectionTargetLayer):
    """Our :class:`mrcnn.modeling.targets.DetectionTargetLayer` with Matterport's ``(config)``.

    call([proposals, gt_class_ids, gt_boxes, gt_masks]) -> rois, target_class_ids, target_bbox, target_mask.
    """

    def __init__(self, config=None, **kwargs):
        if config is not None:
            kwargs.update(build.detection_target_args(config))
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DetectionLayer(detection.DetectionLayer):
    """Our :class:`mrcnn.modeling.detection.DetectionLayer` with Matterport's ``(config=None)``.

    call([rois, mrcnn_class, mrcnn_bbox, image_meta]) ->
    [B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
    """

    def __init__(self, config=None, **kwargs):
        if config is not None:
            kwargs.update(build.detection_layer_args(config))
        # Without a config or explicit settings the layer cannot run, as in Matterport: say so when it is used.
        self._has_settings = config is not None or "max_instances" in kwargs
        super().__init__(**kwargs)

    def _require_config(self) -> None:
        if not self._has_settings:
            raise ValueError(
                "DetectionLayer has no config: create it as DetectionLayer(config, name=...) with the model's Config"
            )

    def call(self, inputs):
        self._require_config()
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        self._require_config()
        return super().compute_output_shape(input_shape)
