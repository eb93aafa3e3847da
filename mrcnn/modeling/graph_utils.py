"""TensorFlow box and image-meta helpers used inside the graph layers.

All boxes are ``(y1, x1, y2, x2)``. Functions accept any number of leading dimensions unless stated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from mrcnn.pipeline.meta import meta_slices


def apply_box_deltas_graph(boxes: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """Apply refinement deltas to boxes.

    boxes: [..., (y1, x1, y2, x2)] float.
    deltas: [..., (dy, dx, log(dh), log(dw))] float, same leading shape as ``boxes``.
    Returns the refined boxes, [..., (y1, x1, y2, x2)].
    """
    boxes = tf.convert_to_tensor(boxes)
    deltas = tf.cast(deltas, boxes.dtype)
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    center_y += deltas[..., 0] * height
    center_x += deltas[..., 1] * width
    height *= tf.exp(deltas[..., 2])
    width *= tf.exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1, name="apply_box_deltas_out")


def box_refinement_graph(box: tf.Tensor, gt_box: tf.Tensor) -> tf.Tensor:
    """Deltas that turn ``box`` into ``gt_box`` (inverse of ``apply_box_deltas_graph``).

    box, gt_box: [..., (y1, x1, y2, x2)] with the same shape and non-zero sizes (Matterport's parameter
    names, as the numpy ``box_refinement``).
    Returns [..., (dy, dx, log(dh), log(dw))] float32.
    """
    boxes = tf.cast(box, tf.float32)
    gt_boxes = tf.cast(gt_box, tf.float32)
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    gt_height = gt_boxes[..., 2] - gt_boxes[..., 0]
    gt_width = gt_boxes[..., 3] - gt_boxes[..., 1]
    gt_center_y = gt_boxes[..., 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[..., 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = tf.math.log(gt_height / height)
    dw = tf.math.log(gt_width / width)
    return tf.stack([dy, dx, dh, dw], axis=-1)


def clip_boxes_graph(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Clip boxes to a window.

    boxes: [..., (y1, x1, y2, x2)].
    window: [4] ``(y1, x1, y2, x2)`` shared by all boxes, or [..., 4] broadcastable against ``boxes``
        (e.g. [B, 1, 4] for per-image windows with boxes [B, N, 4]).
    """
    boxes = tf.convert_to_tensor(boxes)
    window = tf.cast(window, boxes.dtype)
    wy1, wx1, wy2, wx2 = (window[..., i : i + 1] for i in range(4))
    y1, x1, y2, x2 = (boxes[..., i : i + 1] for i in range(4))
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    return tf.concat([y1, x1, y2, x2], axis=-1, name="clipped_boxes")


def _shape_scale_shift(shape: tf.Tensor, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.cast(shape, dtype)
    h, w = shape[..., 0], shape[..., 1]
    scale = tf.stack([h, w, h, w], axis=-1) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=dtype)
    return scale, shift


def norm_boxes_graph(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Pixel boxes to normalized coordinates.

    boxes: [..., (y1, x1, y2, x2)] in pixels (y2, x2 exclusive).
    shape: [..., (height, width)] in pixels (extra trailing entries such as channels are ignored).
    Returns [..., 4] float32 in normalized coordinates: ``(boxes - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``.
    """
    boxes = tf.cast(boxes, tf.float32)
    scale, shift = _shape_scale_shift(shape, tf.float32)
    return tf.divide(boxes - shift, scale)


def denorm_boxes_graph(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Normalized boxes to pixel coordinates (inverse of ``norm_boxes_graph``), rounded to int32.

    boxes: [..., (y1, x1, y2, x2)] normalized. shape: [..., (height, width)] in pixels.
    """
    boxes = tf.cast(boxes, tf.float32)
    scale, shift = _shape_scale_shift(shape, tf.float32)
    return tf.cast(tf.round(boxes * scale + shift), tf.int32)


def overlaps_graph(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU between two sets of boxes.

    boxes1: [N, (y1, x1, y2, x2)], boxes2: [M, (y1, x1, y2, x2)] (same units).
    Returns [N, M] IoU; 0 where the union is empty.
    """
    boxes1 = tf.convert_to_tensor(boxes1)
    boxes2 = tf.cast(boxes2, boxes1.dtype)
    b1 = boxes1[:, tf.newaxis, :]
    b2 = boxes2[tf.newaxis, :, :]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def trim_zeros_graph(boxes: tf.Tensor, name: str = "trim_zeros") -> tuple[tf.Tensor, tf.Tensor]:
    """Drop all-zero padding rows.

    boxes: [N, 4]. Returns (boxes [K, 4] without the zero rows, non_zeros [N] bool mask of kept rows).
    """
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    boxes = tf.boolean_mask(boxes, non_zeros, name=name)
    return boxes, non_zeros


def parse_image_meta_graph(meta: tf.Tensor) -> dict[str, tf.Tensor]:
    """Split batched image meta into its components (the layout of :mod:`mrcnn.pipeline.meta`).

    meta: [B, IMAGE_META_SIZE] float, laid out as
        [image_id, original_image_shape(3), image_shape(3), window(4, pixels), scale, active_class_ids(NC)].
    Returns a dict of float tensors: image_id [B], original_image_shape [B, 3], image_shape [B, 3],
    window [B, 4], scale [B], active_class_ids [B, NC].
    """
    meta = tf.convert_to_tensor(meta)
    return {key: meta[:, where] for key, where in meta_slices().items()}


def batch_slice(
    inputs: tf.Tensor | Sequence[tf.Tensor],
    graph_fn: Callable[..., tf.Tensor | Sequence[tf.Tensor]],
    batch_size: int,
    names: Sequence[str] | None = None,
) -> tf.Tensor | list[tf.Tensor]:
    """Run ``graph_fn`` on each image of a batch and stack the results (Matterport's helper).

    inputs: a tensor or list of tensors, each with the batch on axis 0. ``graph_fn`` receives one slice of
    each input and returns a tensor or a list of tensors with the same shape for every image.
    batch_size: a Python int (the loop is unrolled in the graph). Returns a tensor if ``graph_fn`` returns
    one output, else a list of stacked tensors.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    per_image: list[list[tf.Tensor]] = []
    for i in range(batch_size):
        outputs = graph_fn(*[x[i] for x in inputs])
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        per_image.append(list(outputs))
    stacked = list(zip(*per_image, strict=True))
    if names is None:
        names = [None] * len(stacked)
    result = [tf.stack(list(o), axis=0, name=n) for o, n in zip(stacked, names, strict=True)]
    return result[0] if len(result) == 1 else result
