"""Second-stage heads: box classifier/regressor, mask predictor and attribute predictor on FPN ROI-aligned
features.

The attribute head (``Config.NUM_ATTRIBUTES > 0``) predicts an instance's attributes as independent sigmoids,
either from the classifier's fully connected features (one dense layer, "mrcnn_attr_logits") or from its own
ROI Align and fully connected layers (:func:`attribute_head_graph`); its layers are named ``mrcnn_attr_*``.

Matterport wraps the per-ROI layers in ``TimeDistributed``; here the ROI axis is folded into the batch axis
([B, N, ...] -> [B * N, ...]) around plain layers that carry the same names and weights, then unfolded.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers as KL

from mrcnn.modeling.layers import BatchNorm, FastConv2D, FastConv2DTranspose, FlattenRois, UnflattenRois
from mrcnn.modeling.roi_align import PyramidROIAlign


class ClassifierTrunk:
    """The classifier head's ROI Align and its two 1024-wide "fully connected" layers (Matterport's layers and
    names), created once and callable on several sets of ROIs with the same weights.

    fpn_classifier_graph calls it on the proposals; an attribute head that shares these features
    (``ATTRIBUTE_FC_LAYERS_SIZE = 0``) calls it again on the final detections at inference.

    call(rois [B, N, 4] normalized, feature_maps [P2..P5], image_meta [B, META]) -> [B, N, fc_layers_size].
    """

    def __init__(self, pool_size: int, fc_layers_size: int = 1024, train_bn: bool = True):
        self.fc_layers_size = int(fc_layers_size)
        self.align = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier")
        self.flatten = FlattenRois(name="mrcnn_class_flatten_rois")
        # The first "fully connected" layer is a pool_size x pool_size valid conv.
        self.conv1 = FastConv2D(
            fc_layers_size, (pool_size, pool_size), padding="valid", name="mrcnn_class_conv1"
        )
        self.bn1 = BatchNorm(name="mrcnn_class_bn1", train_bn=train_bn)
        self.relu1 = KL.Activation("relu")
        self.conv2 = FastConv2D(fc_layers_size, (1, 1), name="mrcnn_class_conv2")
        self.bn2 = BatchNorm(name="mrcnn_class_bn2", train_bn=train_bn)
        self.relu2 = KL.Activation("relu")
        self.squeeze = UnflattenRois(inner_shape=(fc_layers_size,), name="pool_squeeze")

    def __call__(self, rois, feature_maps: Sequence, image_meta):
        pooled = self.align([rois, image_meta, *feature_maps])  # [B, N, pool, pool, C]
        x = self.flatten(pooled)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.squeeze([x, pooled])  # [B, N, fc]


def classifier_outputs(shared, num_classes: int) -> list:
    """The class and box outputs on the trunk's features ``shared`` [B, N, fc] (see fpn_classifier_graph)."""
    # Dense acts on the last axis, so no ROI folding is needed for the [B, N, fc] tensors.
    mrcnn_class_logits = KL.Dense(num_classes, name="mrcnn_class_logits")(shared)
    mrcnn_probs = KL.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)
    x = KL.Dense(num_classes * 4, activation="linear", name="mrcnn_bbox_fc")(shared)
    mrcnn_bbox = KL.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return [mrcnn_class_logits, mrcnn_probs, mrcnn_bbox]


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
    trunk = ClassifierTrunk(pool_size, fc_layers_size, train_bn)
    return classifier_outputs(trunk(rois, feature_maps, image_meta), num_classes)


def attribute_logits_layer(num_attributes: int) -> KL.Dense:
    """The attribute head's last layer, "mrcnn_attr_logits": features [B, N, F] -> logits [B, N, A]."""
    return KL.Dense(num_attributes, name="mrcnn_attr_logits")


def attribute_probabilities(logits):
    """Sigmoid of the attribute logits, layer "mrcnn_attr": [B, N, A] -> [B, N, A] in [0, 1]."""
    return KL.Activation("sigmoid", name="mrcnn_attr")(logits)


def attribute_head_graph(
    rois,
    feature_maps: Sequence,
    image_meta,
    pool_size: int,
    num_attributes: int,
    fc_layers_size: int,
    train_bn: bool = True,
):
    """An attribute head with its own features: ROI Align ("mrcnn_attr_roi_align"), two fully connected layers
    of ``fc_layers_size`` ("mrcnn_attr_fc1"/"mrcnn_attr_bn1", "mrcnn_attr_fc2"/"mrcnn_attr_bn2", the first a
    pool_size x pool_size valid conv as in the classifier) and "mrcnn_attr_logits".

    rois: [B, N, (y1, x1, y2, x2)] normalized. feature_maps: [P2, P3, P4, P5]. image_meta: [B, META].
    Returns logits [B, N, num_attributes] (one independent sigmoid per attribute).
    """
    pooled = PyramidROIAlign([pool_size, pool_size], name="mrcnn_attr_roi_align")(
        [rois, image_meta, *feature_maps]
    )
    x = FlattenRois(name="mrcnn_attr_flatten_rois")(pooled)
    x = FastConv2D(fc_layers_size, (pool_size, pool_size), padding="valid", name="mrcnn_attr_fc1")(x)
    x = BatchNorm(name="mrcnn_attr_bn1", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    x = FastConv2D(fc_layers_size, (1, 1), name="mrcnn_attr_fc2")(x)
    x = BatchNorm(name="mrcnn_attr_bn2", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    x = UnflattenRois(inner_shape=(fc_layers_size,), name="mrcnn_attr_squeeze")([x, pooled])
    return attribute_logits_layer(num_attributes)(x)


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
