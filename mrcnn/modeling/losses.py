"""The five Mask R-CNN losses, and the attribute head's. Each returns a float32 scalar, 0 when there is nothing to
average.

``LOSS_FUNCTIONS`` names them after the training graph's loss outputs, so a loss layer can be saved by name.
"""

from __future__ import annotations

import tensorflow as tf

_EPSILON = 1e-7  # Keras' fuzz factor, as in its binary cross-entropy.


def smooth_l1_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Element-wise smooth L1 (Huber with delta 1): 0.5 d^2 where |d| < 1, else |d| - 0.5."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def _mean_or_zero(values: tf.Tensor) -> tf.Tensor:
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def _squeeze_match(rpn_match: tf.Tensor) -> tf.Tensor:
    """[B, A, 1] or [B, A] anchor match (1 positive, -1 negative, 0 neutral) -> [B, A] int32."""
    rpn_match = tf.cast(rpn_match, tf.int32)
    if rpn_match.shape.rank == 3:
        rpn_match = tf.squeeze(rpn_match, axis=-1)
    return rpn_match


def rpn_class_loss_graph(rpn_match: tf.Tensor, rpn_class_logits: tf.Tensor) -> tf.Tensor:
    """RPN anchor classifier loss.

    rpn_match: [B, A, 1] (or [B, A]) int, 1 positive, -1 negative, 0 neutral (ignored).
    rpn_class_logits: [B, A, (bg logit, fg logit)].
    Returns the mean softmax cross-entropy over the non-neutral anchors.
    """
    rpn_match = _squeeze_match(rpn_match)
    indices = tf.where(tf.not_equal(rpn_match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(rpn_match, indices), 1), tf.int32)
    logits = tf.gather_nd(tf.cast(rpn_class_logits, tf.float32), indices)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _mean_or_zero(loss)


def rpn_bbox_loss_graph(target_bbox: tf.Tensor, rpn_match: tf.Tensor, rpn_bbox: tf.Tensor) -> tf.Tensor:
    """RPN box regression loss over positive anchors.

    (Matterport's ``rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox)`` is in
    :mod:`mrcnn.matterport_compat`; the config was only read for the batch size, which comes from the tensors.)
    target_bbox: [B, RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh), log(dw))]; the targets of each image's
        positive anchors packed at the front, in anchor order, zero-padded.
    rpn_match: [B, A, 1] (or [B, A]) int. rpn_bbox: [B, A, 4] predicted deltas.
    Returns the mean smooth-L1 over all coordinates of the positive anchors.
    """
    rpn_match = _squeeze_match(rpn_match)
    positive = tf.equal(rpn_match, 1)
    # Rank of each positive anchor among its image's positives = its row in target_bbox.
    rank = tf.cumsum(tf.cast(positive, tf.int32), axis=1) - 1
    positive = tf.logical_and(positive, rank < tf.shape(target_bbox)[1])
    indices = tf.where(positive)
    pred = tf.gather_nd(tf.cast(rpn_bbox, tf.float32), indices)
    target_indices = tf.stack([tf.cast(indices[:, 0], tf.int32), tf.gather_nd(rank, indices)], axis=1)
    target = tf.gather_nd(tf.cast(target_bbox, tf.float32), target_indices)
    return _mean_or_zero(smooth_l1_loss(target, pred))


def mrcnn_class_loss_graph(
    target_class_ids: tf.Tensor, pred_class_logits: tf.Tensor, active_class_ids: tf.Tensor
) -> tf.Tensor:
    """Classifier head loss.

    target_class_ids: [B, T] int (0 for negatives and padding).
    pred_class_logits: [B, T, NUM_CLASSES].
    active_class_ids: [B, NUM_CLASSES], 1 for the classes of the image's dataset, else 0.
    Cross-entropy of each ROI, counted only where the *predicted* class is active in that image (so
    predictions of classes that a dataset does not have are not penalised); averaged over those ROIs.
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    logits = tf.cast(pred_class_logits, tf.float32)
    pred_class_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_class_ids, batch_dims=1)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * pred_active), tf.reduce_sum(pred_active))


def _positive_rois(target_class_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Flat indices and class ids of the ROIs with a positive class."""
    class_ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    positive_ix = tf.where(class_ids > 0)[:, 0]
    return positive_ix, tf.gather(class_ids, positive_ix)


