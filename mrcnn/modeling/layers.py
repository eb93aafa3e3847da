"""Small Keras layers shared by the network builders.

- ``BatchNorm``: batch normalization that can be frozen (Matterport's ``TRAIN_BN``).
- ``FastConv2D`` / ``FastConv2DTranspose``: Keras' convolutions (same weights and outputs) computed with
  faster TensorFlow CPU kernels; ``fold_batch_norms`` lets a convolution apply the frozen BatchNorm after it.
- ``FlattenRois`` / ``UnflattenRois``: fold the ROI axis into the batch axis and back, which replaces
  Keras-2 ``TimeDistributed`` wrappers in the heads while keeping the per-ROI layers' names and weights.
- ``plain_int`` / ``plain_float`` / ``plain_floats``: check the settings a custom layer is given. Every
  custom layer takes plain values (never a ``Config``; :mod:`mrcnn.modeling.build` reads those) and returns
  them from ``get_config``, so a model saves to Keras' ``.keras`` format and ``keras.saving.load_model``
  rebuilds it.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Sequence

import keras
import tensorflow as tf


def _setting_error(layer, name: str, expected: str, value) -> TypeError:
    return TypeError(
        f"{type(layer).__name__}: {name} must be {expected}, got {type(value).__name__} {value!r}. The layers "
        "take explicit settings; mrcnn.modeling.build translates a Config into them (Matterport's "
        "config-taking signatures are in mrcnn.model)."
    )


def plain_int(value, name: str, layer) -> int:
    """``value`` as an int; a TypeError naming ``layer`` and ``name`` if it is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
        raise _setting_error(layer, name, "an int", value)
    return int(value)


def plain_float(value, name: str, layer) -> float:
    """``value`` as a float; a TypeError naming ``layer`` and ``name`` if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _setting_error(layer, name, "a number", value)
    return float(value)


def plain_floats(values, name: str, layer, length: int | None = None) -> list[float]:
    """``values`` (a sequence or 1-D array of numbers, ``length`` of them if given) as a list of floats."""
    try:
        items = [plain_float(v, name, layer) for v in values]
    except TypeError:
        raise _setting_error(layer, name, f"{length or 'a list of'} numbers", values) from None
    if length is not None and len(items) != length:
        raise _setting_error(layer, name, f"{length} numbers", values)
    return items


def plain_ints(values, name: str, layer, length: int | None = None) -> list[int]:
    """``values`` (a sequence or 1-D array of whole numbers, ``length`` of them if given) as a list of ints."""
    try:
        items = [plain_int(v, name, layer) for v in values]
    except TypeError:
        raise _setting_error(layer, name, f"{length or 'a list of'} ints", values) from None
    if length is not None and len(items) != length:
        raise _setting_error(layer, name, f"{length} ints", values)
    return items


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
        # Set by fold_batch_norms: (a weak reference to) the FastConv2D that applies this normalization.
        # A weak reference, because Keras would track a layer attribute as a sublayer and list its weights.
        self._folded_into = None

    # A method, not a property: Keras' saving walks a layer's attributes, and an attribute holding another
    # layer would make it save (and load) that layer's weights under this one's path, in a cycle.
    def folded_into(self):
        """The FastConv2D that applies this layer's normalization (see fold_batch_norms), or None."""
        return None if self._folded_into is None else self._folded_into()

    def uses_moving_statistics(self, training) -> bool:
        """Whether a call with this ``training`` flag normalizes with the moving mean and variance."""
        return not (self.train_bn and training and self.trainable)

    def affine(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The per-channel (scale, offset) [C] float32 such that, with the moving statistics,
        BatchNorm(x) = x * scale + offset."""
        mean = tf.cast(self.moving_mean, tf.float32)
        variance = tf.cast(self.moving_variance, tf.float32)
        scale = tf.math.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * tf.cast(self.gamma, tf.float32)
        offset = -mean * scale
        if self.center:
            offset = offset + tf.cast(self.beta, tf.float32)
        return scale, offset

    def call(self, inputs, training=None, mask=None):
        if not self.train_bn:
            training = False
        if self.folded_into() is not None and self.uses_moving_statistics(training):
            return inputs  # the convolution before this layer has applied the normalization
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


def _same_conv_with_fast_input_gradient(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Stride-1 "same" convolution with an odd kernel whose input gradient is itself a forward convolution.

    For such a convolution dL/dx = conv(dL/dy, kernel rotated by 180 degrees with its in/out channels
    swapped, "same"). TensorFlow's CPU ``Conv2DBackpropInput`` computes the same numbers, but 1.5-2.5x
    slower than its forward ``Conv2D`` on the mask head's and the FPN's shapes.
    """

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")

        def grad(dy):
            flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(dy, flipped, strides=1, padding="SAME")
            dkernel = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
            )
            return dx, dkernel

        return y, grad

    return conv(x, kernel)


