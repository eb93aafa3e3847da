"""The in-graph face: molding and unmolding as TensorFlow ops (what ``mrcnn.export`` puts in a serving graph).

The sizes, padding, window, sampling points, rim factors, interpolation weights and box arithmetic come from
:mod:`mrcnn.pipeline.rules`, run with :data:`TF_OPS`; the numpy face runs the same functions with numpy, so
the two agree (tested on many sizes): same window and scale, pixels within float32 rounding of each other and
of Matterport's (``tf.image.resize``'s bilinear repeats the edge pixel where skimage blends with zeros, so the
rim is scaled by ``rim_factors`` as in the numpy face). Every op here has a TFLite builtin and an ONNX
conversion.

Images are ``[H, W, C]`` (any H, W), one at a time.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from mrcnn.modeling.graph_utils import denorm_boxes_graph, norm_boxes_graph
from mrcnn.pipeline import rules
from mrcnn.pipeline.meta import META_LAYOUT
from mrcnn.pipeline.rules import ResizeRule


class TensorOps:
    """The ``ops`` of :mod:`mrcnn.pipeline.rules` in TensorFlow (float32 arithmetic, int32 sizes)."""

    maximum = staticmethod(tf.maximum)
    minimum = staticmethod(tf.minimum)
    where = staticmethod(tf.where)
    round = staticmethod(tf.round)  # half to even, as numpy's
    abs = staticmethod(tf.abs)
    stack = staticmethod(tf.stack)
    unstack = staticmethod(tf.unstack)
    expand_dims = staticmethod(tf.expand_dims)  # not x[..., None]: TFLite has no builtin for that slice
    norm_boxes = staticmethod(norm_boxes_graph)
    denorm_boxes = staticmethod(denorm_boxes_graph)

    @staticmethod
    def round_int(x):
        return tf.cast(tf.round(x), tf.int32)

    @staticmethod
    def to_float(x):
        return tf.cast(x, tf.float32)

    @staticmethod
    def arange(n):
        return tf.cast(tf.range(n), tf.float32)


TF_OPS = TensorOps()


def resize_bilinear_graph(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """skimage's bilinear resize (no anti-aliasing, zero-padded border, clipped to the input's range).

    image: ``[H, W, C]`` float32. height, width: int32 scalars, the output size.
    Returns ``[height, width, C]`` float32.
    """
    shape = tf.shape(image)
    in_h, in_w = TF_OPS.to_float(shape[0]), TF_OPS.to_float(shape[1])
    out_h, out_w = TF_OPS.to_float(height), TF_OPS.to_float(width)
    resized = tf.image.resize(image, tf.stack([height, width]), method="bilinear", antialias=False)
    fy = rules.rim_factors(rules.source_coordinates(TF_OPS.arange(height), in_h, out_h), in_h, TF_OPS)
    fx = rules.rim_factors(rules.source_coordinates(TF_OPS.arange(width), in_w, out_w), in_w, TF_OPS)
    resized = resized * tf.reshape(fy, [-1, 1, 1]) * tf.reshape(fx, [1, -1, 1])
    return tf.clip_by_value(resized, tf.reduce_min(image), tf.reduce_max(image))


def _truncate(values: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Matterport's ``astype(image.dtype)`` of resized float values, kept in float32."""
    if dtype.is_floating:
        return values
    if dtype.is_unsigned or dtype == tf.bool:
        return tf.floor(values)
    return tf.sign(values) * tf.floor(tf.abs(values))


