"""Region Proposal Network head, shared across pyramid levels as a nested model named ``rpn_model``."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers as KL

from mrcnn.modeling.layers import FastConv2D


def rpn_graph(feature_map, anchors_per_location: int, anchor_stride: int) -> list:
    """RPN head on one feature map [B, H, W, depth].

    Returns rpn_class_logits [B, A, 2] (bg/fg logits), rpn_probs [B, A, 2] (softmax) and
    rpn_bbox [B, A, (dy, dx, log(dh), log(dw))], with A = H/stride * W/stride * anchors_per_location,
    ordered by (y, x, anchor) like the anchors of ``generate_pyramid_anchors``.
    """
    shared = FastConv2D(
        512, (3, 3), padding="same", activation="relu", strides=anchor_stride, name="rpn_conv_shared"
    )(feature_map)
    x = FastConv2D(
        2 * anchors_per_location, (1, 1), padding="valid", activation="linear", name="rpn_class_raw"
    )(shared)
    rpn_class_logits = KL.Reshape((-1, 2), name="rpn_class_logits_reshape")(x)
    rpn_probs = KL.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = FastConv2D(
        4 * anchors_per_location, (1, 1), padding="valid", activation="linear", name="rpn_bbox_pred"
    )(shared)
    rpn_bbox = KL.Reshape((-1, 4), name="rpn_bbox_reshape")(x)
    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride: int, anchors_per_location: int, depth: int) -> keras.Model:
    """Keras model "rpn_model": input ``input_rpn_feature_map`` [B, H, W, depth] ->
    [rpn_class_logits [B, A, 2], rpn_probs [B, A, 2], rpn_bbox [B, A, 4]].
    Saved as one group in Matterport's .h5 files, weights rpn_conv_shared, rpn_class_raw, rpn_bbox_pred.
    """
    input_feature_map = keras.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(input_feature_map, anchors_per_location, anchor_stride)
    return keras.Model(input_feature_map, outputs, name="rpn_model")


def rpn_over_pyramid(rpn_model: keras.Model, feature_maps: Sequence) -> list:
    """Apply ``rpn_model`` to each level of ``feature_maps`` ([P2..P6]) and concatenate along the anchors.

    Returns [rpn_class_logits [B, A, 2], rpn_class [B, A, 2], rpn_bbox [B, A, 4]] from layers named
    "rpn_class_logits", "rpn_class" and "rpn_bbox"; A sums the levels, in the order of ``feature_maps``.
    """
    per_level = [rpn_model(p) for p in feature_maps]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    return [
        KL.Concatenate(axis=1, name=name)([outputs[i] for outputs in per_level])
        for i, name in enumerate(names)
    ]
