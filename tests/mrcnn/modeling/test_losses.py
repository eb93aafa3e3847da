import numpy as np
import pytest
import tensorflow as tf

from mrcnn.modeling.losses import (
    mrcnn_attr_loss_graph,
    mrcnn_bbox_loss_graph,
    mrcnn_class_loss_graph,
    mrcnn_mask_loss_graph,
    rpn_bbox_loss_graph,
    rpn_class_loss_graph,
    smooth_l1_loss,
)

RNG = np.random.default_rng(7)


def np_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_smooth_l1(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d**2, d - 0.5)


def assert_scalar(value, expected):
    assert value.dtype == tf.float32 and value.shape == ()
    np.testing.assert_allclose(float(value), expected, rtol=1e-5, atol=1e-6)


def test_smooth_l1_pieces():
    np.testing.assert_allclose(smooth_l1_loss([0.0, 0.0, 0.0], [0.5, -2.0, 1.0]).numpy(), [0.125, 1.5, 0.5])


def test_rpn_class_loss():
    match = np.array([[1, 0, -1, -1], [0, 1, 0, -1]], np.int32)[..., None]
    logits = RNG.normal(size=(2, 4, 2)).astype(np.float32)
    used = match[..., 0] != 0
    labels = (match[..., 0] == 1).astype(int)
    expected = -np.take_along_axis(np_log_softmax(logits), labels[..., None], axis=-1)[..., 0][used].mean()
    assert_scalar(rpn_class_loss_graph(match, logits), expected)
    assert_scalar(rpn_class_loss_graph(np.zeros((2, 4, 1), np.int32), logits), 0.0)


def test_rpn_bbox_loss_packs_targets_per_image():
    match = np.array([[0, 1, -1, 1, 1], [1, 0, 0, 0, -1]], np.int32)[..., None]
    pred = RNG.normal(size=(2, 5, 4)).astype(np.float32)
    targets = np.zeros((2, 4, 4), np.float32)
    targets[0, :3] = RNG.normal(size=(3, 4))  # anchors 1, 3, 4 of image 0
    targets[1, :1] = RNG.normal(size=(1, 4))  # anchor 0 of image 1
    pairs = (
        np.concatenate([pred[0, [1, 3, 4]], pred[1, [0]]]),
        np.concatenate([targets[0, :3], targets[1, :1]]),
    )
    expected = np_smooth_l1(*pairs).mean()
    assert_scalar(rpn_bbox_loss_graph(targets, match, pred), expected)
    assert_scalar(rpn_bbox_loss_graph(targets, np.zeros_like(match), pred), 0.0)


def test_mrcnn_class_loss_weights_by_active_class_of_prediction():
    target = np.array([[1, 2, 0], [2, 0, 0]], np.int32)
    logits = np.array(
        [[[0, 3, 0], [0, 0, 3], [3, 0, 0]], [[0, 0, 1], [0, 0, 2], [0, 5, 0]]], np.float32
    )  # predicted classes: [[1, 2, 0], [2, 2, 1]]
    active = np.array([[1, 1, 1], [1, 0, 1]], np.float32)  # image 1 has no class 1
    ce = -np.take_along_axis(np_log_softmax(logits), target[..., None], axis=-1)[..., 0]
    weights = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    assert_scalar(mrcnn_class_loss_graph(target, logits, active), (ce * weights).sum() / weights.sum())
    assert_scalar(mrcnn_class_loss_graph(target, logits, np.zeros_like(active)), 0.0)


def test_mrcnn_bbox_loss_uses_true_class_deltas_of_positives():
    target_ids = np.array([[2, 0, 1], [0, 0, 1]], np.int32)
    target_bbox = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    pred = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    pos = [(0, 0, 2), (0, 2, 1), (1, 2, 1)]
    expected = np_smooth_l1(
        np.stack([target_bbox[b, t] for b, t, _ in pos]), np.stack([pred[b, t, c] for b, t, c in pos])
    )
    assert_scalar(mrcnn_bbox_loss_graph(target_bbox, target_ids, pred), expected.mean())
    assert_scalar(mrcnn_bbox_loss_graph(target_bbox, np.zeros_like(target_ids), pred), 0.0)