def mrcnn_bbox_loss_graph(
    target_bbox: tf.Tensor, target_class_ids: tf.Tensor, pred_bbox: tf.Tensor
) -> tf.Tensor:
    """Box head loss.

    target_bbox: [B, T, (dy, dx, log(dh), log(dw))]. target_class_ids: [B, T] int.
    pred_bbox: [B, T, NUM_CLASSES, 4].
    Mean smooth-L1 over all coordinates of the positive ROIs, using the true class's predicted deltas.
    """
    positive_ix, positive_class_ids = _positive_rois(target_class_ids)
    target = tf.gather(tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4]), positive_ix)
    pred_bbox = tf.cast(pred_bbox, tf.float32)
    pred_bbox = tf.reshape(pred_bbox, [-1, tf.shape(pred_bbox)[2], 4])
    pred = tf.gather_nd(pred_bbox, tf.stack([tf.cast(positive_ix, tf.int32), positive_class_ids], axis=1))
    return _mean_or_zero(smooth_l1_loss(target, pred))


def mrcnn_mask_loss_graph(
    target_masks: tf.Tensor, target_class_ids: tf.Tensor, pred_masks: tf.Tensor
) -> tf.Tensor:
    """Mask head loss.

    target_masks: [B, T, height, width] in {0, 1}. target_class_ids: [B, T] int.
    pred_masks: [B, T, height, width, NUM_CLASSES] sigmoid probabilities.
    Mean binary cross-entropy over the pixels of the positive ROIs, using the true class's mask.
    """
    positive_ix, positive_class_ids = _positive_rois(target_class_ids)
    target_masks = tf.cast(target_masks, tf.float32)
    mask_shape = tf.shape(target_masks)[2:4]
    y_true = tf.gather(tf.reshape(target_masks, tf.concat([[-1], mask_shape], axis=0)), positive_ix)
    pred_masks = tf.cast(pred_masks, tf.float32)
    pred_shape = tf.shape(pred_masks)
    # [B*T, NUM_CLASSES, height, width] so one gather_nd picks a whole mask.
    pred_masks = tf.transpose(tf.reshape(pred_masks, tf.concat([[-1], pred_shape[2:]], axis=0)), [0, 3, 1, 2])
    y_pred = tf.gather_nd(pred_masks, tf.stack([tf.cast(positive_ix, tf.int32), positive_class_ids], axis=1))
    y_pred = tf.clip_by_value(y_pred, _EPSILON, 1.0 - _EPSILON)
    bce = -(y_true * tf.math.log(y_pred + _EPSILON) + (1.0 - y_true) * tf.math.log(1.0 - y_pred + _EPSILON))
    return _mean_or_zero(bce)


def mrcnn_attr_loss_graph(
    target_attributes: tf.Tensor,
    target_weights: tf.Tensor,
    target_class_ids: tf.Tensor,
    pred_logits: tf.Tensor,
) -> tf.Tensor:
    """Attribute head loss: the weighted mean sigmoid cross-entropy over the positive ROIs' attributes.

    target_attributes: [B, T, A] multi-hot (0/1) attributes of each ROI's matched ground-truth instance.
    target_weights: [B, T, A] >= 0, 1 where that instance is labelled for the attribute (0 for attributes its
        dataset does not annotate for its class, and for negative and padding ROIs).
    target_class_ids: [B, T] int; only ROIs with a positive class count.
    pred_logits: [B, T, A] attribute logits.
    With w = target_weights * (target_class_ids > 0) and the element-wise
    BCE(z, y) = max(z, 0) - z * y + log(1 + exp(-|z|)) (``tf.nn.sigmoid_cross_entropy_with_logits``):
        loss = sum(w * BCE(pred_logits, target_attributes)) / sum(w), and 0 when sum(w) == 0.
    """
    logits = tf.cast(pred_logits, tf.float32)
    labels = tf.cast(target_attributes, tf.float32)
    positive = tf.cast(tf.cast(target_class_ids, tf.int32) > 0, tf.float32)[..., tf.newaxis]
    weights = tf.cast(target_weights, tf.float32) * positive
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    # tf.where, not a product: rows that do not count add 0 even where their logits are not finite.
    weighted = tf.where(weights > 0, weights * bce, 0.0)
    return tf.math.divide_no_nan(tf.reduce_sum(weighted), tf.reduce_sum(weights))


# The training graph's loss outputs, in order, and the function that computes each (mrcnn_attr_loss only in a
# model with an attribute head).
LOSS_FUNCTIONS = {
    "rpn_class_loss": rpn_class_loss_graph,
    "rpn_bbox_loss": rpn_bbox_loss_graph,
    "mrcnn_class_loss": mrcnn_class_loss_graph,
    "mrcnn_bbox_loss": mrcnn_bbox_loss_graph,
    "mrcnn_mask_loss": mrcnn_mask_loss_graph,
    "mrcnn_attr_loss": mrcnn_attr_loss_graph,
}
