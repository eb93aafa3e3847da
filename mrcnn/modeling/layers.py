"""Small Keras layers shared by the network builders.

- ``BatchNorm``: batch normalization that can be frozen (Matterport's ``TRAIN_BN``).
- ``FlattenRois`` / ``UnflattenRois``: fold the ROI axis into the batch axis and back, which replaces
  Keras-2 ``TimeDistributed`` wrappers in the heads while keeping the per-ROI layers' names and weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization with a build-time switch for frozen statistics.

    train_bn: True (or None): normal behaviour, batch statistics in training and moving averages updated;
        the ``training`` argument decides. False: always inference mode, i.e. the moving mean and variance
        normalize the input and are never updated (gamma and beta stay trainable unless the layer is
        frozen). This is what Matterport's ``TRAIN_BN = False`` means; it suits small batches.
    """

    def __init__(self, *args, train_bn: bool | None = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_bn = train_bn is None or bool(train_bn)

    def call(self, inputs, training=None, mask=None):
        if not self.train_bn:
            training = False
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class WholeInputConv2D(keras.layers.Conv2D):
    """A "valid" Conv2D whose kernel covers the whole input [N, kh, kw, C] -> [N, 1, 1, filters].

    Computed as one matrix multiplication. Same weights (kernel [kh, kw, C, filters], bias) as Conv2D, so the
    .h5 layout is unchanged, but TensorFlow's CPU gradient of such a convolution is pathologically slow (7.6 s
    against 0.1 s for the equal matmul, for Matterport's mrcnn_class_conv1 on 200 ROIs). Inputs of another
    spatial size fall back to the ordinary convolution.
    """

    def call(self, inputs):
        kh, kw = self.kernel_size
        if self.padding != "valid" or inputs.shape[1] != kh or inputs.shape[2] != kw:
            return super().call(inputs)
        channels = inputs.shape[3]
        x = tf.reshape(inputs, [-1, kh * kw * channels])
        kernel = tf.cast(tf.reshape(self.kernel, [kh * kw * channels, self.filters]), x.dtype)
        y = tf.matmul(x, kernel)
        if self.use_bias:
            y = y + tf.cast(self.bias, y.dtype)
        y = tf.reshape(y, [-1, 1, 1, self.filters])
        return self.activation(y) if self.activation is not None else y


@keras.saving.register_keras_serializable(package="mrcnn")
class FlattenRois(keras.layers.Layer):
    """[B, N, *rest] -> [B * N, *rest] with dynamic B and N."""

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[0], input_shape[1]
        merged = None if batch is None or rois is None else batch * rois
        return (merged, *input_shape[2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class UnflattenRois(keras.layers.Layer):
    """call([x, like]): [B * N, *rest] -> [B, N, *rest] with B and N read from ``like`` [B, N, ...].

    inner_shape: optional static shape to use instead of ``rest`` (e.g. ``(C,)`` to drop the 1x1 spatial
    axes of [B * N, 1, 1, C]); its element count must equal that of ``rest``.
    """

    def __init__(self, inner_shape: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.inner_shape = None if inner_shape is None else tuple(int(s) for s in inner_shape)

    def call(self, inputs):
        x, like = tf.convert_to_tensor(inputs[0]), tf.convert_to_tensor(inputs[1])
        inner = tf.shape(x)[1:] if self.inner_shape is None else tf.constant(self.inner_shape, tf.int32)
        return tf.reshape(x, tf.concat([tf.shape(like)[:2], inner], axis=0))

    def compute_output_shape(self, input_shape):
        x_shape, like_shape = input_shape
        inner = tuple(x_shape[1:]) if self.inner_shape is None else self.inner_shape
        return (like_shape[0], like_shape[1], *inner)

    def get_config(self):
        config = super().get_config()
        config["inner_shape"] = self.inner_shape
        return config