def test_mrcnn_mask_loss_uses_true_class_mask_of_positives():
    target_ids = np.array([[1, 0], [0, 2]], np.int32)
    target_masks = (RNG.uniform(size=(2, 2, 4, 4)) > 0.5).astype(np.float32)
    pred = RNG.uniform(0.01, 0.99, size=(2, 2, 4, 4, 3)).astype(np.float32)
    y_true = np.stack([target_masks[0, 0], target_masks[1, 1]])
    y_pred = np.stack([pred[0, 0, :, :, 1], pred[1, 1, :, :, 2]])
    expected = -(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred)).mean()
    assert_scalar(mrcnn_mask_loss_graph(target_masks, target_ids, pred), expected)
    assert_scalar(mrcnn_mask_loss_graph(target_masks, np.zeros_like(target_ids), pred), 0.0)


@pytest.mark.parametrize("which", ["rpn_class", "rpn_bbox", "class", "bbox", "mask"])
def test_empty_losses_have_finite_zero_gradients(which):
    logits = tf.Variable(RNG.normal(size=(1, 3, 3, 4, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        if which == "rpn_class":
            loss = rpn_class_loss_graph(np.zeros((1, 3, 1), np.int32), tf.reshape(logits, [1, -1, 2])[:, :3])
        elif which == "rpn_bbox":
            flat = tf.reshape(logits, [1, -1, 4])[:, :3]
            loss = rpn_bbox_loss_graph(np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 1), np.int32), flat)
        elif which == "class":
            loss = mrcnn_class_loss_graph(
                np.zeros((1, 3), np.int32), logits[:, :, 0, 0, 0, :], np.zeros((1, 3))
            )
        elif which == "bbox":
            pred = tf.reshape(logits, [1, 3, 3, 4, -1])[..., 0]
            loss = mrcnn_bbox_loss_graph(np.zeros((1, 3, 4), np.float32), np.zeros((1, 3), np.int32), pred)
        else:
            loss = mrcnn_mask_loss_graph(
                np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 3), np.int32), logits[0, :1]
            )
    grad = tape.gradient(loss, logits)
    assert float(loss) == 0.0
    if grad is not None:
        assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy()))


def test_attribute_loss_is_the_weighted_mean_bce_of_positive_rois():
    """Hand-computed: only positive ROIs count, and only the (instance, attribute) entries with weight > 0."""
    logits = np.array([[[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [9.0, 9.0, 9.0]]], np.float32)  # [1, 3, 3]
    labels = np.array([[[1, 0, 1], [0, 1, 1], [0, 0, 0]]], np.float32)
    weights = np.array([[[1, 1, 0], [1, 0, 1], [1, 1, 1]]], np.float32)  # third attr of ROI 0 unlabelled
    class_ids = np.array([[2, 1, 0]], np.int32)  # ROI 2 is a negative: its (huge) logits must not count

    def bce(z, y):
        return max(z, 0) - z * y + np.log1p(np.exp(-abs(z)))

    entries = [bce(2.0, 1), bce(-1.0, 0), bce(0.0, 0), bce(-2.0, 1)]
    loss = mrcnn_attr_loss_graph(labels, weights, class_ids, logits)
    assert_scalar(loss, sum(entries) / 4)


def test_attribute_loss_without_positives_or_weights_is_zero_with_finite_gradients():
    logits = tf.Variable(RNG.normal(size=(2, 4, 3)).astype(np.float32))
    labels = np.ones((2, 4, 3), np.float32)
    for class_ids, weights in (
        (np.zeros((2, 4), np.int32), np.ones((2, 4, 3), np.float32)),  # no positive ROI
        (np.ones((2, 4), np.int32), np.zeros((2, 4, 3), np.float32)),  # nothing labelled
    ):
        with tf.GradientTape() as tape:
            loss = mrcnn_attr_loss_graph(labels, weights, class_ids, logits)
        grad = tf.convert_to_tensor(tape.gradient(loss, logits)).numpy()
        assert float(loss) == 0.0
        assert np.all(np.isfinite(grad)) and not grad.any()
