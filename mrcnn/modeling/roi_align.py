"""Multi-level ROI Align over the feature pyramid.

The crops are ``tf.image.crop_and_resize``'s; their gradient is :func:`crop_and_resize_image_gradient`, because
TensorFlow's CPU kernel for it loses additions where crops overlap (see :func:`crop_and_resize`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from mrcnn.modeling.graph_utils import parse_image_meta_graph


def _bilinear_taps(low: tf.Tensor, high: tf.Tensor, size: tf.Tensor, crop: int):
    """Where ``tf.image.crop_and_resize`` samples one axis of each box, as its CPU kernel computes it.

    low, high: [K] normalized box edges on this axis. size: the image's pixel count on it. crop: output size.
    Returns indices [K, crop, 2] int32 (the pixel before and after each sample), weights [K, crop, 2]
    float32 (1 - lerp, lerp) and valid [K, crop] bool (False where the sample lies outside the image, which
    the kernel extrapolates: no gradient).
    """
    last = tf.cast(size - 1, tf.float32)
    if crop > 1:
        step = (high - low) * last / float(crop - 1)
        position = low[:, None] * last + tf.range(crop, dtype=tf.float32)[None, :] * step[:, None]
    else:
        position = (0.5 * (low + high) * last)[:, None]
    valid = tf.logical_and(position >= 0.0, position <= last)
    before = tf.floor(position)
    lerp = position - before
    indices = tf.stack([before, tf.math.ceil(position)], axis=-1)
    indices = tf.cast(tf.where(valid[..., None], indices, 0.0), tf.int32)
    return indices, tf.stack([1.0 - lerp, lerp], axis=-1), valid


def crop_and_resize_image_gradient(
    grads: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, image_shape: tf.Tensor
) -> tf.Tensor:
    """The gradient of bilinear ``tf.image.crop_and_resize`` with respect to its image, without a data race.

    grads: [K, crop_height, crop_width, C] gradient of the crops. boxes: [K, (y1, x1, y2, x2)] normalized.
    box_indices: [K] int32 image of each box. image_shape: [4] int32 (B, H, W, C).
    Returns [B, H, W, C] float32: each crop pixel's gradient spread over its four bilinear taps, as the
    product of the sparse [B * H * W, K * crop_height * crop_width] tap-weight matrix with the crops'
    gradient. ``tf.sparse.sparse_dense_matmul``'s CPU kernel adds the taps in one thread, in box order (so
    the result is also deterministic); on a GPU it adds them atomically.
    """
    crop_height, crop_width = int(grads.shape[1]), int(grads.shape[2])
    channels = int(grads.shape[3]) if grads.shape[3] is not None else image_shape[3]
    batch, height, width = image_shape[0], image_shape[1], image_shape[2]
    y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.float32), axis=1)
    rows, row_weights, row_valid = _bilinear_taps(y1, y2, height, crop_height)  # [K, ch, 2]
    cols, col_weights, col_valid = _bilinear_taps(x1, x2, width, crop_width)  # [K, cw, 2]
    box_indices = tf.cast(box_indices, tf.int32)
    # Flat pixel b * H * W + y * W + x of each (box, crop row, crop column, row tap, column tap).
    image_row = (box_indices * height)[:, None, None, None, None] + rows[:, :, None, :, None]
    pixel = image_row * width + cols[:, None, :, None, :]  # [K, ch, cw, 2, 2]
    weights = row_weights[:, :, None, :, None] * col_weights[:, None, :, None, :]
    valid = tf.logical_and(row_valid[:, :, None], col_valid[:, None, :])  # [K, ch, cw]
    valid = tf.logical_and(valid, tf.logical_and(box_indices >= 0, box_indices < batch)[:, None, None])
    valid = tf.broadcast_to(valid[..., None, None], tf.shape(pixel))
    samples = tf.reshape(tf.range(tf.size(valid) // 4), tf.shape(valid)[:3])  # crop pixel k * ch * cw + ...
    samples = tf.broadcast_to(samples[..., None, None], tf.shape(pixel))
    taps = tf.stack([tf.boolean_mask(pixel, valid), tf.boolean_mask(samples, valid)], axis=1)
    matrix = tf.SparseTensor(
        tf.cast(taps, tf.int64),
        tf.boolean_mask(weights, valid),
        tf.cast(tf.stack([batch * height * width, tf.size(valid) // 4]), tf.int64),
    )
    flat_grads = tf.reshape(tf.cast(grads, tf.float32), [-1, channels])
    summed = tf.sparse.sparse_dense_matmul(matrix, flat_grads)
    return tf.reshape(summed, [batch, height, width, channels])


def crop_and_resize(image: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, crop_size) -> tf.Tensor:
    """``tf.image.crop_and_resize`` (bilinear; the same op and output) with a correct gradient on the CPU.

    image: [B, H, W, C]. boxes: [K, (y1, x1, y2, x2)] normalized. box_indices: [K] int32. crop_size: (h, w).
    Returns [K, h, w, C] float32. The gradient flows to ``image`` only (none to the boxes).

    TensorFlow's CPU kernel for the image gradient (``CropAndResizeGradImage``) splits the boxes among
    threads that add into the gradient with plain, unsynchronised ``+=``: where crops of different threads
    share a pixel, additions are lost (its source calls this "nondeterminism"; it is serial only under
    ``tf.config.experimental.enable_op_determinism()``). ROIs overlap, and every zero-padding ROI samples
    pixel (0, 0), so training lost a varying part of the feature-map gradient: measured up to 94% of a
    pixel's gradient with 8 threads, and 1.5-6% of a training step's update between runs (issue #11).
    :func:`crop_and_resize_image_gradient` computes the same gradient without the race.
    """
    crop_size = tuple(int(s) for s in crop_size)

    @tf.custom_gradient
    def crop(image):
        crops = tf.image.crop_and_resize(image, boxes, box_indices, crop_size, method="bilinear")

        def grad(dy):
            # dy may come as IndexedSlices (the crops are gathered back into box order afterwards).
            dy = tf.ensure_shape(tf.convert_to_tensor(dy), crops.shape)
            dimage = crop_and_resize_image_gradient(dy, boxes, box_indices, tf.shape(image))
            return tf.cast(dimage, image.dtype)

        return crops, grad

    return crop(image)


# Largest normalized box coordinate sampled: (1 - 1e-5) * (size - 1) stays below the last pixel index by far
# more than float32 rounding for any feature map under 10,000 pixels.
_MAX_EDGE = 1.0 - 1e-5


def roi_pyramid_level(boxes: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """Pyramid level (2..5) for each box, following the FPN paper's eq. 1.

    boxes: [..., (y1, x1, y2, x2)] normalized. image_shape: [(h, w, ...)] pixels of the molded image.
    Returns [...] int32. A 224x224 ROI maps to level 4; zero-size (padding) boxes map to level 2.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    image_area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    # h, w are normalized, so sqrt(h*w) is the ROI size relative to sqrt(image_area).
    level = tf.math.log(tf.sqrt(height * width) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = 4.0 + tf.round(level)
    level = tf.where(tf.math.is_nan(level), 2.0, level)
    return tf.cast(tf.clip_by_value(level, 2.0, 5.0), tf.int32)


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """ROI Align on the level of the pyramid that suits each box's size.

    pool_shape: (pool_height, pool_width) of the output crops.

    call([boxes, image_meta, P2, P3, P4, P5]):
        boxes: [B, N, (y1, x1, y2, x2)] normalized (zero-padded rows allowed).
        image_meta: [B, IMAGE_META_SIZE].
        P2..P5: [B, h_i, w_i, C] feature maps.
    Returns [B, N, pool_height, pool_width, C], in the order of ``boxes``.
    """

    def __init__(self, pool_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(s) for s in pool_shape)

    def call(self, inputs):
        boxes = tf.convert_to_tensor(inputs[0])
        image_meta = inputs[1]
        feature_maps = inputs[2:]

        # All images of a batch share the molded shape.
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        roi_level = roi_pyramid_level(boxes, image_shape)  # [B, N]

        pooled = []
        box_positions = []
        for i, level in enumerate(range(2, 6)):
            ix = tf.where(tf.equal(roi_level, level))  # [K, (batch, box)]
            # crop_and_resize samples a box edge at exactly 1.0 on the last pixel, and one a rounding error
            # beyond it as the zero extrapolation value: keep edges a hair inside so crops are continuous.
            level_boxes = tf.clip_by_value(tf.stop_gradient(tf.gather_nd(boxes, ix)), 0.0, _MAX_EDGE)
            box_indices = tf.stop_gradient(tf.cast(ix[:, 0], tf.int32))
            pooled.append(crop_and_resize(feature_maps[i], level_boxes, box_indices, self.pool_shape))
            box_positions.append(ix)

        pooled = tf.concat(pooled, axis=0)
        box_positions = tf.concat(box_positions, axis=0)
        # Restore the input order: flat position b * N + n of each crop, then invert the permutation.
        num_boxes = tf.shape(boxes, out_type=tf.int64)[1]
        flat_position = box_positions[:, 0] * num_boxes + box_positions[:, 1]
        order = tf.argsort(flat_position)
        pooled = tf.gather(pooled, order)

        out_shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        return tf.reshape(pooled, out_shape)

    def compute_output_shape(self, input_shape):
        boxes_shape = input_shape[0]
        channels = input_shape[2][-1]
        return (boxes_shape[0], boxes_shape[1], *self.pool_shape, channels)

    def get_config(self):
        config = super().get_config()
        config["pool_shape"] = list(self.pool_shape)
        return config
