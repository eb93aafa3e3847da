"""Training targets for the classifier and mask heads: sample ROIs and match them to ground truth."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.graph_utils import box_refinement_graph, overlaps_graph, trim_zeros_graph


def _zero_column(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros([tf.shape(x)[0], 1], x.dtype)


def _max_or_zero(overlaps: tf.Tensor) -> tf.Tensor:
    """Row-wise max of [P, G] IoUs, 0 when G == 0 (IoUs are >= 0: the zero column changes nothing else)."""
    return tf.reduce_max(tf.concat([overlaps, _zero_column(overlaps)], axis=1), axis=1)


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config):
    """Targets for one image.

    proposals: [P, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_class_ids: [MAX_GT_INSTANCES] int, zero-padded; negative ids mark crowd boxes.
    gt_boxes: [MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_masks: [height, width, MAX_GT_INSTANCES] bool/float; full image size, or MINI_MASK_SHAPE when
        config.USE_MINI_MASK (each mask then covers its GT box).

    Returns, with T = TRAIN_ROIS_PER_IMAGE, zero-padded (negatives get zero targets):
        rois [T, 4] (positives first, then negatives), class_ids [T] int32, deltas [T, 4] (divided by
        BBOX_STD_DEV), masks [T, MASK_SHAPE[0], MASK_SHAPE[1]] float32 in {0, 1}.
    """
    num_rois = int(config.TRAIN_ROIS_PER_IMAGE)
    mask_shape = tuple(int(s) for s in config.MASK_SHAPE)

    proposals, _ = trim_zeros_graph(tf.cast(proposals, tf.float32), name="trim_proposals")
    gt_boxes, non_zeros = trim_zeros_graph(tf.cast(gt_boxes, tf.float32), name="trim_gt_boxes")
    gt_class_ids = tf.boolean_mask(tf.cast(gt_class_ids, tf.int32), non_zeros)
    gt_masks = tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), non_zeros)  # [G, h, w]

    # Crowd boxes (negative class ids) are not targets; proposals overlapping them are not negatives.
    is_crowd = gt_class_ids < 0
    crowd_boxes = tf.boolean_mask(gt_boxes, is_crowd)
    is_instance = gt_class_ids > 0
    gt_class_ids = tf.boolean_mask(gt_class_ids, is_instance)
    gt_boxes = tf.boolean_mask(gt_boxes, is_instance)
    gt_masks = tf.boolean_mask(gt_masks, is_instance)

    overlaps = overlaps_graph(proposals, gt_boxes)  # [P, G]
    no_crowd = _max_or_zero(overlaps_graph(proposals, crowd_boxes)) < 0.001
    roi_iou_max = _max_or_zero(overlaps)
    positive_indices = tf.where(roi_iou_max >= 0.5)[:, 0]
    negative_indices = tf.where(tf.logical_and(roi_iou_max < 0.5, no_crowd))[:, 0]

    positive_quota = int(num_rois * config.ROI_POSITIVE_RATIO)
    positive_indices = tf.random.shuffle(positive_indices)[:positive_quota]
    positive_count = tf.shape(positive_indices)[0]
    negative_quota = (
        tf.cast(tf.cast(positive_count, tf.float32) / config.ROI_POSITIVE_RATIO, tf.int32) - positive_count
    )
    negative_indices = tf.random.shuffle(negative_indices)[:negative_quota]

    positive_rois = tf.gather(proposals, positive_indices)
    negative_rois = tf.gather(proposals, negative_indices)

    # Each positive ROI targets the GT box it overlaps most.
    positive_overlaps = tf.gather(overlaps, positive_indices)
    # The zero column keeps argmax defined when there is no GT (then there are no positives either).
    positive_overlaps = tf.concat([positive_overlaps, _zero_column(positive_overlaps)], axis=1)
    assignment = tf.argmax(positive_overlaps, axis=1, output_type=tf.int32)
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    roi_class_ids = tf.gather(gt_class_ids, assignment)
    std_dev = tf.constant(np.asarray(config.BBOX_STD_DEV, np.float32).reshape(4))
    deltas = box_refinement_graph(positive_rois, roi_gt_boxes) / std_dev

    roi_masks = tf.cast(tf.gather(gt_masks, assignment), tf.float32)[..., tf.newaxis]
    crop_boxes = positive_rois
    if config.USE_MINI_MASK:
        # Mini masks span their GT box: express the ROI in that box's [0, 1] frame.
        gt_y1, gt_x1, gt_y2, gt_x2 = tf.unstack(roi_gt_boxes, axis=1)
        y1, x1, y2, x2 = tf.unstack(positive_rois, axis=1)
        gt_h = gt_y2 - gt_y1
        gt_w = gt_x2 - gt_x1
        crop_boxes = tf.stack(
            [(y1 - gt_y1) / gt_h, (x1 - gt_x1) / gt_w, (y2 - gt_y1) / gt_h, (x2 - gt_x1) / gt_w], axis=1
        )
    masks = tf.image.crop_and_resize(
        roi_masks, crop_boxes, tf.range(tf.shape(crop_boxes)[0]), mask_shape, method="bilinear"
    )
    masks = tf.round(tf.squeeze(masks, axis=3))

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    negative_count = tf.shape(negative_rois)[0]
    padding = tf.maximum(num_rois - tf.shape(rois)[0], 0)
    target_padding = negative_count + padding
    rois = tf.pad(rois, [(0, padding), (0, 0)])
    roi_class_ids = tf.pad(roi_class_ids, [(0, target_padding)])
    deltas = tf.pad(deltas, [(0, target_padding), (0, 0)])
    masks = tf.pad(masks, [(0, target_padding), (0, 0), (0, 0)])

    rois = tf.ensure_shape(rois, (num_rois, 4))
    roi_class_ids = tf.ensure_shape(roi_class_ids, (num_rois,))
    deltas = tf.ensure_shape(deltas, (num_rois, 4))
    masks = tf.ensure_shape(masks, (num_rois, *mask_shape))
    return rois, roi_class_ids, deltas, masks


class DetectionTargetLayer(keras.layers.Layer):
    """Samples ROIs from the proposals and builds their class, box and mask targets (training only).

    call([proposals, gt_class_ids, gt_boxes, gt_masks]):
        proposals: [B, P, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [B, MAX_GT_INSTANCES] int (negative = crowd).
        gt_boxes: [B, MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized.
        gt_masks: [B, height, width, MAX_GT_INSTANCES] bool (full size or mini masks, see USE_MINI_MASK).
    Returns, with T = TRAIN_ROIS_PER_IMAGE:
        rois [B, T, 4] normalized, target_class_ids [B, T] int32, target_bbox [B, T, (dy, dx, log(dh),
        log(dw))] divided by BBOX_STD_DEV, target_mask [B, T, MASK_SHAPE[0], MASK_SHAPE[1]] float32.
    No gradient flows through the outputs.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        num_rois = int(self.config.TRAIN_ROIS_PER_IMAGE)
        mask_shape = tuple(int(s) for s in self.config.MASK_SHAPE)
        outputs = tf.map_fn(
            lambda args: detection_targets_graph(*args, self.config),
            (proposals, gt_class_ids, gt_boxes, gt_masks),
            fn_output_signature=(
                tf.TensorSpec((num_rois, 4), tf.float32),
                tf.TensorSpec((num_rois,), tf.int32),
                tf.TensorSpec((num_rois, 4), tf.float32),
                tf.TensorSpec((num_rois, *mask_shape), tf.float32),
            ),
        )
        return [tf.stop_gradient(o) for o in outputs]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        num_rois = int(self.config.TRAIN_ROIS_PER_IMAGE)
        mask_shape = tuple(int(s) for s in self.config.MASK_SHAPE)
        return [(batch, num_rois, 4), (batch, num_rois), (batch, num_rois, 4), (batch, num_rois, *mask_shape)]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([tuple(x.shape) for x in inputs])
        dtypes = ["float32", "int32", "float32", "float32"]
        return [keras.KerasTensor(s, dtype=d) for s, d in zip(shapes, dtypes, strict=True)]
