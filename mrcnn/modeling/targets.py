"""Training targets for the classifier and mask heads: sample ROIs and match them to ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.graph_utils import box_refinement_graph, overlaps_graph, trim_zeros_graph
from mrcnn.modeling.layers import plain_float, plain_floats, plain_int, plain_ints


def _zero_column(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros([tf.shape(x)[0], 1], x.dtype)


def _max_or_zero(overlaps: tf.Tensor) -> tf.Tensor:
    """Row-wise max of [P, G] IoUs, 0 when G == 0 (IoUs are >= 0: the zero column changes nothing else)."""
    return tf.reduce_max(tf.concat([overlaps, _zero_column(overlaps)], axis=1), axis=1)


def _digest(values: tf.Tensor) -> tf.Tensor:
    """An int32 that changes when any of ``values`` (float32) changes or moves: the bits of their
    position-weighted sum."""
    flat = tf.reshape(tf.cast(values, tf.float32), [-1])
    weights = tf.cast(tf.range(1, tf.size(flat) + 1), tf.float32)
    return tf.bitcast(tf.reduce_sum(flat * weights), tf.int32)


def sampling_seeds(proposals: tf.Tensor, gt_boxes: tf.Tensor) -> tf.Tensor:
    """[2, 2] int32: the seeds of one image's positive and negative ROI sampling, a function of its proposals
    and GT boxes only.

    The sampling is thereby a function of the weights and the data, not of a random state that lives in the
    graph's kernels: a resumed run (a new process, a new graph) draws the same ROIs as a run never stopped, and
    one replica draws for an image what two replicas would. The proposals change at every step while the RPN or
    anything below it trains (every layer group of Matterport's); with those frozen and no augmentation, an image
    gets the same ROIs each epoch.
    """
    return tf.random.experimental.stateless_split(tf.stack([_digest(proposals), _digest(gt_boxes)]), 2)


def detection_targets_graph(
    proposals,
    gt_class_ids,
    gt_boxes,
    gt_masks,
    *,
    num_rois: int,
    positive_ratio: float,
    mask_shape: Sequence[int],
    bbox_std_dev: Sequence[float],
    use_mini_mask: bool,
    gt_attributes=None,
    gt_attribute_weights=None,
):
    """Targets for one image.

    proposals: [P, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_class_ids: [G] int, zero-padded; negative ids mark crowd boxes.
    gt_boxes: [G, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_masks: [height, width, G] bool/float; full image size, or mini masks when ``use_mini_mask`` (each mask
        then covers its GT box).
    num_rois: ROIs sampled per image (TRAIN_ROIS_PER_IMAGE). positive_ratio: largest share of positive ROIs
        (ROI_POSITIVE_RATIO). mask_shape: (height, width) of the mask targets (MASK_SHAPE).
    bbox_std_dev: the 4 factors the box targets are divided by (BBOX_STD_DEV).
    gt_attributes, gt_attribute_weights: optional [G, A] float32, zero-padded like gt_class_ids: each
        instance's multi-hot attributes and their loss weights (0 where not labelled). Give both or neither.
    (Matterport's ``detection_targets_graph(..., config)`` is in :mod:`mrcnn.matterport_compat`.)
    Positives and negatives are drawn at random with seeds made from the proposals and GT boxes
    (:func:`sampling_seeds`): the same inputs always give the same ROIs.

    Returns, with T = num_rois, zero-padded (negatives get zero targets):
        rois [T, 4] (positives first, then negatives), class_ids [T] int32, deltas [T, 4] (divided by
        bbox_std_dev), masks [T, mask_shape[0], mask_shape[1]] float32 in {0, 1}; with attributes also
        attributes [T, A] and attribute_weights [T, A] float32: each positive ROI's matched instance's rows,
        zero (weight 0) for negatives and padding.
    """
    with_attributes = gt_attributes is not None
    num_rois = int(num_rois)
    mask_shape = tuple(int(s) for s in mask_shape)

    proposals, _ = trim_zeros_graph(tf.cast(proposals, tf.float32), name="trim_proposals")
    gt_boxes, non_zeros = trim_zeros_graph(tf.cast(gt_boxes, tf.float32), name="trim_gt_boxes")
    gt_class_ids = tf.boolean_mask(tf.cast(gt_class_ids, tf.int32), non_zeros)
    gt_masks = tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), non_zeros)  # [G, h, w]
    if with_attributes:
        gt_attributes = tf.boolean_mask(tf.cast(gt_attributes, tf.float32), non_zeros)
        gt_attribute_weights = tf.boolean_mask(tf.cast(gt_attribute_weights, tf.float32), non_zeros)

    # Crowd boxes (negative class ids) are not targets; proposals overlapping them are not negatives.
    is_crowd = gt_class_ids < 0
    crowd_boxes = tf.boolean_mask(gt_boxes, is_crowd)
    is_instance = gt_class_ids > 0
    gt_class_ids = tf.boolean_mask(gt_class_ids, is_instance)
    gt_boxes = tf.boolean_mask(gt_boxes, is_instance)
    gt_masks = tf.boolean_mask(gt_masks, is_instance)
    if with_attributes:
        gt_attributes = tf.boolean_mask(gt_attributes, is_instance)
        gt_attribute_weights = tf.boolean_mask(gt_attribute_weights, is_instance)

    overlaps = overlaps_graph(proposals, gt_boxes)  # [P, G]
    no_crowd = _max_or_zero(overlaps_graph(proposals, crowd_boxes)) < 0.001
    roi_iou_max = _max_or_zero(overlaps)
    positive_indices = tf.where(roi_iou_max >= 0.5)[:, 0]
    negative_indices = tf.where(tf.logical_and(roi_iou_max < 0.5, no_crowd))[:, 0]

    seeds = sampling_seeds(proposals, gt_boxes)
    positive_quota = int(num_rois * positive_ratio)
    positive_indices = tf.random.experimental.stateless_shuffle(positive_indices, seeds[0])[:positive_quota]
    positive_count = tf.shape(positive_indices)[0]
    negative_quota = tf.cast(tf.cast(positive_count, tf.float32) / positive_ratio, tf.int32) - positive_count
    negative_indices = tf.random.experimental.stateless_shuffle(negative_indices, seeds[1])[:negative_quota]

    positive_rois = tf.gather(proposals, positive_indices)
    negative_rois = tf.gather(proposals, negative_indices)

    # Each positive ROI targets the GT box it overlaps most.
    positive_overlaps = tf.gather(overlaps, positive_indices)
    # The zero column keeps argmax defined when there is no GT (then there are no positives either).
    positive_overlaps = tf.concat([positive_overlaps, _zero_column(positive_overlaps)], axis=1)
    assignment = tf.argmax(positive_overlaps, axis=1, output_type=tf.int32)
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    roi_class_ids = tf.gather(gt_class_ids, assignment)
    std_dev = tf.constant(np.asarray(bbox_std_dev, np.float32).reshape(4))
    deltas = box_refinement_graph(positive_rois, roi_gt_boxes) / std_dev

    roi_masks = tf.cast(tf.gather(gt_masks, assignment), tf.float32)[..., tf.newaxis]
    crop_boxes = positive_rois
    if use_mini_mask:
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
    if not with_attributes:
        return rois, roi_class_ids, deltas, masks
    # gather of an empty [0, A] table (no GT) with no positives gives [0, A]; the padding fills the rows.
    roi_attributes = tf.pad(tf.gather(gt_attributes, assignment), [(0, target_padding), (0, 0)])
    roi_weights = tf.pad(tf.gather(gt_attribute_weights, assignment), [(0, target_padding), (0, 0)])
    num_attributes = gt_attributes.shape[-1]
    roi_attributes = tf.ensure_shape(roi_attributes, (num_rois, num_attributes))
    roi_weights = tf.ensure_shape(roi_weights, (num_rois, num_attributes))
    return rois, roi_class_ids, deltas, masks, roi_attributes, roi_weights


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Samples ROIs from the proposals and builds their class, box and mask targets (training only).

    num_rois, positive_ratio, mask_shape, bbox_std_dev, use_mini_mask: see :func:`detection_targets_graph`
    (:func:`mrcnn.modeling.build.detection_target_args` reads them from a ``Config``).
    num_attributes: A, the attributes per instance (NUM_ATTRIBUTES); 0 for none.

    call([proposals, gt_class_ids, gt_boxes, gt_masks]), or with num_attributes > 0
    call([proposals, gt_class_ids, gt_boxes, gt_masks, gt_attributes, gt_attribute_weights]):
        proposals: [B, P, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [B, MAX_GT_INSTANCES] int (negative = crowd).
        gt_boxes: [B, MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized.
        gt_masks: [B, height, width, MAX_GT_INSTANCES] bool (full size or mini masks, see use_mini_mask).
        gt_attributes, gt_attribute_weights: [B, MAX_GT_INSTANCES, A] float32 multi-hot attributes and their
            loss weights.
    Returns, with T = num_rois:
        rois [B, T, 4] normalized, target_class_ids [B, T] int32, target_bbox [B, T, (dy, dx, log(dh),
        log(dw))] divided by bbox_std_dev, target_mask [B, T, mask_shape[0], mask_shape[1]] float32; with
        attributes also target_attributes and target_attribute_weights [B, T, A] float32.
    No gradient flows through the outputs.
    """

    def __init__(
        self,
        num_rois: int,
        positive_ratio: float,
        mask_shape: Sequence[int],
        bbox_std_dev: Sequence[float],
        use_mini_mask: bool,
        num_attributes: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_attributes = plain_int(num_attributes, "num_attributes", self)
        self.num_rois = plain_int(num_rois, "num_rois", self)
        self.positive_ratio = plain_float(positive_ratio, "positive_ratio", self)
        self.mask_shape = plain_ints(mask_shape, "mask_shape", self, length=2)
        self.bbox_std_dev = plain_floats(bbox_std_dev, "bbox_std_dev", self, length=4)
        self.use_mini_mask = bool(use_mini_mask)

    def _targets(self, args):
        proposals, gt_class_ids, gt_boxes, gt_masks, *attributes = args
        return detection_targets_graph(
            proposals,
            gt_class_ids,
            gt_boxes,
            gt_masks,
            num_rois=self.num_rois,
            positive_ratio=self.positive_ratio,
            mask_shape=self.mask_shape,
            bbox_std_dev=self.bbox_std_dev,
            use_mini_mask=self.use_mini_mask,
            **(dict(zip(("gt_attributes", "gt_attribute_weights"), attributes)) if attributes else {}),
        )

    def _expected_inputs(self) -> int:
        return 6 if self.num_attributes else 4

    def call(self, inputs):
        inputs = list(inputs)
        if len(inputs) != self._expected_inputs():
            raise ValueError(
                f"{self.name}: expected {self._expected_inputs()} inputs with num_attributes="
                f"{self.num_attributes}, got {len(inputs)}"
            )
        n = self.num_rois
        signature = [
            tf.TensorSpec((n, 4), tf.float32),
            tf.TensorSpec((n,), tf.int32),
            tf.TensorSpec((n, 4), tf.float32),
            tf.TensorSpec((n, *self.mask_shape), tf.float32),
        ]
        if self.num_attributes:
            signature += [tf.TensorSpec((n, self.num_attributes), tf.float32)] * 2
            inputs[4:] = [tf.cast(x, tf.float32) for x in inputs[4:]]
        outputs = tf.map_fn(self._targets, tuple(inputs), fn_output_signature=tuple(signature))
        return [tf.stop_gradient(o) for o in outputs]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        n = self.num_rois
        shapes = [(batch, n, 4), (batch, n), (batch, n, 4), (batch, n, *self.mask_shape)]
        if self.num_attributes:
            shapes += [(batch, n, self.num_attributes)] * 2
        return shapes

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([tuple(x.shape) for x in inputs])
        dtypes = ["float32", "int32", "float32", "float32"] + ["float32"] * (2 if self.num_attributes else 0)
        return [keras.KerasTensor(s, dtype=d) for s, d in zip(shapes, dtypes, strict=True)]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_attributes=self.num_attributes,
            num_rois=self.num_rois,
            positive_ratio=self.positive_ratio,
            mask_shape=self.mask_shape,
            bbox_std_dev=self.bbox_std_dev,
            use_mini_mask=self.use_mini_mask,
        )
        return config
