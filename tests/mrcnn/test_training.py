"""The training step of mrcnn.training: weight decay, the update it applies."""

import keras
import numpy as np
import tensorflow as tf

from mrcnn.data.synthetic import ShapesDataset
from mrcnn.model import MaskRCNN
from mrcnn.testing import tiny_config
from mrcnn.training import (
    TrainingLoader,
    TrainingModel,
    set_trainable,
    weight_decay_gradient,
    weight_decay_loss,
)


def test_weight_decay_gradient_is_the_gradient_of_weight_decay_loss():
    kernel = keras.Variable(
        np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype("float32"), name="kernel"
    )
    gamma = keras.Variable(np.ones(5, "float32"), name="gamma")
    with tf.GradientTape() as tape:
        loss = weight_decay_loss([kernel, gamma], 0.01)
    np.testing.assert_allclose(loss.numpy(), 0.01 * np.mean(kernel.numpy() ** 2), rtol=1e-6)
    np.testing.assert_allclose(
        weight_decay_gradient(kernel, 0.01).numpy(),
        tape.gradient(loss, kernel).numpy(),
        rtol=1e-6,
        atol=1e-12,
    )
    assert weight_decay_gradient(gamma, 0.01) is None  # BatchNorm gamma and beta are not decayed


def test_train_step_applies_loss_gradient_plus_weight_decay(tmp_path):
    """Plain SGD (no momentum, no clipping): w' = w - lr * d(weighted losses + weight decay)/dw."""
    # ROI_POSITIVE_RATIO = 1 with TRAIN_ROIS_PER_IMAGE >= POST_NMS_ROIS_TRAINING: ROI sampling keeps every
    # positive proposal and only shuffles them, so two forward passes give the same losses.
    config = tiny_config(
        LEARNING_MOMENTUM=0.0,
        GRADIENT_CLIP_NORM=0.0,
        WEIGHT_DECAY=0.5,
        TRAIN_BN=False,
        ROI_POSITIVE_RATIO=1.0,
        POST_NMS_ROIS_TRAINING=16,
    )
    model = MaskRCNN("training", config, str(tmp_path))
    set_trainable(model.keras_model, "heads")
    batch = TrainingLoader(ShapesDataset.build(2, 64, 64, seed=1), config, shuffle=False, workers=1)[0]
    batch = {k: tf.constant(v) for k, v in batch.items()}
    trainer = TrainingModel(model.keras_model, config)
    learning_rate = 0.1
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate), jit_compile=False)
    variables = trainer.trainable_variables
    before = [v.numpy() for v in variables]

    with tf.GradientTape() as tape:
        total, _ = trainer._compute_losses(batch, training=True)
        objective = total + weight_decay_loss(variables, config.WEIGHT_DECAY)
    expected = [
        w - learning_rate * (0.0 if g is None else g.numpy())
        for w, g in zip(before, tape.gradient(objective, variables))
    ]
    logs = tf.function(trainer.train_step)(batch)

    np.testing.assert_allclose(float(logs["loss"]), float(objective), rtol=1e-4)
    decayed = 0
    for v, w, want in zip(variables, before, expected):
        update = np.max(np.abs(want - w))
        np.testing.assert_allclose(v.numpy(), want, atol=max(1e-3 * update, 1e-7), err_msg=v.path)
        decayed += "kernel" in v.path and update > 0
    assert decayed > 10
