"""Assembles the Mask R-CNN graphs (training and inference) from the modeling modules.

Both graphs share every weighted layer name with Matterport's, so their ``.h5`` files are interchangeable.

This is the one module of :mod:`mrcnn.modeling` that reads a :class:`~mrcnn.config.Config`: the graph builders
and the ``*_args(config)`` functions translate its settings into the explicit arguments of the layers and
head builders (the way detectron2's ``from_config`` keeps its modules free of the config object). Every
custom layer takes plain values, returns them from ``get_config`` and is registered with Keras, and the
graphs are :class:`MaskRCNNGraph` models, so ``keras_model.save("model.keras")`` and
``keras.saving.load_model("model.keras")`` (after ``import mrcnn.model``) round-trip a whole model.

Training inputs (B = batch, A = anchors, G = MAX_GT_INSTANCES):
    input_image [B, H, W, C] float32 (molded), input_image_meta [B, META], input_rpn_match [B, A, 1] int32,
    input_rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids [B, G] int32,
    input_gt_boxes [B, G, 4] pixel coordinates, input_gt_masks [B, mh, mw, G] bool,
    with NUM_ATTRIBUTES = A > 0 input_gt_attributes [B, G, A] float32 (multi-hot) and
    input_gt_attribute_weights [B, G, A] float32 (1 where labelled), and input_rois [B, N, 4] pixel
    coordinates when USE_RPN_ROIS is False.
Inference inputs: input_image, input_image_meta, input_anchors [B, A, 4] normalized.

With NUM_ATTRIBUTES = 0 the graphs are Matterport's (same layers, names and weights). With A > 0 an attribute
head (layers ``mrcnn_attr_*``, see :mod:`mrcnn.modeling.heads`) adds the training loss "mrcnn_attr_loss"
(:func:`loss_outputs`) and the inference output ``mrcnn_attr`` [B, DETECTION_MAX_INSTANCES, A], the attribute
probabilities of each detection (zero rows for padding), computed on the detections' boxes as the masks are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.boxes import norm_boxes
from mrcnn.config import ATTRIBUTE_LOSS_NAME, Config
from mrcnn.modeling import losses
from mrcnn.modeling.backbone import build_backbone
from mrcnn.modeling.detection import DetectionLayer
from mrcnn.modeling.fpn import fpn_graph
from mrcnn.modeling.graph_utils import norm_boxes_graph
from mrcnn.modeling.heads import (
    ClassifierTrunk,
    attribute_head_graph,
    attribute_logits_layer,
    attribute_probabilities,
    build_fpn_mask_graph,
    classifier_outputs,
)
from mrcnn.modeling.layers import fold_batch_norms, plain_floats, plain_int, plain_ints
from mrcnn.modeling.proposals import ProposalLayer
from mrcnn.modeling.roi_align import PyramidROIAlign
from mrcnn.modeling.rpn import build_rpn_model, rpn_over_pyramid
from mrcnn.modeling.targets import DetectionTargetLayer
from mrcnn.precision import keras_policy

LOSS_OUTPUTS = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")
ATTRIBUTE_INPUTS = ("input_gt_attributes", "input_gt_attribute_weights")


def loss_outputs(config: Config) -> tuple[str, ...]:
    """The names of the training graph's loss outputs, in order (its last outputs): LOSS_OUTPUTS, then
    "mrcnn_attr_loss" when the model has an attribute head (NUM_ATTRIBUTES > 0)."""
    return LOSS_OUTPUTS + ((ATTRIBUTE_LOSS_NAME,) if config.NUM_ATTRIBUTES else ())


def anchor_args(config: Config, image_shape) -> dict:
    """The settings of the pyramid anchors of ``config`` for an image of ``image_shape`` (h, w, ...): the
    arguments of :func:`normalized_pyramid_anchors` and :class:`ConstantAnchors`."""
    return dict(
        scales=[float(s) for s in config.RPN_ANCHOR_SCALES],
        ratios=[float(r) for r in config.RPN_ANCHOR_RATIOS],
        backbone_shapes=np.asarray(compute_backbone_shapes(config, image_shape), int).tolist(),
        feature_strides=[int(s) for s in config.BACKBONE_STRIDES],
        anchor_stride=int(config.RPN_ANCHOR_STRIDE),
        image_shape=[int(v) for v in image_shape[:2]],
    )


def normalized_pyramid_anchors(
    scales: Sequence[float],
    ratios: Sequence[float],
    backbone_shapes: Sequence[Sequence[int]],
    feature_strides: Sequence[int],
    anchor_stride: int,
    image_shape: Sequence[int],
) -> np.ndarray:
    """Anchors of every pyramid level (see :func:`mrcnn.anchors.generate_pyramid_anchors`) normalized to an
    image of ``image_shape`` (h, w): [A, (y1, x1, y2, x2)] float32."""
    anchors = generate_pyramid_anchors(scales, ratios, backbone_shapes, feature_strides, anchor_stride)
    return norm_boxes(anchors, tuple(image_shape[:2])).astype(np.float32)


def pyramid_anchors(config: Config, image_shape) -> np.ndarray:
    """Anchors of every pyramid level for an image of ``image_shape``: [A, (y1, x1, y2, x2)] normalized."""
    return normalized_pyramid_anchors(**anchor_args(config, image_shape))


@keras.saving.register_keras_serializable(package="mrcnn")
class ConstantAnchors(keras.layers.Layer):
    """Broadcasts a fixed anchor set to the batch: input image [B, ...] -> anchors [B, A, 4] normalized.

    The arguments are those of :func:`normalized_pyramid_anchors` (see :func:`anchor_args`): the layer saves
    these few settings and computes the anchors (tens of thousands of boxes) when it is created.
    """

    def __init__(
        self,
        scales: Sequence[float],
        ratios: Sequence[float],
        backbone_shapes: Sequence[Sequence[int]],
        feature_strides: Sequence[int],
        anchor_stride: int,
        image_shape: Sequence[int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.settings = dict(
            scales=plain_floats(scales, "scales", self),
            ratios=plain_floats(ratios, "ratios", self),
            backbone_shapes=[plain_ints(s, "backbone_shapes", self, length=2) for s in backbone_shapes],
            feature_strides=plain_ints(feature_strides, "feature_strides", self),
            anchor_stride=plain_int(anchor_stride, "anchor_stride", self),
            image_shape=plain_ints(image_shape, "image_shape", self, length=2),
        )
        self.anchors = normalized_pyramid_anchors(**self.settings)

    def call(self, image):
        batch = tf.shape(image)[0]
        anchors = tf.constant(self.anchors)
        return tf.broadcast_to(anchors[None], [batch, self.anchors.shape[0], 4])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.anchors.shape[0], 4)

    def get_config(self):
        config = super().get_config()
        config.update(self.settings)
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class NormBoxes(keras.layers.Layer):
    """Pixel boxes [B, N, 4] -> normalized boxes, using the size of the image tensor [B, H, W, C]."""

    def call(self, inputs):
        boxes, image = inputs
        return norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="mrcnn")
class LossLayer(keras.layers.Layer):
    """One of the losses of :mod:`mrcnn.modeling.losses` as a named graph output (a [1] tensor).

    loss: its name in :data:`mrcnn.modeling.losses.LOSS_FUNCTIONS` (e.g. "rpn_class_loss"); call(inputs)
    passes ``inputs`` to that function in order.
    """

    def __init__(self, loss: str, **kwargs):
        super().__init__(**kwargs)
        if loss not in losses.LOSS_FUNCTIONS:
            raise ValueError(f"Unknown loss {loss!r}; expected one of {sorted(losses.LOSS_FUNCTIONS)}")
        self.loss = loss

    def call(self, inputs):
        loss = losses.LOSS_FUNCTIONS[self.loss](*inputs)
        return tf.reshape(tf.cast(loss, tf.float32), [1])

    def compute_output_shape(self, input_shapes):
        return (1,)

    def get_config(self):
        config = super().get_config()
        config["loss"] = self.loss
        return config


# Why heads never run on zero rows: with oneDNN on (TensorFlow's default on CPUs with AVX-512 VNNI/BF16 or AMX,
# forced by TF_ENABLE_ONEDNN_OPTS=1), the fused Conv2D + BiasAdd (+ FusedBatchNorm) + Relu kernel rejects an
# input with zero rows ("input depth must be evenly divisible by filter depth: 64 vs 256") where the plain
# kernels return an empty tensor. The layers below that cut the mask head's rows to a data-dependent count
# therefore keep at least one row; the extra row is padding, which the losses and detect() ignore.
MIN_HEAD_ROWS = 1


@keras.saving.register_keras_serializable(package="mrcnn")
class PositiveRows(keras.layers.Layer):
    """call([rois, target_class_ids, *targets]) -> the same tensors cut to their first n rows, where n is the
    largest count of positive ROIs (target class id > 0) of any image in the batch, and at least
    MIN_HEAD_ROWS (see above: a step that samples no positive ROI must not give the mask head zero rows).

    The detection target layer puts each image's positives first, so the rows cut off are negatives and
    padding, which the mask loss ignores: the mask head, the costliest part of a training step on the CPU,
    then runs on the positives alone. rois [B, T, 4], target_class_ids [B, T], targets [B, T, ...] (e.g.
    target_mask [B, T, h, w]) -> [B, n, 4], [B, n], [B, n, ...].
    """

    def call(self, inputs):
        rois, class_ids, *targets = inputs
        positives = tf.reduce_sum(tf.cast(class_ids > 0, tf.int32), axis=1)
        n = tf.reduce_max(tf.concat([positives, [MIN_HEAD_ROWS]], axis=0))
        return [rois[:, :n], class_ids[:, :n], *(t[:, :n] for t in targets)]

    def compute_output_shape(self, input_shapes):
        return tuple((shape[0], None, *shape[2:]) for shape in input_shapes)


@keras.saving.register_keras_serializable(package="mrcnn")
class ValidDetectionBoxes(keras.layers.Layer):
    """detections [B, D, 6] -> boxes [B, n, 4], n the largest count of real detections of an image in the batch
    and at least MIN_HEAD_ROWS (an image without detections must not give the mask head zero rows, see above).

    The detection layer puts real detections first and pads with zeros, so the mask head can run on the
    first n boxes only: with a few garments per photo that is a small fraction of DETECTION_MAX_INSTANCES.
    """

    def call(self, detections):
        valid = tf.reduce_sum(tf.cast(detections[..., 4] > 0, tf.int32), axis=1)
        n = tf.reduce_max(tf.concat([valid, [MIN_HEAD_ROWS]], axis=0))
        return detections[:, :n, :4]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, 4)


@keras.saving.register_keras_serializable(package="mrcnn")
class PadDetections(keras.layers.Layer):
    """call([x, detections]): x [B, n, ...] (per-detection outputs of the first n rows) -> [B, max_instances, ...]
    holding x's rows where ``detections`` [B, D >= max_instances, 6] has a real detection (class id > 0) and
    zeros elsewhere: the padding after n, and rows computed for another image's detections or for the
    MIN_HEAD_ROWS minimum."""

    def __init__(self, max_instances: int, **kwargs):
        super().__init__(**kwargs)
        self.max_instances = plain_int(max_instances, "max_instances", self)

    def call(self, inputs):
        x, detections = inputs
        pad = self.max_instances - tf.shape(x)[1]
        paddings = tf.concat([[[0, 0], [0, pad]], tf.zeros([tf.rank(x) - 2, 2], tf.int32)], axis=0)
        padded = tf.pad(x, paddings)
        real = detections[:, : self.max_instances, 4] > 0  # [B, max_instances]
        real = tf.reshape(real, tf.concat([tf.shape(real), tf.ones([tf.rank(x) - 2], tf.int32)], axis=0))
        padded = tf.where(real, padded, tf.zeros_like(padded))
        # A reshape (not tf.ensure_shape) gives the static row count: TFLite has a builtin for it.
        return tf.reshape(padded, [tf.shape(x)[0], self.max_instances, *x.shape[2:]])

    def compute_output_shape(self, input_shapes):
        input_shape = input_shapes[0]
        return (input_shape[0], self.max_instances, *input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config["max_instances"] = self.max_instances
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class ActiveClassIds(keras.layers.Layer):
    """image_meta [B, META] -> active class ids [B, NUM_CLASSES] (the meta's last NUM_CLASSES values)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = plain_int(num_classes, "num_classes", self)

    def call(self, meta):
        return meta[:, -self.num_classes :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


# Under MIXED_PRECISION these stay float32: box math, ROI align, targets, detection, losses, and the layers that
# produce the model's outputs (the heads' last layers and what reshapes or concatenates them).
_FLOAT32_LAYER_TYPES = (
    ProposalLayer,
    PyramidROIAlign,
    DetectionTargetLayer,
    DetectionLayer,
    ConstantAnchors,
    NormBoxes,
    LossLayer,
    PositiveRows,
    ValidDetectionBoxes,
    PadDetections,
    ActiveClassIds,
)
_FLOAT32_LAYER_NAMES = frozenset(
    {
        "rpn_class_raw",
        "rpn_bbox_pred",
        "rpn_class_logits_reshape",
        "rpn_class_xxx",
        "rpn_bbox_reshape",
        "rpn_class_logits",
        "rpn_class",
        "rpn_bbox",
        "mrcnn_class_logits",
        "mrcnn_class",
        "mrcnn_bbox_fc",
        "mrcnn_bbox",
        "mrcnn_mask",
        "mrcnn_mask_unflatten_rois",
        "mrcnn_attr_logits",
        "mrcnn_attr",
    }
)


@contextlib.contextmanager
def dtype_policy(name: str | None):
    """Make ``name`` ("mixed_float16", "mixed_bfloat16"; None: no change) Keras' global dtype policy for the
    layers created inside the block, and restore the previous policy afterwards."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def keep_float32(model: keras.Model) -> None:
    """Give the box-math and output layers of ``model`` (nested models included) a float32 dtype policy.

    Keras casts a layer's floating inputs to its compute dtype, so these layers get float32 inputs (exact box
    coordinates) and return float32 outputs. Functional models call their layers anew on every run, so
    setting the policy after construction takes effect; none of these layers has half-precision weights.
    """
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            keep_float32(layer)
        if isinstance(layer, _FLOAT32_LAYER_TYPES) or layer.name in _FLOAT32_LAYER_NAMES:
            layer.dtype_policy = "float32"


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> None:
    """Set the moving-average momentum of every BatchNormalization layer of ``model`` (nested ones too).

    Keras reads it when the training step is traced, so setting it after construction takes effect.
    """
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            set_batch_norm_momentum(layer, momentum)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)


def _is_deserializable(cls) -> bool:
    """Whether ``keras.saving.load_model`` finds ``cls``: one of Keras' own classes, or a registered one."""
    if cls.__module__.split(".")[0] == "keras":
        return True
    return keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls


def unserializable_layers(model: keras.Model) -> list[str]:
    """The layers of ``model`` (nested models included) that ``keras.saving.load_model`` could not rebuild, as
    "name (module.Class)": custom classes neither from Keras nor registered with
    ``@keras.saving.register_keras_serializable()`` (e.g. one created by a callable BACKBONE)."""
    found = []
    for layer in model.layers:
        if not _is_deserializable(type(layer)):
            found.append(f"{layer.name} ({type(layer).__module__}.{type(layer).__qualname__})")
        elif isinstance(layer, keras.Model):
            found.extend(unserializable_layers(layer))
    return found


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskRCNNGraph(keras.Model):
    """The functional Keras model of a Mask R-CNN graph, built by :func:`build_training_model` or
    :func:`build_inference_model`; ``MaskRCNN.keras_model`` is one.

    It saves to Keras' ``.keras`` format (``model.save(path)``) and ``keras.saving.load_model(path)`` rebuilds
    it, once :mod:`mrcnn.model` (or :mod:`mrcnn.modeling.build`) is imported so the custom layers are
    registered. Rebuilding re-applies what the builders set after construction: the float32 policies of
    ``keep_float32`` and the BatchNorm momentum travel in the layers' configs; the BatchNorm folding (weak
    references between layers, see :func:`~mrcnn.modeling.layers.fold_batch_norms`) is redone by
    :meth:`from_config`. Saving a graph that holds a layer Keras could not rebuild raises a ValueError.
    """

    def get_config(self):
        missing = unserializable_layers(self)
        if missing:
            raise ValueError(
                f"cannot save {self.name!r} in the .keras format: keras.saving.load_model could not rebuild "
                f"{', '.join(missing)}. Decorate those classes with "
                "@keras.saving.register_keras_serializable() and give them get_config(), or save the weights "
                "only (MaskRCNN.save_weights)."
            )
        return super().get_config()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = super().from_config(config, custom_objects=custom_objects)
        fold_batch_norms(model)
        return model


def proposal_layer_args(config: Config, mode: str) -> dict:
    """:class:`ProposalLayer` arguments for ``mode`` ("training" or "inference") from ``config``."""
    count = config.POST_NMS_ROIS_TRAINING if mode == "training" else config.POST_NMS_ROIS_INFERENCE
    return dict(
        proposal_count=int(count),
        nms_threshold=float(config.RPN_NMS_THRESHOLD),
        pre_nms_limit=int(config.PRE_NMS_LIMIT),
        rpn_bbox_std_dev=[float(v) for v in np.asarray(config.RPN_BBOX_STD_DEV).reshape(4)],
    )


def detection_target_args(config: Config) -> dict:
    """:class:`DetectionTargetLayer` (and ``detection_targets_graph``) arguments from ``config``."""
    return dict(
        num_rois=int(config.TRAIN_ROIS_PER_IMAGE),
        positive_ratio=float(config.ROI_POSITIVE_RATIO),
        mask_shape=[int(v) for v in config.MASK_SHAPE],
        bbox_std_dev=[float(v) for v in np.asarray(config.BBOX_STD_DEV).reshape(4)],
        use_mini_mask=bool(config.USE_MINI_MASK),
    )


def attribute_head_args(config: Config) -> dict:
    """:func:`~mrcnn.modeling.heads.attribute_head_graph` arguments from ``config`` (an attribute head with its
    own fully connected layers, ATTRIBUTE_FC_LAYERS_SIZE > 0)."""
    return dict(
        pool_size=int(config.POOL_SIZE),
        num_attributes=int(config.NUM_ATTRIBUTES),
        fc_layers_size=int(config.ATTRIBUTE_FC_LAYERS_SIZE),
        train_bn=config.TRAIN_BN,
    )


def detection_layer_args(config: Config) -> dict:
    """:class:`DetectionLayer` (and ``refine_detections_graph``) arguments from ``config``."""
    return dict(
        max_instances=int(config.DETECTION_MAX_INSTANCES),
        min_confidence=float(config.DETECTION_MIN_CONFIDENCE or 0.0),
        nms_threshold=float(config.DETECTION_NMS_THRESHOLD),
        bbox_std_dev=[float(v) for v in np.asarray(config.BBOX_STD_DEV).reshape(4)],
    )


def _graph_builder(build):
    """Wrap a graph builder: build under config.MIXED_PRECISION's Keras policy (restoring the global policy;
    "auto" is resolved for this machine by mrcnn.precision), then keep box math in float32, fold frozen
    BatchNorms into their convolutions and set BATCH_NORM_MOMENTUM."""

    def wrapped(config: Config) -> keras.Model:
        policy = keras_policy(getattr(config, "MIXED_PRECISION", None))
        with dtype_policy(policy):
            model = build(config)
        if policy is not None:
            keep_float32(model)
        fold_batch_norms(model)
        set_batch_norm_momentum(model, getattr(config, "BATCH_NORM_MOMENTUM", 0.99))
        return model

    wrapped.__name__ = build.__name__
    wrapped.__qualname__ = build.__qualname__
    wrapped.__doc__ = build.__doc__
    return wrapped


def _feature_pyramid(input_image, config: Config):
    _, c2, c3, c4, c5 = build_backbone(input_image, config.BACKBONE, stage5=True, train_bn=config.TRAIN_BN)
    p2, p3, p4, p5, p6 = fpn_graph(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    return [p2, p3, p4, p5, p6], [p2, p3, p4, p5]


def _rpn(rpn_feature_maps, config: Config):
    rpn = build_rpn_model(
        config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE
    )
    return rpn_over_pyramid(rpn, rpn_feature_maps)


@_graph_builder
def build_training_model(config: Config) -> keras.Model:
    """The training graph: its last outputs are the losses, each a [1] tensor named after
    :func:`loss_outputs` (five; six with an attribute head).

    mrcnn_mask covers the first n ROIs of ``rois``, n being the largest number of positive ROIs of an image in
    the batch (see :class:`PositiveRows`), not all of them as in Matterport; the loss is the same. With an
    attribute head, the output before the losses is its logits mrcnn_attr_logits: [B, T, A] on the classifier's
    features, or [B, n, A] on the positive rows for a head with its own layers.
    """
    num_attributes = int(config.NUM_ATTRIBUTES)
    h, w, c = (int(v) for v in config.IMAGE_SHAPE)
    input_image = keras.Input(shape=(None, None, c), name="input_image")
    input_image_meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    input_rpn_match = keras.Input(shape=(None, 1), name="input_rpn_match", dtype="int32")
    input_rpn_bbox = keras.Input(shape=(None, 4), name="input_rpn_bbox", dtype="float32")
    input_gt_class_ids = keras.Input(shape=(None,), name="input_gt_class_ids", dtype="int32")
    input_gt_boxes = keras.Input(shape=(None, 4), name="input_gt_boxes", dtype="float32")
    mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else (h, w)
    input_gt_masks = keras.Input(shape=(*mask_shape, None), name="input_gt_masks", dtype="bool")
    inputs = [
        input_image,
        input_image_meta,
        input_rpn_match,
        input_rpn_bbox,
        input_gt_class_ids,
        input_gt_boxes,
        input_gt_masks,
    ]
    attribute_inputs = []
    if num_attributes:
        attribute_inputs = [
            keras.Input(shape=(None, num_attributes), name=name, dtype="float32") for name in ATTRIBUTE_INPUTS
        ]
        inputs += attribute_inputs
    gt_boxes = NormBoxes(name="gt_boxes_normalized")([input_gt_boxes, input_image])

    rpn_feature_maps, mrcnn_feature_maps = _feature_pyramid(input_image, config)
    rpn_class_logits, rpn_class, rpn_bbox = _rpn(rpn_feature_maps, config)
    anchors = ConstantAnchors(**anchor_args(config, config.IMAGE_SHAPE), name="anchors")(input_image)

    if config.USE_RPN_ROIS:
        rpn_rois = ProposalLayer(**proposal_layer_args(config, "training"), name="ROI")(
            [rpn_class, rpn_bbox, anchors]
        )
        target_rois = rpn_rois
    else:
        input_rois = keras.Input(shape=(None, 4), name="input_roi", dtype="float32")
        inputs.append(input_rois)
        target_rois = NormBoxes(name="input_roi_normalized")([input_rois, input_image])
        rpn_rois = target_rois

    targets = DetectionTargetLayer(
        **detection_target_args(config), num_attributes=num_attributes, name="proposal_targets"
    )
    rois, target_class_ids, target_bbox, target_mask, *attribute_targets = targets(
        [target_rois, input_gt_class_ids, gt_boxes, input_gt_masks, *attribute_inputs]
    )
    trunk = ClassifierTrunk(config.POOL_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE, train_bn=config.TRAIN_BN)
    shared = trunk(rois, mrcnn_feature_maps, input_image_meta)
    mrcnn_class_logits, mrcnn_class, mrcnn_bbox = classifier_outputs(shared, config.NUM_CLASSES)
    # The mask loss only looks at positive ROIs, which the detection target layer puts first: run the mask
    # head on those rows alone (on average a third of the rows or fewer).
    mask_rois, mask_target_ids, mask_targets = PositiveRows(name="mask_rows")(
        [rois, target_class_ids, target_mask]
    )
    mrcnn_mask = build_fpn_mask_graph(
        mask_rois,
        mrcnn_feature_maps,
        input_image_meta,
        config.MASK_POOL_SIZE,
        config.NUM_CLASSES,
        train_bn=config.TRAIN_BN,
    )
    active_class_ids = ActiveClassIds(config.NUM_CLASSES, name="active_class_ids")(input_image_meta)

    rpn_class_loss = LossLayer("rpn_class_loss", name="rpn_class_loss")([input_rpn_match, rpn_class_logits])
    rpn_bbox_loss = LossLayer("rpn_bbox_loss", name="rpn_bbox_loss")(
        [input_rpn_bbox, input_rpn_match, rpn_bbox]
    )
    class_loss = LossLayer("mrcnn_class_loss", name="mrcnn_class_loss")(
        [target_class_ids, mrcnn_class_logits, active_class_ids]
    )
    bbox_loss = LossLayer("mrcnn_bbox_loss", name="mrcnn_bbox_loss")(
        [target_bbox, target_class_ids, mrcnn_bbox]
    )
    mask_loss = LossLayer("mrcnn_mask_loss", name="mrcnn_mask_loss")(
        [mask_targets, mask_target_ids, mrcnn_mask]
    )
    attribute_outputs = []
    if num_attributes:
        target_attributes, target_weights = attribute_targets
        if config.ATTRIBUTE_FC_LAYERS_SIZE:
            # Its own layers: like the mask head, run on the positive rows only (the loss counts no other).
            attr_rois, attr_class_ids, target_attributes, target_weights = PositiveRows(name="attr_rows")(
                [rois, target_class_ids, target_attributes, target_weights]
            )
            attr_logits = attribute_head_graph(
                attr_rois, mrcnn_feature_maps, input_image_meta, **attribute_head_args(config)
            )
        else:
            attr_class_ids = target_class_ids
            attr_logits = attribute_logits_layer(num_attributes)(shared)
        attr_loss = LossLayer(ATTRIBUTE_LOSS_NAME, name=ATTRIBUTE_LOSS_NAME)(
            [target_attributes, target_weights, attr_class_ids, attr_logits]
        )
        attribute_outputs = [attr_logits]
        losses_out = [attr_loss]
    else:
        losses_out = []
    outputs = [
        rpn_class_logits,
        rpn_class,
        rpn_bbox,
        mrcnn_class_logits,
        mrcnn_class,
        mrcnn_bbox,
        mrcnn_mask,
        rpn_rois,
        rois,
        *attribute_outputs,
        rpn_class_loss,
        rpn_bbox_loss,
        class_loss,
        bbox_loss,
        mask_loss,
        *losses_out,
    ]
    return MaskRCNNGraph(inputs, outputs, name="mask_rcnn")


@_graph_builder
def build_inference_model(config: Config) -> keras.Model:
    """The inference graph.

    The mask head runs only on the real detections (see :class:`ValidDetectionBoxes`); its output is padded
    back to DETECTION_MAX_INSTANCES rows.

    Outputs: detections [B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)] normalized,
    mrcnn_class [B, N, NUM_CLASSES], mrcnn_bbox [B, N, NUM_CLASSES, 4], mrcnn_mask [B, D, 28, 28, NUM_CLASSES],
    rpn_rois [B, N, 4] normalized, rpn_class [B, A, 2], rpn_bbox [B, A, 4]; with NUM_ATTRIBUTES = A > 0 also
    mrcnn_attr [B, D, A], each detection's attribute probabilities (computed on its box, as its mask; zero
    rows for padding).
    """
    c = int(config.IMAGE_SHAPE[2])
    input_image = keras.Input(shape=(None, None, c), name="input_image")
    input_image_meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    input_anchors = keras.Input(shape=(None, 4), name="input_anchors")

    rpn_feature_maps, mrcnn_feature_maps = _feature_pyramid(input_image, config)
    _, rpn_class, rpn_bbox = _rpn(rpn_feature_maps, config)
    rpn_rois = ProposalLayer(**proposal_layer_args(config, "inference"), name="ROI")(
        [rpn_class, rpn_bbox, input_anchors]
    )
    trunk = ClassifierTrunk(config.POOL_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE, train_bn=config.TRAIN_BN)
    _, mrcnn_class, mrcnn_bbox = classifier_outputs(
        trunk(rpn_rois, mrcnn_feature_maps, input_image_meta), config.NUM_CLASSES
    )
    detections = DetectionLayer(**detection_layer_args(config), name="mrcnn_detection")(
        [rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta]
    )
    detection_boxes = ValidDetectionBoxes(name="detection_boxes")(detections)
    mrcnn_mask = build_fpn_mask_graph(
        detection_boxes,
        mrcnn_feature_maps,
        input_image_meta,
        config.MASK_POOL_SIZE,
        config.NUM_CLASSES,
        train_bn=config.TRAIN_BN,
    )
    mrcnn_mask = PadDetections(config.DETECTION_MAX_INSTANCES, name="mrcnn_mask_padded")(
        [mrcnn_mask, detections]
    )
    outputs = [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox]
    if config.NUM_ATTRIBUTES:
        if config.ATTRIBUTE_FC_LAYERS_SIZE:
            attr_logits = attribute_head_graph(
                detection_boxes, mrcnn_feature_maps, input_image_meta, **attribute_head_args(config)
            )
        else:
            # The classifier's features of the detections' boxes (the same layers, called a second time).
            features = trunk(detection_boxes, mrcnn_feature_maps, input_image_meta)
            attr_logits = attribute_logits_layer(int(config.NUM_ATTRIBUTES))(features)
        mrcnn_attr = PadDetections(config.DETECTION_MAX_INSTANCES, name="mrcnn_attr_padded")(
            [attribute_probabilities(attr_logits), detections]
        )
        outputs.append(mrcnn_attr)
    return MaskRCNNGraph([input_image, input_image_meta, input_anchors], outputs, name="mask_rcnn")
