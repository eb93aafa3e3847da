"""Multi-level ROI Align over the feature pyramid."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from mrcnn.modeling.graph_utils import parse_image_meta_graph

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
            pooled.append(
                tf.image.crop_and_resize(
                    feature_maps[i], level_boxes, box_indices, self.pool_shape, method="bilinear"
                )
            )
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
