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


def _compare_with_plain(fast, plain, x, tol=1e-4):
    """Same weights in both layers; outputs, input gradients and weight gradients must agree."""
    import tensorflow as tf

    fast.build(x.shape)
    plain.build(x.shape)
    assert [tuple(w.shape) for w in fast.weights] == [tuple(w.shape) for w in plain.weights]
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.3 for w in plain.get_weights()]
    fast.set_weights(weights)
    plain.set_weights(weights)
    probe = tf.random.stateless_normal(plain.compute_output_shape(x.shape), seed=[4, 5])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = fast(x), plain(x)
        # a random linear probe: every output element gets its own upstream gradient
        la, lb = tf.reduce_sum(a * probe), tf.reduce_sum(b * probe)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(tape.gradient(la, x).numpy(), tape.gradient(lb, x).numpy(), rtol=tol, atol=tol)
    for wa, wb in zip(fast.trainable_weights, plain.trainable_weights):
        np.testing.assert_allclose(
            tape.gradient(la, wa).numpy(), tape.gradient(lb, wb).numpy(), rtol=tol * 10, atol=tol * 10
        )


@pytest.mark.parametrize(
    "input_shape, args",
    [
        ((5, 7, 7, 8), dict(filters=16, kernel_size=(7, 7), padding="valid")),  # whole input: matmul
        ((6, 1, 1, 12), dict(filters=10, kernel_size=(1, 1))),  # whole 1x1 input (mrcnn_class_conv2)
        ((2, 9, 11, 8), dict(filters=6, kernel_size=(1, 1), activation="relu")),  # pointwise matmul
        ((2, 9, 11, 8), dict(filters=6, kernel_size=(1, 1), strides=2)),  # strided 1x1, odd sizes
        ((2, 8, 10, 8), dict(filters=6, kernel_size=(1, 1), strides=2, padding="same")),
        ((3, 9, 10, 8), dict(filters=5, kernel_size=(3, 3), padding="same")),  # custom input gradient
        ((2, 12, 12, 4), dict(filters=5, kernel_size=(5, 3), padding="same", use_bias=False)),
        ((2, 12, 12, 4), dict(filters=5, kernel_size=(3, 3), strides=2, padding="same")),  # fallback
        ((2, 12, 12, 4), dict(filters=5, kernel_size=(2, 2), padding="same")),  # even kernel: fallback
        ((2, 9, 9, 8), dict(filters=16, kernel_size=(7, 7), padding="valid")),  # not whole input: fallback
    ],
)
def test_fast_conv_equals_conv2d_with_gradients(input_shape, args):
    import tensorflow as tf

    from mrcnn.modeling.layers import FastConv2D

    x = tf.random.stateless_normal(input_shape, seed=[1, 2])
    _compare_with_plain(FastConv2D(**args), keras.layers.Conv2D(**args), x)


@pytest.mark.parametrize(
    "input_shape, args",
    [
        ((3, 5, 6, 8), dict(filters=7, kernel_size=(2, 2), strides=2, activation="relu")),  # matmul + shuffle
        ((2, 4, 4, 3), dict(filters=5, kernel_size=(3, 2), strides=(3, 2))),
        ((2, 4, 4, 3), dict(filters=5, kernel_size=(3, 3), strides=2)),  # overlapping blocks: fallback
    ],
)
def test_fast_conv_transpose_equals_conv2d_transpose(input_shape, args):
    import tensorflow as tf

    from mrcnn.modeling.layers import FastConv2DTranspose

    x = tf.random.stateless_normal(input_shape, seed=[6, 7])
    _compare_with_plain(FastConv2DTranspose(**args), keras.layers.Conv2DTranspose(**args), x)


def test_fast_conv_works_in_a_functional_model_with_unknown_sizes():
    import tensorflow as tf

    from mrcnn.modeling.layers import FastConv2D, FastConv2DTranspose

    inp = keras.Input((None, None, 4))
    x = FastConv2D(6, (3, 3), padding="same")(inp)
    x = FastConv2D(5, (1, 1), strides=2)(x)
    out = FastConv2DTranspose(3, (2, 2), strides=2)(x)
    model = keras.Model(inp, out)
    run = tf.function(lambda t: model(t))
    assert run(tf.zeros([2, 8, 8, 4])).shape == (2, 8, 8, 3)
    assert run(tf.zeros([1, 6, 10, 4])).shape == (1, 6, 10, 3)


def _conv_bn_model(train_bn):
    from mrcnn.modeling.layers import BatchNorm, FastConv2D

    inp = keras.Input((None, None, 3))
    x = FastConv2D(4, (3, 3), padding="same", name="conv")(inp)
    x = BatchNorm(name="bn", train_bn=train_bn)(x)
    out = keras.layers.Activation("relu")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(5)
    model.get_layer("conv").set_weights(
        [rng.normal(size=(3, 3, 3, 4)).astype("float32"), rng.normal(size=4).astype("float32")]
    )
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.1, 3, 4)])
    return model


@pytest.mark.parametrize("train_bn", [False, True])
def test_folded_batch_norm_gives_the_same_outputs_and_gradients(train_bn):
    import tensorflow as tf

    from mrcnn.modeling.layers import fold_batch_norms

    x = tf.random.stateless_normal([2, 6, 5, 3], seed=[8, 9])
    plain, folded = _conv_bn_model(train_bn), _conv_bn_model(train_bn)
    assert fold_batch_norms(folded) == 1
    assert folded.get_layer("conv").folded_batch_norm() is folded.get_layer("bn")
    assert len(folded.weights) == len(plain.weights) == 6  # folding adds no weights to either layer
    for training in (False, True):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            a, b = plain(x, training=training), folded(x, training=training)
            la, lb = tf.reduce_sum(a * a), tf.reduce_sum(b * b)
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            tape.gradient(lb, x).numpy(), tape.gradient(la, x).numpy(), rtol=1e-4, atol=1e-4
        )
        for va, vb in zip(plain.trainable_weights, folded.trainable_weights):
            np.testing.assert_allclose(
                tape.gradient(lb, vb).numpy(), tape.gradient(la, va).numpy(), rtol=1e-4, atol=1e-4
            )
    # with batch statistics (train_bn and training) the BatchNorm normalizes by itself and updates its averages
    before = folded.get_layer("bn").moving_mean.numpy().copy()
    folded(x, training=True)
    assert np.any(folded.get_layer("bn").moving_mean.numpy() != before) == train_bn


def test_fold_leaves_a_convolution_with_other_consumers_alone():
    from mrcnn.modeling.layers import BatchNorm, FastConv2D, fold_batch_norms

    inp = keras.Input((8, 8, 3))
    c = FastConv2D(4, (1, 1))(inp)
    out = keras.layers.Add()([BatchNorm()(c), c])  # the raw conv output is used too: must not fold
    assert fold_batch_norms(keras.Model(inp, out)) == 0
