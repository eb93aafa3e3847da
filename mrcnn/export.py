"""Export an inference ``MaskRCNN`` as a self-contained model: uint8 image in, detections out.

The exported graph does everything ``MaskRCNN.detect`` does, in TensorFlow ops, so serving needs nothing from
this repository:

    serve(image: uint8 [H, W, 3]) -> {
        "boxes": int32 [N, (y1, x1, y2, x2)] pixels of the input image (y2, x2 exclusive),
        "class_ids": int32 [N],
        "scores": float32 [N],
        "masks": bool [N, H, W] full-image masks,
        "attributes": float32 [N, NUM_ATTRIBUTES] attribute probabilities (only with NUM_ATTRIBUTES > 0),
    }

``N <= DETECTION_MAX_INSTANCES`` is the number of detections (trimmed, not padded), by decreasing score.
"attributes" is there only for a model with an attribute head: its rows are the detections' (``detect()``'s
``attributes``, in the same order as the boxes); a model without the head has exactly the four outputs.
H and W may be any size: the image is molded and the detections unmolded by the image pipeline's in-graph
face (:mod:`mrcnn.pipeline.graph`): resized as ``resize_image`` does in "square" mode (Matterport's pixels,
scale from IMAGE_MIN_DIM / IMAGE_MAX_DIM / IMAGE_MIN_SCALE, zero padding to ``[IMAGE_MAX_DIM,
IMAGE_MAX_DIM]``), the mean pixel subtracted, run with anchors fixed for that size, boxes mapped back to the
input's pixels and masks pasted as ``unmold_masks`` does, thresholded at 0.5. Float32 arithmetic may put a
pixel one grey level off ``detect()``'s (about 1 in 2,000), so scores can move in the last digits and mask
edges by a pixel.

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

from mrcnn.pipeline.graph import (
    mold_image_graph,
    paste_masks_graph,  # noqa: F401  (re-exported: this module's name before the pipeline)
    resize_square_graph,  # noqa: F401
    unmold_detections_graph,
)

if TYPE_CHECKING:
    from mrcnn.model import MaskRCNN

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_OPSET = 17

__all__ = ["FORMATS", "ServingModule", "export_model", "paste_masks_graph", "resize_square_graph"]


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
        channels = int(config.IMAGE_CHANNEL_COUNT)
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, None, channels], tf.uint8, name="image")],
        )

    def _serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        config = self.config
        molded, meta, window = mold_image_graph(image, config)
        outputs = self.keras_model(
            [tf.expand_dims(molded, 0), tf.expand_dims(meta, 0), tf.constant(self._anchors)], training=False
        )
        detections, mrcnn_mask = outputs[0][0], outputs[3][0]
        class_ids = tf.cast(detections[:, 4], tf.int32)
        # Each detection's own class mask: [D, mh, mw].
        masks = tf.gather(
            tf.transpose(tf.cast(mrcnn_mask, tf.float32), [0, 3, 1, 2]), class_ids, batch_dims=1
        )
        # With an attribute head, mrcnn_attr [1, D, NUM_ATTRIBUTES] is the model's last (eighth) output.
        attributes = outputs[7][0] if config.NUM_ATTRIBUTES else None
        max_dim = int(config.IMAGE_MAX_DIM)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        result = unmold_detections_graph(
            detections, masks, window, (max_dim, max_dim), (height, width), attributes=attributes
        )
        return {name: tf.identity(value, name=name) for name, value in result.items()}


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
