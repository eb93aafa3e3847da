"""Inference-time detection layer: refine ROIs with the classifier head and apply per-class NMS."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.graph_utils import (
    apply_box_deltas_graph,
    clip_boxes_graph,
    norm_boxes_graph,
    parse_image_meta_graph,
)
from mrcnn.modeling.layers import plain_float, plain_floats, plain_int


def refine_detections_graph(
    rois,
    probs,
    deltas,
    window,
    *,
    max_instances: int,
    min_confidence: float,
    nms_threshold: float,
    bbox_std_dev: Sequence[float],
) -> tf.Tensor:
    """Batched detections.

    rois: [B, N, (y1, x1, y2, x2)] normalized.
    probs: [B, N, NUM_CLASSES] class probabilities.
    deltas: [B, N, NUM_CLASSES, (dy, dx, log(dh), log(dw))] as predicted (divided by bbox_std_dev).
    window: [B, (y1, x1, y2, x2)] normalized part of each image that holds the real image.
    max_instances: detections kept per image (DETECTION_MAX_INSTANCES).
    min_confidence: lowest class score kept, 0 keeps all (DETECTION_MIN_CONFIDENCE).
    nms_threshold: per-class NMS IoU threshold (DETECTION_NMS_THRESHOLD).
    bbox_std_dev: the 4 factors the predicted deltas were divided by (BBOX_STD_DEV).
    (Matterport's one-image ``refine_detections_graph(..., config)`` is in :mod:`mrcnn.matterport_compat`.)
    Returns [B, max_instances, (y1, x1, y2, x2, class_id, score)], by decreasing score, zero-padded.
    """
    max_instances = int(max_instances)
    probs = tf.cast(probs, tf.float32)
    class_ids = tf.argmax(probs, axis=2, output_type=tf.int32)  # [B, N]
    scores = tf.gather(probs, class_ids, batch_dims=2)  # [B, N]
    std_dev = tf.constant(np.asarray(bbox_std_dev, np.float32).reshape(4))
    class_deltas = tf.gather(tf.cast(deltas, tf.float32), class_ids, batch_dims=2) * std_dev
    boxes = apply_box_deltas_graph(tf.cast(rois, tf.float32), class_deltas)
    boxes = clip_boxes_graph(boxes, window[:, tf.newaxis, :])

    keep = class_ids > 0
    if min_confidence:
        keep = tf.logical_and(keep, scores >= min_confidence)

    # Each ROI competes only in its own class: a one-hot score row, -1 elsewhere and for dropped ROIs.
    num_classes = tf.shape(probs)[2]
    one_hot = tf.one_hot(class_ids, num_classes, on_value=True, off_value=False)
    class_scores = tf.where(tf.logical_and(one_hot, keep[..., tf.newaxis]), scores[..., tf.newaxis], -1.0)

    nms_boxes, nms_scores, nms_classes, _ = tf.image.combined_non_max_suppression(
        boxes[:, :, tf.newaxis, :],
        class_scores,
        max_output_size_per_class=max_instances,
        max_total_size=max_instances,
        iou_threshold=nms_threshold,
        score_threshold=0.0,
        pad_per_class=False,
        clip_boxes=False,
    )
    valid = nms_scores > 0.0
    detections = tf.concat([nms_boxes, nms_classes[..., tf.newaxis], nms_scores[..., tf.newaxis]], axis=2)
    return tf.where(valid[..., tf.newaxis], detections, 0.0)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Turns classifier outputs into final detections (inference).

    max_instances, min_confidence, nms_threshold, bbox_std_dev: see :func:`refine_detections_graph`; the
    defaults are Config's (:func:`mrcnn.modeling.build.detection_layer_args` reads them from a ``Config``).

    call([rois, mrcnn_class, mrcnn_bbox, image_meta]):
        rois: [B, N, (y1, x1, y2, x2)] normalized.
        mrcnn_class: [B, N, NUM_CLASSES] probabilities.
        mrcnn_bbox: [B, N, NUM_CLASSES, (dy, dx, log(dh), log(dw))].
        image_meta: [B, IMAGE_META_SIZE].
    Returns [B, max_instances, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
    """

    def __init__(
        self,
        max_instances: int = 100,
        min_confidence: float = 0.7,
        nms_threshold: float = 0.3,
        bbox_std_dev: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_instances = plain_int(max_instances, "max_instances", self)
        self.min_confidence = plain_float(min_confidence, "min_confidence", self)
        self.nms_threshold = plain_float(nms_threshold, "nms_threshold", self)
        self.bbox_std_dev = plain_floats(bbox_std_dev, "bbox_std_dev", self, length=4)

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        window = norm_boxes_graph(meta["window"], meta["image_shape"][:, :2])
        return refine_detections_graph(
            rois,
            mrcnn_class,
            mrcnn_bbox,
            window,
            max_instances=self.max_instances,
            min_confidence=self.min_confidence,
            nms_threshold=self.nms_threshold,
            bbox_std_dev=self.bbox_std_dev,
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update(
            max_instances=self.max_instances,
            min_confidence=self.min_confidence,
            nms_threshold=self.nms_threshold,
            bbox_std_dev=self.bbox_std_dev,
        )
        return config