def resize_image_graph(image: tf.Tensor, rule: ResizeRule) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """In-graph ``resize_image`` for the modes "none", "square" and "pad64" ("crop" is random: numpy only).

    image: ``[H, W, C]`` (any H, W; uint8 for Matterport's pixels).
    Returns:
        resized: ``[h, w, C]`` float32 pixel values, truncated to integers for integer images, zero-padded;
            ``[max_dim, max_dim, C]`` (static) in "square" mode.
        window: ``[(y1, x1, y2, x2)]`` int32 pixels of ``resized`` that hold the image.
        scale: float32 scalar, the scale factor applied.
    """
    if rule.mode == "crop":
        raise ValueError("the in-graph pipeline has no 'crop' mode (a random training crop); use 'square'")
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    pixels = tf.cast(image, tf.float32)
    if rule.mode == "none":
        return pixels, tf.stack([0, 0, h, w]), tf.constant(1.0)
    scale = rules.resize_scale(TF_OPS.to_float(h), TF_OPS.to_float(w), rule, TF_OPS)
    new_h, new_w = rules.scaled_size(TF_OPS.to_float(h), TF_OPS.to_float(w), scale, TF_OPS)
    # Resizing to the same size samples the pixel centres, i.e. is the identity: no branch for scale 1.
    resized = _truncate(resize_bilinear_graph(pixels, new_h, new_w), image.dtype)
    pads = rules.padding(new_h, new_w, rule)
    resized = tf.pad(resized, [list(pads[0]), list(pads[1]), [0, 0]])
    if rule.mode == "square":
        resized = tf.reshape(resized, [rule.max_dim, rule.max_dim, image.shape[-1] or shape[2]])
    return resized, tf.stack(rules.window(new_h, new_w, pads)), scale


