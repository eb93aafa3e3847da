import keras
import numpy as np
import pytest

from mrcnn.modeling.layers import BatchNorm, FlattenRois, UnflattenRois


def _input(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(8, 4, 4, 3)) * 2.0 + 5.0).astype("float32")


def _stats(layer):
    return layer.moving_mean.numpy(), layer.moving_variance.numpy()


def test_frozen_batchnorm_ignores_training_flag():
    x = _input()
    bn = BatchNorm(name="bn_conv1", train_bn=False)
    inference = np.array(bn(x, training=False))
    mean0, var0 = _stats(bn)
    training = np.array(bn(x, training=True))
    np.testing.assert_allclose(training, inference, rtol=1e-6, atol=1e-6)
    mean1, var1 = _stats(bn)
    np.testing.assert_array_equal(mean1, mean0)
    np.testing.assert_array_equal(var1, var0)
    # Inference mode with the initial statistics (mean 0, var 1) is almost the identity.
    np.testing.assert_allclose(inference, x / np.sqrt(1 + bn.epsilon), rtol=1e-5)


def test_frozen_batchnorm_inside_model_called_in_training():
    inp = keras.Input((4, 4, 3))
    bn = BatchNorm(name="bn", train_bn=False)
    model = keras.Model(inp, bn(inp))
    x = _input(1)
    np.testing.assert_allclose(
        np.array(model(x, training=True)), np.array(model(x, training=False)), atol=1e-6
    )
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(3))


@pytest.mark.parametrize("train_bn", [True, None])
def test_trainable_batchnorm_uses_batch_statistics_and_updates(train_bn):
    x = _input(2)
    bn = BatchNorm(name="bn", train_bn=train_bn)
    inference = np.array(bn(x, training=False))
    training = np.array(bn(x, training=True))
    assert not np.allclose(training, inference, atol=1e-2)
    # Batch statistics normalize each channel to ~zero mean, unit variance.
    np.testing.assert_allclose(training.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    mean = bn.moving_mean.numpy()
    np.testing.assert_allclose(mean, (1 - bn.momentum) * x.mean(axis=(0, 1, 2)), rtol=1e-4)


def test_batchnorm_config_round_trip():
    bn = BatchNorm(name="bn2a_branch2a", train_bn=False, epsilon=1e-3)
    config = bn.get_config()
    assert config["name"] == "bn2a_branch2a"
    assert config["train_bn"] is False
    clone = BatchNorm.from_config(config)
    assert clone.name == "bn2a_branch2a" and clone.train_bn is False and clone.epsilon == 1e-3
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(bn))
    assert isinstance(restored, BatchNorm) and restored.train_bn is False


def test_flatten_unflatten_rois_with_dynamic_batch_and_rois():
    inp = keras.Input((None, 2, 3, 5))
    flat = FlattenRois(name="flat")(inp)
    assert tuple(flat.shape) == (None, 2, 3, 5)
    out = UnflattenRois(name="unflat")([flat, inp])
    vec = UnflattenRois(inner_shape=(30,), name="vec")([flat, inp])
    assert tuple(out.shape) == (None, None, 2, 3, 5)
    assert tuple(vec.shape) == (None, None, 30)
    model = keras.Model(inp, [flat, out, vec])
    for b, n in [(1, 4), (3, 2)]:
        x = np.arange(b * n * 30, dtype="float32").reshape(b, n, 2, 3, 5)
        f, o, v = (np.array(t) for t in model(x))
        np.testing.assert_array_equal(f, x.reshape(b * n, 2, 3, 5))
        np.testing.assert_array_equal(o, x)
        np.testing.assert_array_equal(v, x.reshape(b, n, 30))
    assert UnflattenRois.from_config(model.get_layer("vec").get_config()).inner_shape == (30,)


def test_whole_input_conv_equals_conv2d_and_its_gradient():
    import tensorflow as tf

    from mrcnn.modeling.layers import WholeInputConv2D

    x = tf.random.stateless_normal([5, 7, 7, 8], seed=[1, 2])
    fast = WholeInputConv2D(16, (7, 7), padding="valid")
    plain = keras.layers.Conv2D(16, (7, 7), padding="valid")
    fast.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(fast.get_weights())
    assert [tuple(w.shape) for w in fast.weights] == [(7, 7, 8, 16), (16,)]
    with tf.GradientTape(persistent=True) as tape:
        a, b = fast(x), plain(x)
        la, lb = tf.reduce_sum(a * a), tf.reduce_sum(b * b)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    assert a.shape == (5, 1, 1, 16)
    np.testing.assert_allclose(
        tape.gradient(la, fast.kernel).numpy(), tape.gradient(lb, plain.kernel).numpy(), rtol=1e-3, atol=1e-3
    )
    # another input size falls back to the ordinary convolution
    assert fast(tf.zeros([2, 9, 9, 8])).shape == (2, 3, 3, 16)
