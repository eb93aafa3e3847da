"""RPN proposal layer: top anchors by score, refined, clipped and non-max suppressed."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from mrcnn.modeling.graph_utils import apply_box_deltas_graph, clip_boxes_graph
from mrcnn.modeling.layers import plain_float, plain_floats, plain_int

NMS_METHODS = ("map_fn", "padded", "combined")


def batched_nms(
    boxes: tf.Tensor, scores: tf.Tensor, max_output_size: int, iou_threshold: float, method: str = "combined"
) -> tf.Tensor:
    """Class-agnostic NMS for each image of a batch, zero-padded to a fixed size.

    boxes: [B, K, (y1, x1, y2, x2)] normalized, scores: [B, K] (ties and order do not matter).
    Returns [B, max_output_size, 4]: the kept boxes by decreasing score, then zero rows.
    method: "combined" (tf.image.combined_non_max_suppression, one class; the fastest on CPU), "map_fn"
    (tf.image.non_max_suppression per image) or "padded" (tf.image.non_max_suppression_padded). All three
    keep the same boxes; only boxes with exactly equal scores may come out in a different order.
    """
    if method == "map_fn":

        def one_image(args):
            image_boxes, image_scores = args
            keep = tf.image.non_max_suppression(image_boxes, image_scores, max_output_size, iou_threshold)
            kept = tf.gather(image_boxes, keep)
            padding = tf.maximum(max_output_size - tf.shape(kept)[0], 0)
            return tf.pad(kept, [(0, padding), (0, 0)])

        out = tf.map_fn(
            one_image,
            (boxes, scores),
            fn_output_signature=tf.TensorSpec((max_output_size, 4), boxes.dtype),
        )
    elif method == "padded":
        keep, num_valid = tf.image.non_max_suppression_padded(
            boxes,
            scores,
            max_output_size,
            iou_threshold=iou_threshold,
            pad_to_max_output_size=True,
            sorted_input=False,
            canonicalized_coordinates=True,
        )
        kept = tf.gather(boxes, keep, batch_dims=1)
        valid = tf.range(max_output_size)[tf.newaxis, :] < num_valid[:, tf.newaxis]
        out = tf.where(valid[..., tf.newaxis], kept, tf.zeros_like(kept))
    elif method == "combined":
        out, _, _, _ = tf.image.combined_non_max_suppression(
            boxes[:, :, tf.newaxis, :],
            scores[:, :, tf.newaxis],
            max_output_size_per_class=max_output_size,
            max_total_size=max_output_size,
            iou_threshold=iou_threshold,
            pad_per_class=False,
            clip_boxes=False,
        )
    else:
        raise ValueError(f"Unknown NMS method {method!r}; expected one of {NMS_METHODS}")
    return out


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Turns RPN outputs into region proposals.

    proposal_count: proposals kept per image after NMS (output rows, zero-padded); POST_NMS_ROIS_*.
    nms_threshold: IoU above which lower-scoring proposals are suppressed; RPN_NMS_THRESHOLD.
    pre_nms_limit: top-scoring anchors refined and passed to NMS; PRE_NMS_LIMIT.
    rpn_bbox_std_dev: the 4 factors the RPN's deltas were divided by; RPN_BBOX_STD_DEV.
    nms_method: see ``batched_nms``.
    (:func:`mrcnn.modeling.build.proposal_layer_args` reads these from a ``Config``; Matterport's
    ``ProposalLayer(proposal_count, nms_threshold, config)`` is :class:`mrcnn.matterport_compat.ProposalLayer`.)

    call([rpn_probs, rpn_bbox, anchors]):
        rpn_probs: [B, A, (bg prob, fg prob)].
        rpn_bbox: [B, A, (dy, dx, log(dh), log(dw))] as predicted (divided by rpn_bbox_std_dev).
        anchors: [B, A, (y1, x1, y2, x2)] normalized.
    Returns [B, proposal_count, (y1, x1, y2, x2)] normalized, by decreasing score, zero-padded.
    """

    def __init__(
        self,
        proposal_count: int,
        nms_threshold: float,
        pre_nms_limit: int = 6000,
        rpn_bbox_std_dev: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
        nms_method: str = "combined",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.proposal_count = plain_int(proposal_count, "proposal_count", self)
        self.nms_threshold = plain_float(nms_threshold, "nms_threshold", self)
        self.pre_nms_limit = plain_int(pre_nms_limit, "pre_nms_limit", self)
        self.rpn_bbox_std_dev = plain_floats(rpn_bbox_std_dev, "rpn_bbox_std_dev", self, length=4)
        if nms_method not in NMS_METHODS:
            raise ValueError(f"Unknown NMS method {nms_method!r}; expected one of {NMS_METHODS}")
        self.nms_method = nms_method

    def call(self, inputs):
        scores = inputs[0][..., 1]  # [B, A] foreground probability
        deltas = tf.cast(inputs[1], tf.float32) * tf.constant(self.rpn_bbox_std_dev, tf.float32)
        anchors = tf.cast(inputs[2], tf.float32)

        pre_nms_limit = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        scores, ix = tf.math.top_k(scores, pre_nms_limit, sorted=True, name="top_anchors")
        deltas = tf.gather(deltas, ix, batch_dims=1)
        anchors = tf.gather(anchors, ix, batch_dims=1)

        boxes = apply_box_deltas_graph(anchors, deltas)
        boxes = clip_boxes_graph(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
        proposals = batched_nms(boxes, scores, self.proposal_count, self.nms_threshold, self.nms_method)
        # Proposals are sampling decisions, not a differentiable output (the RPN has its own losses).
        return tf.stop_gradient(proposals)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            proposal_count=self.proposal_count,
            nms_threshold=self.nms_threshold,
            pre_nms_limit=self.pre_nms_limit,
            rpn_bbox_std_dev=self.rpn_bbox_std_dev,
            nms_method=self.nms_method,
        )
        return config