def resize_square_graph(image: tf.Tensor, config: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """:func:`resize_image_graph` with the config's IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE in "square"
    mode: ``[IMAGE_MAX_DIM, IMAGE_MAX_DIM, C]`` float32, window, scale."""
    rule = ResizeRule(config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, "square")
    return resize_image_graph(image, rule)


def compose_image_meta_graph(
    original_shape: tf.Tensor,
    image_shape: tf.Tensor,
    window: tf.Tensor,
    scale: tf.Tensor,
    num_classes: int,
    image_id: tf.Tensor | int = 0,
) -> tf.Tensor:
    """In-graph ``compose_image_meta`` with no active class: ``[12 + num_classes]`` float32, same layout."""
    values = {
        "image_id": image_id,
        "original_image_shape": original_shape,
        "image_shape": image_shape,
        "window": window,
        "scale": scale,
        "active_class_ids": tf.zeros([num_classes]),
    }
    return tf.concat([tf.reshape(TF_OPS.to_float(values[key]), [-1]) for key, _ in META_LAYOUT], axis=0)


def mold_image_graph(image: tf.Tensor, config: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mold one image as ``MaskRCNN.mold_inputs`` does, in the graph.

    image: ``[H, W, C]`` uint8. Returns the molded image ``[h, w, C]`` float32 (mean pixel subtracted), its
    image_meta vector ``[IMAGE_META_SIZE]`` float32 and its window ``[4]`` int32.
    """
    resized, window, scale = resize_image_graph(image, ResizeRule.from_config(config))
    molded = resized - tf.constant(config.MEAN_PIXEL, tf.float32)
    meta = compose_image_meta_graph(tf.shape(image), tf.shape(molded), window, scale, config.NUM_CLASSES)
    return molded, meta, window


# -- unmolding -----------------------------------------------------------------------------------------------


def unmold_boxes_graph(boxes: tf.Tensor, window: tf.Tensor, image_hw: Any, original_hw: Any) -> tf.Tensor:
    """Boxes normalized in the molded image (of size ``image_hw``) -> int32 pixel boxes of the original image
    (of size ``original_hw``), as :func:`mrcnn.pipeline.molding.unmold_boxes`."""
    return rules.boxes_to_original(
        tf.cast(boxes, tf.float32), window, tf.stack(image_hw), tf.stack(original_hw), TF_OPS
    )


def paste_masks_graph(masks: tf.Tensor, boxes: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """In-graph ``paste_masks``: resize each mask to its box and paste it into an empty image.

    masks: [N, mh, mw] float32 probabilities. boxes: [N, (y1, x1, y2, x2)] int32 pixels, non-empty.
    height, width: int32 scalars, the image size.
    Returns [N, height, width] bool: skimage's bilinear resampling (zero-padded border, clipped to the mask's
    range), thresholded at 0.5; parts of a box outside the image are cut off. Done as two batched matrix
    products with per-box interpolation weights (:func:`mrcnn.pipeline.rules.bilinear_weights`), so it needs
    no per-box loop.
    """
    masks = tf.cast(masks, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    rows, inside_rows = _box_weights(boxes[:, 0], boxes[:, 2], height, tf.shape(masks)[1])
    cols, inside_cols = _box_weights(boxes[:, 1], boxes[:, 3], width, tf.shape(masks)[2])
    values = tf.matmul(tf.matmul(rows, masks), cols, transpose_b=True)  # [N, height, width]
    # skimage clips to the mask's range: a mask that is >= 0.5 everywhere fills its whole box.
    all_high = tf.reduce_min(masks, axis=[1, 2]) >= rules.MASK_THRESHOLD
    on = tf.logical_or(values >= rules.MASK_THRESHOLD, tf.reshape(all_high, [-1, 1, 1]))
    inside = tf.logical_and(tf.expand_dims(inside_rows, 2), tf.expand_dims(inside_cols, 1))
    return tf.logical_and(on, inside)


def _box_weights(start, end, size, source_size):
    """Bilinear weights from ``source_size`` mask cells to the ``size`` image pixels in ``[start, end)`` per box.

    start, end: [N] float32 pixels. Returns weights [N, size, source_size] float32 (zero outside the box) and
    inside [N, size] bool.
    """
    pixels = tf.expand_dims(TF_OPS.arange(size), 0)  # [1, size]
    start = tf.expand_dims(start, 1)
    end = tf.expand_dims(end, 1)
    coords = rules.source_coordinates(pixels - start, TF_OPS.to_float(source_size), end - start)  # [N, size]
    weights = rules.bilinear_weights(coords, source_size, TF_OPS)
    inside = tf.logical_and(pixels >= start, pixels < end)
    return weights * tf.expand_dims(tf.cast(inside, tf.float32), 2), inside


def unmold_detections_graph(
    detections: tf.Tensor,
    masks: tf.Tensor,
    window: tf.Tensor,
    image_hw: Any,
    original_hw: Any,
    attributes: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """In-graph ``unmold_detections`` for one image.

    detections: ``[D, (y1, x1, y2, x2, class_id, score)]`` normalized, zero-padded. masks: ``[D, mh, mw]``
    each detection's class mask. window: ``[4]`` int32. image_hw, original_hw: ``(h, w)`` of the molded and
    the original image (ints or int32 scalars). attributes: optional ``[D, A]`` attribute probabilities of
    the same rows (an attribute head's ``mrcnn_attr``).
    Returns boxes ``[N, 4]`` int32 pixels, class_ids ``[N]`` int32, scores ``[N]`` float32 and masks
    ``[N, H, W]`` bool: the detections up to the first padding row, less those whose box has no area; with
    ``attributes``, also "attributes" ``[N, A]`` float32, the same rows (``kept_detection_rows``'s).
    """
    detections = tf.cast(detections, tf.float32)
    class_ids = tf.cast(detections[:, 4], tf.int32)
    valid = tf.equal(tf.cumsum(tf.cast(tf.equal(class_ids, 0), tf.int32)), 0)
    boxes = unmold_boxes_graph(detections[:, :4], window, image_hw, original_hw)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = tf.logical_and(valid, area > 0)
    boxes = tf.boolean_mask(boxes, keep)
    result = {
        "boxes": boxes,
        "class_ids": tf.boolean_mask(class_ids, keep),
        "scores": tf.boolean_mask(detections[:, 5], keep),
        "masks": paste_masks_graph(tf.boolean_mask(masks, keep), boxes, original_hw[0], original_hw[1]),
    }
    if attributes is not None:
        result["attributes"] = tf.boolean_mask(tf.cast(attributes, tf.float32), keep)
    return result
