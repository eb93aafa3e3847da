"""Export an inference ``MaskRCNN`` as a self-contained model: uint8 image in, detections out.

The exported graph does everything ``MaskRCNN.detect`` does, in TensorFlow ops, so serving needs nothing from
this repository:

    serve(image: uint8 [H, W, 3]) -> {
        "boxes": int32 [N, (y1, x1, y2, x2)] pixels of the input image (y2, x2 exclusive),
        "class_ids": int32 [N],
        "scores": float32 [N],
        "masks": bool [N, H, W] full-image masks,
    }

``N <= DETECTION_MAX_INSTANCES`` is the number of detections (trimmed, not padded), by decreasing score.
H and W may be any size: the image is resized in the graph as ``resize_image`` does in "square" mode
(bilinear, scale from IMAGE_MIN_DIM / IMAGE_MAX_DIM / IMAGE_MIN_SCALE, zero padding to
``[IMAGE_MAX_DIM, IMAGE_MAX_DIM]``), molded, run with anchors fixed for that size, and unmolded. Masks are
pasted with the same bilinear resampling as ``mrcnn.masks.unmold_masks`` (zero-padded border), thresholded
at 0.5. ``tf.image.resize`` and OpenCV's uint8 resize may differ by one grey level here and there, so scores
can move in the last digits and mask edges by a pixel.

Formats:
    "saved_model": a TensorFlow SavedModel folder with a ``serving_default`` signature (input ``image``).
    "tflite": a .tflite file. Two ops have no TFLite builtin, so the file uses Select TF ops ("Flex"):
        CombinedNonMaxSuppression (ProposalLayer, DetectionLayer) and CropAndResize (PyramidROIAlign).
        It runs only where the Flex delegate is linked (Android's tensorflow-lite-select-tf-ops, the
        pip ``tf.lite.Interpreter`` of TensorFlow <= 2.19); the pip ``tf.lite.Interpreter`` of TensorFlow >= 2.20 and ``ai_edge_litert``
        do not link it and fail with "Select TensorFlow op(s) ... not supported by this interpreter".
    "onnx": an .onnx file (opset ``ONNX_OPSET``) made with ``tf2onnx`` (optional dependency), checked with
        ``onnx.checker`` before it is written, run with onnxruntime.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from mrcnn.config import Config

if TYPE_CHECKING:
    from mrcnn.model import MaskRCNN

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_OPSET = 17
MASK_THRESHOLD = 0.5

__all__ = ["FORMATS", "ServingModule", "export_model", "paste_masks_graph", "resize_square_graph"]


def resize_square_graph(image: tf.Tensor, config: Config) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """In-graph ``resize_image(mode="square")``.

    image: [H, W, C] uint8 (any H, W).
    Returns:
        resized: [IMAGE_MAX_DIM, IMAGE_MAX_DIM, C] float32 pixel values (rounded to integers), zero-padded.
        window: [(y1, x1, y2, x2)] int32 pixels of the resized image that hold the real image.
        scale: float32 scalar, the scale factor applied.
    """
    max_dim = int(config.IMAGE_MAX_DIM)
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.constant(1.0, tf.float32)
    if config.IMAGE_MIN_DIM:
        scale = tf.maximum(scale, float(config.IMAGE_MIN_DIM) / tf.minimum(h, w))
    if config.IMAGE_MIN_SCALE:
        scale = tf.maximum(scale, float(config.IMAGE_MIN_SCALE))
    long_side = tf.maximum(h, w)
    scale = tf.where(tf.round(long_side * scale) > max_dim, max_dim / long_side, scale)
    new_h = tf.cast(tf.round(h * scale), tf.int32)
    new_w = tf.cast(tf.round(w * scale), tf.int32)
    # Same sampling as OpenCV's INTER_LINEAR (pixel centres aligned, edges replicated, no anti-aliasing);
    # resizing to the same size is the identity, so no branch for scale == 1.
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bilinear")
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    top = (max_dim - new_h) // 2
    left = (max_dim - new_w) // 2
    padded = tf.pad(resized, [[top, max_dim - new_h - top], [left, max_dim - new_w - left], [0, 0]])
    padded = tf.reshape(padded, [max_dim, max_dim, int(config.IMAGE_CHANNEL_COUNT)])
    window = tf.stack([top, left, top + new_h, left + new_w])
    return padded, window, scale


def paste_masks_graph(masks: tf.Tensor, boxes: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """In-graph ``unmold_masks``: resize each mask to its box and paste it into an empty image.

    masks: [N, mh, mw] float32 probabilities. boxes: [N, (y1, x1, y2, x2)] int32 pixels, non-empty.
    height, width: int32 scalars, the image size.
    Returns [N, height, width] bool: bilinear resampling with a zero-padded border (as skimage's
    ``resize(order=1, mode="constant")``), thresholded at 0.5; parts of a box outside the image are cut off.
    Done as two batched matrix products with per-box interpolation weights, so it needs no per-box loop.
    """
    boxes = tf.cast(boxes, tf.float32)
    mask_h = tf.cast(tf.shape(masks)[1], tf.float32)
    mask_w = tf.cast(tf.shape(masks)[2], tf.float32)
    rows, inside_rows = _interpolation_weights(boxes[:, 0], boxes[:, 2], height, tf.shape(masks)[1], mask_h)
    cols, inside_cols = _interpolation_weights(boxes[:, 1], boxes[:, 3], width, tf.shape(masks)[2], mask_w)
    values = tf.matmul(tf.matmul(rows, masks), cols, transpose_b=True)  # [N, height, width]
    # skimage clips to the mask's range: a mask that is >= 0.5 everywhere fills its whole box.
    all_high = tf.reduce_min(masks, axis=[1, 2]) >= MASK_THRESHOLD
    on = tf.logical_or(values >= MASK_THRESHOLD, tf.reshape(all_high, [-1, 1, 1]))
    inside = tf.logical_and(tf.expand_dims(inside_rows, 2), tf.expand_dims(inside_cols, 1))
    return tf.logical_and(on, inside)


def _interpolation_weights(start, end, size, source_size, source_size_f):
    """Bilinear weights from ``source_size`` mask cells to the ``size`` image pixels in [start, end) per box.

    start, end: [N] float32 pixels. Returns weights [N, size, source_size] float32 (zero outside the box)
    and inside [N, size] bool.
    """
    pixels = tf.expand_dims(tf.cast(tf.range(size), tf.float32), 0)  # [1, size]
    start = tf.expand_dims(start, 1)
    end = tf.expand_dims(end, 1)
    # Pixel centres aligned: output pixel i samples the source at (i + 0.5) * in / out - 0.5.
    coords = (pixels - start + 0.5) * (source_size_f / (end - start)) - 0.5  # [N, size]
    cells = tf.reshape(tf.cast(tf.range(source_size), tf.float32), [1, 1, -1])
    weights = tf.nn.relu(1.0 - tf.abs(tf.expand_dims(coords, 2) - cells))  # triangle kernel, zero outside
    inside = tf.logical_and(pixels >= start, pixels < end)
    return weights * tf.expand_dims(tf.cast(inside, tf.float32), 2), inside


class ServingModule(tf.Module):
    """The whole detection pipeline of an inference ``MaskRCNN`` as one ``tf.function``, ``serve``.

    model: a ``MaskRCNN`` in inference mode whose config uses IMAGE_RESIZE_MODE "square".
    """

    def __init__(self, model: MaskRCNN):
        super().__init__(name="mask_rcnn_serving")
        config = model.config
        if model.mode != "inference":
            raise ValueError("export needs a MaskRCNN built in inference mode")
        if config.IMAGE_RESIZE_MODE != "square":
            raise ValueError(
                f"export supports IMAGE_RESIZE_MODE 'square' only (a fixed network input size); "
                f"got {config.IMAGE_RESIZE_MODE!r}"
            )
        self.config = config
        self.keras_model = model.keras_model
        max_dim = int(config.IMAGE_MAX_DIM)
        anchors = model.get_anchors((max_dim, max_dim)).astype(np.float32)
        # numpy, not tensors: constants made while tracing are part of the graph, where captured eager
        # tensors would become extra inputs of a converted (ONNX) graph.
        self._anchors = anchors[np.newaxis]
        self._mean_pixel = np.asarray(config.MEAN_PIXEL, np.float32)
        channels = int(config.IMAGE_CHANNEL_COUNT)
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, None, channels], tf.uint8, name="image")],
        )

    def _serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        config = self.config
        max_dim = int(config.IMAGE_MAX_DIM)
        height = tf.shape(image)[0]
        width = tf.shape(image)[1]
        resized, window, scale = resize_square_graph(image, config)
        molded = resized - tf.constant(self._mean_pixel)
        channels = int(config.IMAGE_CHANNEL_COUNT)
        meta = tf.concat(
            [
                tf.zeros([1], tf.float32),  # image_id
                tf.cast(tf.stack([height, width, channels]), tf.float32),
                tf.constant([max_dim, max_dim, channels], tf.float32),
                tf.cast(window, tf.float32),
                tf.reshape(scale, [1]),
                tf.zeros([config.NUM_CLASSES], tf.float32),
            ],
            axis=0,
        )
        outputs = self.keras_model(
            [tf.expand_dims(molded, 0), tf.expand_dims(meta, 0), tf.constant(self._anchors)], training=False
        )
        detections, mrcnn_mask = outputs[0][0], outputs[3][0]
        detections = tf.cast(detections, tf.float32)
        class_ids = tf.cast(detections[:, 4], tf.int32)
        scores = detections[:, 5]
        # Each detection's own class mask: [D, mh, mw].
        masks = tf.gather(
            tf.transpose(tf.cast(mrcnn_mask, tf.float32), [0, 3, 1, 2]), class_ids, batch_dims=1
        )

        # Detections up to the first zero-padding row, as unmold_detections.
        valid = tf.equal(tf.cumsum(tf.cast(tf.equal(class_ids, 0), tf.int32)), 0)

        # Normalized coordinates of the network input -> of the window -> pixels of the input image.
        window_f = tf.cast(window, tf.float32)
        window_n = (window_f - tf.constant([0.0, 0.0, 1.0, 1.0])) / float(max_dim - 1)
        shift = tf.stack([window_n[0], window_n[1], window_n[0], window_n[1]])
        extent = tf.stack([window_n[2] - window_n[0], window_n[3] - window_n[1]] * 2)
        h_f = tf.cast(height, tf.float32)
        w_f = tf.cast(width, tf.float32)
        span = tf.stack([h_f - 1.0, w_f - 1.0, h_f - 1.0, w_f - 1.0])
        boxes = (detections[:, :4] - shift) / extent * span + tf.constant([0.0, 0.0, 1.0, 1.0])
        boxes = tf.cast(tf.round(boxes), tf.int32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = tf.logical_and(valid, area > 0)

        boxes = tf.boolean_mask(boxes, keep)
        class_ids = tf.boolean_mask(class_ids, keep)
        scores = tf.boolean_mask(scores, keep)
        masks = tf.boolean_mask(masks, keep)
        return {
            "boxes": tf.identity(boxes, name="boxes"),
            "class_ids": tf.identity(class_ids, name="class_ids"),
            "scores": tf.identity(scores, name="scores"),
            "masks": tf.identity(paste_masks_graph(masks, boxes, height, width), name="masks"),
        }


def export_model(model: MaskRCNN, path: str, format: str = "saved_model") -> str:
    """Write ``model``'s whole inference pipeline (see the module docstring) to ``path``.

    model: an inference ``MaskRCNN`` (IMAGE_RESIZE_MODE "square").
    path: a folder for "saved_model"; a file for "tflite" and "onnx".
    format: one of ``FORMATS``.
    Returns ``path``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    module = ServingModule(model)
    if format == "saved_model":
        _save(module, path)
    elif format == "tflite":
        with tempfile.TemporaryDirectory() as folder:
            saved = _save(module, os.path.join(folder, "saved_model"))
            converter = tf.lite.TFLiteConverter.from_saved_model(saved)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS,
                tf.lite.OpsSet.SELECT_TF_OPS,
            ]
            flatbuffer = converter.convert()
        _makedirs_for(path)
        with open(path, "wb") as f:
            f.write(flatbuffer)
    else:
        _export_onnx(module, path)
    return path


