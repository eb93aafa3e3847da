"""Inference-time detection layer: refine ROIs with the classifier head and apply per-class NMS."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.graph_utils import (
    apply_box_deltas_graph,
    clip_boxes_graph,
    norm_boxes_graph,
    parse_image_meta_graph,
)


def refine_detections_graph(rois, probs, deltas, window, config) -> tf.Tensor:
    """Batched detections.

    rois: [B, N, (y1, x1, y2, x2)] normalized.
    probs: [B, N, NUM_CLASSES] class probabilities.
    deltas: [B, N, NUM_CLASSES, (dy, dx, log(dh), log(dw))] as predicted (divided by BBOX_STD_DEV).
    window: [B, (y1, x1, y2, x2)] normalized part of each image that holds the real image.
    Returns [B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)], by decreasing score, zero-padded.
    """
    max_instances = int(config.DETECTION_MAX_INSTANCES)
    probs = tf.cast(probs, tf.float32)
    class_ids = tf.argmax(probs, axis=2, output_type=tf.int32)  # [B, N]
    scores = tf.gather(probs, class_ids, batch_dims=2)  # [B, N]
    std_dev = tf.constant(np.asarray(config.BBOX_STD_DEV, np.float32).reshape(4))
    class_deltas = tf.gather(tf.cast(deltas, tf.float32), class_ids, batch_dims=2) * std_dev
    boxes = apply_box_deltas_graph(tf.cast(rois, tf.float32), class_deltas)
    boxes = clip_boxes_graph(boxes, window[:, tf.newaxis, :])

    keep = class_ids > 0
    if config.DETECTION_MIN_CONFIDENCE:
        keep = tf.logical_and(keep, scores >= config.DETECTION_MIN_CONFIDENCE)

    # Each ROI competes only in its own class: a one-hot score row, -1 elsewhere and for dropped ROIs.
    num_classes = tf.shape(probs)[2]
    one_hot = tf.one_hot(class_ids, num_classes, on_value=True, off_value=False)
    class_scores = tf.where(tf.logical_and(one_hot, keep[..., tf.newaxis]), scores[..., tf.newaxis], -1.0)

    nms_boxes, nms_scores, nms_classes, _ = tf.image.combined_non_max_suppression(
        boxes[:, :, tf.newaxis, :],
        class_scores,
        max_output_size_per_class=max_instances,
        max_total_size=max_instances,
        iou_threshold=config.DETECTION_NMS_THRESHOLD,
        score_threshold=0.0,
        pad_per_class=False,
        clip_boxes=False,
    )
    valid = nms_scores > 0.0
    detections = tf.concat([nms_boxes, nms_classes[..., tf.newaxis], nms_scores[..., tf.newaxis]], axis=2)
    return tf.where(valid[..., tf.newaxis], detections, 0.0)


class DetectionLayer(keras.layers.Layer):
    """Turns classifier outputs into final detections (inference).

    config: a ``Config``; uses BBOX_STD_DEV, DETECTION_MIN_CONFIDENCE, DETECTION_NMS_THRESHOLD,
    DETECTION_MAX_INSTANCES.

    call([rois, mrcnn_class, mrcnn_bbox, image_meta]):
        rois: [B, N, (y1, x1, y2, x2)] normalized.
        mrcnn_class: [B, N, NUM_CLASSES] probabilities.
        mrcnn_bbox: [B, N, NUM_CLASSES, (dy, dx, log(dh), log(dw))].
        image_meta: [B, IMAGE_META_SIZE].
    Returns [B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        window = norm_boxes_graph(meta["window"], meta["image_shape"][:, :2])
        return refine_detections_graph(rois, mrcnn_class, mrcnn_bbox, window, self.config)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], int(self.config.DETECTION_MAX_INSTANCES), 6)
