"""Second-stage heads: box classifier/regressor and mask predictor on FPN ROI-aligned features.

Matterport wraps the per-ROI layers in ``TimeDistributed``; here the ROI axis is folded into the batch axis
([B, N, ...] -> [B * N, ...]) around plain layers that carry the same names and weights, then unfolded.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers as KL

from mrcnn.modeling.layers import BatchNorm, FastConv2D, FastConv2DTranspose, FlattenRois, UnflattenRois
from mrcnn.modeling.roi_align import PyramidROIAlign


def fpn_classifier_graph(
    rois,
    feature_maps: Sequence,
    image_meta,
    pool_size: int,
    num_classes: int,
    train_bn: bool = True,
    fc_layers_size: int = 1024,
) -> list:
    """Classifier and box-regression head.

    rois: [B, N, (y1, x1, y2, x2)] normalized proposals (zero-padded rows allowed).
    feature_maps: [P2, P3, P4, P5], each [B, h_i, w_i, C].
    image_meta: [B, IMAGE_META_SIZE].
    Returns mrcnn_class_logits [B, N, num_classes], mrcnn_class (softmax probs) [B, N, num_classes] and
    mrcnn_bbox [B, N, num_classes, (dy, dx, log(dh), log(dw))] (deltas scaled by BBOX_STD_DEV).
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier")(
        [rois, image_meta, *feature_maps]
    )
    pooled = x  # [B, N, pool, pool, C]
    x = FlattenRois(name="mrcnn_class_flatten_rois")(x)
    # Two 1024-wide "fully connected" layers, the first as a pool_size x pool_size valid conv.
    x = FastConv2D(fc_layers_size, (pool_size, pool_size), padding="valid", name="mrcnn_class_conv1")(x)
    x = BatchNorm(name="mrcnn_class_bn1", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    x = FastConv2D(fc_layers_size, (1, 1), name="mrcnn_class_conv2")(x)
    x = BatchNorm(name="mrcnn_class_bn2", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    shared = UnflattenRois(inner_shape=(fc_layers_size,), name="pool_squeeze")([x, pooled])  # [B, N, fc]

    # Dense acts on the last axis, so no ROI folding is needed for the [B, N, fc] tensors.
    mrcnn_class_logits = KL.Dense(num_classes, name="mrcnn_class_logits")(shared)
    mrcnn_probs = KL.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)
    x = KL.Dense(num_classes * 4, activation="linear", name="mrcnn_bbox_fc")(shared)
    mrcnn_bbox = KL.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return [mrcnn_class_logits, mrcnn_probs, mrcnn_bbox]


def build_fpn_mask_graph(
    rois,
    feature_maps: Sequence,
    image_meta,
    pool_size: int,
    num_classes: int,
    train_bn: bool = True,
):
    """Mask head.

    rois: [B, N, (y1, x1, y2, x2)] normalized. feature_maps: [P2, P3, P4, P5].
    image_meta: [B, IMAGE_META_SIZE].
    pool_size: ROI Align size (MASK_POOL_SIZE, 14).
    Returns masks [B, N, 2 * pool_size, 2 * pool_size, num_classes], sigmoid probabilities per class.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask")([rois, image_meta, *feature_maps])
    pooled = x
    x = FlattenRois(name="mrcnn_mask_flatten_rois")(x)
    for i in range(1, 5):
        x = FastConv2D(256, (3, 3), padding="same", name=f"mrcnn_mask_conv{i}")(x)
        x = BatchNorm(name=f"mrcnn_mask_bn{i}", train_bn=train_bn)(x)
        x = KL.Activation("relu")(x)
    x = FastConv2DTranspose(256, (2, 2), strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    x = FastConv2D(num_classes, (1, 1), strides=1, activation="sigmoid", name="mrcnn_mask")(x)
    return UnflattenRois(name="mrcnn_mask_unflatten_rois")([x, pooled])