def _save(module: ServingModule, path: str) -> str:
    if os.path.isdir(path):
        shutil.rmtree(path)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def _export_onnx(module: ServingModule, path: str) -> None:
    try:
        import onnx
        import tf2onnx
    except ImportError as error:  # optional dependencies
        raise ImportError("ONNX export needs tf2onnx and onnx: pip install tf2onnx onnxruntime") from error
    model_proto, _ = tf2onnx.convert.from_function(
        module.serve,
        input_signature=module.serve.input_signature,
        opset=ONNX_OPSET,
        custom_op_handlers={"OneHot": (_onnx_one_hot, [])},
    )
    # tf2onnx keeps going past ops it cannot convert and leaves them in the graph: refuse such a model.
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise RuntimeError(f"tf2onnx produced an invalid ONNX model: {error}") from error
    _makedirs_for(path)
    onnx.save(model_proto, path)


def _onnx_one_hot(ctx, node, name, args):
    """tf2onnx handler for TF ``OneHot`` with any index rank and any value dtype (tf2onnx's own handles
    float values, or rank-1 indices only; DetectionLayer's is bool over [B, N] class ids):
    ``Where(Equal(Unsqueeze(indices, -1), Range(depth)), on_value, off_value)``, with And/Or for bool."""
    from onnx import TensorProto
    from tf2onnx import utils
    from tf2onnx.graph_builder import GraphBuilder

    indices, depth, on_value, off_value = node.input
    rank = len(ctx.get_shape(indices) or [])
    if node.get_attr_value("axis", -1) not in (-1, rank):
        raise ValueError("OneHot: only the last axis is supported")
    output = node.output[0]
    shape, dtype = ctx.get_shape(output), ctx.get_dtype(output)
    ctx.remove_node(node.name)
    index = ctx.make_node("Cast", [indices], attr={"to": TensorProto.INT64}).output[0]
    index = GraphBuilder(ctx).make_unsqueeze({"data": index, "axes": [-1]})
    limit = ctx.make_node("Cast", [depth], attr={"to": TensorProto.INT64}).output[0]
    zero = ctx.make_const(utils.make_name("one_hot_start"), np.array(0, np.int64)).output[0]
    step = ctx.make_const(utils.make_name("one_hot_step"), np.array(1, np.int64)).output[0]
    classes = ctx.make_node("Range", [zero, limit, step]).output[0]
    hot = ctx.make_node("Equal", [index, classes]).output[0]
    if dtype == TensorProto.BOOL:  # onnxruntime has no bool Where
        on = ctx.make_node("And", [hot, on_value]).output[0]
        cold = ctx.make_node("Not", [hot]).output[0]
        off = ctx.make_node("And", [cold, off_value]).output[0]
        ctx.make_node("Or", [on, off], outputs=[output], shapes=[shape], dtypes=[dtype])
    else:
        ctx.make_node("Where", [hot, on_value, off_value], outputs=[output], shapes=[shape], dtypes=[dtype])


def _makedirs_for(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