def _matmul_with_fast_input_gradient(x: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``x @ weights`` for x [N, K], weights [K, F] with the input gradient computed as (weights @ dy^T)^T.

    Eigen computes dy @ weights^T, the usual form, 2x slower when K is much larger than F (for
    mrcnn_class_conv1, K = 7 * 7 * 256 and F = 1024).
    """

    @tf.custom_gradient
    def matmul(x, weights):
        def grad(dy):
            dx = tf.transpose(tf.matmul(weights, dy, transpose_b=True))
            return dx, tf.matmul(x, dy, transpose_a=True)

        return tf.matmul(x, weights), grad

    return matmul(x, weights)


@keras.saving.register_keras_serializable(package="mrcnn")
class FastConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` (same weights, same outputs) routed to faster TensorFlow CPU kernels.

    TensorFlow's CPU gradients of some convolutions are far slower than the equal matrix products; training
    on the CPU spent most of its step in them. The forward result is the same as Conv2D's; only the op
    that computes it (and so its gradient) changes:

    - kernel covering the whole input ("valid", e.g. Matterport's mrcnn_class_conv1 7x7 on 7x7 ROIs and
      mrcnn_class_conv2 1x1 on 1x1): one matmul [N, kh*kw*C] x [kh*kw*C, F]. TensorFlow's gradient of the
      convolution took 7.6 s (conv1) and 0.86 s (conv2) on 200 ROIs, the matmul's a few ms to 0.1 s.
    - 1x1 kernel: a matmul over pixels (after ``x[:, ::s, ::s]`` for stride s); its backward pass is about
      twice as fast as the convolution's.
    - odd kernel, stride 1, "same": the forward convolution, with the input gradient computed as a forward
      convolution too (see :func:`_same_conv_with_fast_input_gradient`).

    Anything else (dilation, groups, channels_first, other strides or paddings) uses Conv2D's own op.
    """

    # Set by fold_batch_norms: a weak reference to the BatchNorm that follows this convolution and that it
    # applies when that layer uses its moving statistics.
    _folded_batch_norm = None

    def folded_batch_norm(self):
        """The BatchNorm this convolution applies (see fold_batch_norms), or None (a method, see
        BatchNorm.folded_into)."""
        return None if self._folded_batch_norm is None else self._folded_batch_norm()

    def call(self, inputs, training=None):
        bn = self.folded_batch_norm()
        if bn is None or not bn.uses_moving_statistics(training):
            return super().call(inputs)
        # conv(x, K) + bias, normalized: conv(x, K * scale) + (bias * scale + offset), scale and offset per
        # output channel. Saves the normalization's passes over the output (about 10% of ResNet101's time).
        scale, offset = bn.affine()
        kernel = tf.cast(self.kernel, tf.float32) * scale
        bias = offset + (tf.cast(self.bias, tf.float32) * scale if self.use_bias else 0.0)
        outputs = tf.nn.bias_add(
            self.convolution_op(inputs, tf.cast(kernel, inputs.dtype)), tf.cast(bias, inputs.dtype)
        )
        return self.activation(outputs) if self.activation is not None else outputs

    def convolution_op(self, inputs, kernel):
        if self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1) or self.groups != 1:
            return super().convolution_op(inputs, kernel)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        kernel = tf.cast(kernel, inputs.dtype)
        channels = inputs.shape[-1]
        if self.padding == "valid" and inputs.shape[1] == kh and inputs.shape[2] == kw:
            x = tf.reshape(inputs, [-1, kh * kw * channels])
            y = _matmul_with_fast_input_gradient(x, tf.reshape(kernel, [kh * kw * channels, self.filters]))
            return tf.reshape(y, [-1, 1, 1, self.filters])
        if (kh, kw) == (1, 1):
            # For a 1x1 kernel "valid" and "same" agree: output pixel (i, j) reads input pixel (i*sh, j*sw).
            x = inputs[:, ::sh, ::sw, :] if (sh, sw) != (1, 1) else inputs
            shape = tf.shape(x)
            y = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(kernel, [channels, self.filters]))
            return tf.reshape(y, tf.concat([shape[:3], [self.filters]], axis=0))
        if self.padding == "same" and (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1:
            return _same_conv_with_fast_input_gradient(inputs, kernel)
        return super().convolution_op(inputs, kernel)


def fold_batch_norms(model: keras.Model) -> int:
    """Let each FastConv2D of ``model`` (nested models too) that feeds only a float32 BatchNorm apply that
    normalization itself whenever the BatchNorm would use its moving statistics (inference, or TRAIN_BN
    False). Outputs and gradients are unchanged up to float rounding; weights stay where they are.

    In such a pair the convolution's output tensor is already normalized and the BatchNorm passes it
    through, which matters only to code that reads the convolution's own output (e.g. ``run_graph``).
    Returns the number of pairs folded.
    """
    folded = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            folded += fold_batch_norms(layer)
            continue
        if not isinstance(layer, BatchNorm) or len(layer._inbound_nodes) != 1:
            continue
        parents = layer._inbound_nodes[0].parent_nodes
        conv = parents[0].operation if len(parents) == 1 else None
        if (
            not isinstance(conv, FastConv2D)
            or len(conv._inbound_nodes) != 1
            or len(conv._outbound_nodes) != 1
            or conv.activation not in (None, keras.activations.linear)
            or conv.compute_dtype != "float32"
            or layer.compute_dtype != "float32"
        ):
            continue
        conv._folded_batch_norm = weakref.ref(layer)
        layer._folded_into = weakref.ref(conv)
        folded += 1
    return folded


@keras.saving.register_keras_serializable(package="mrcnn")
class FastConv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` (same weights and outputs); with strides equal to the kernel size and
    "valid" padding (Matterport's mrcnn_mask_deconv: 2x2, stride 2) it is one matmul and a pixel shuffle.

    Each input pixel then writes its own kh x kw output block and blocks do not overlap: output pixel
    (i*kh + a, j*kw + b, f) = sum_c x[i, j, c] * kernel[a, b, f, c]. The matmul and its gradients are
    faster on the CPU than TensorFlow's transposed convolution (0.11 s against 0.15 s forward, on 66 ROIs).
    """

    def call(self, inputs):
        kh, kw = self.kernel_size
        if (
            self.data_format != "channels_last"
            or tuple(self.strides) != (kh, kw)
            or self.padding != "valid"
            or tuple(self.dilation_rate) != (1, 1)
            or self.output_padding is not None
        ):
            return super().call(inputs)
        channels = inputs.shape[-1]
        kernel = tf.cast(self.kernel, inputs.dtype)  # [kh, kw, F, C]
        weights = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [channels, kh * kw * self.filters])
        shape = tf.shape(inputs)
        n, h, w = shape[0], shape[1], shape[2]
        y = tf.matmul(tf.reshape(inputs, [-1, channels]), weights)  # [n*h*w, (a, b, f)]
        y = tf.reshape(y, [n, h, w, kh, kw, self.filters])
        y = tf.transpose(y, [0, 1, 3, 2, 4, 5])  # [n, h, a, w, b, f]
        y = tf.reshape(y, [n, h * kh, w * kw, self.filters])
        if self.use_bias:
            y = y + tf.cast(self.bias, y.dtype)
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
