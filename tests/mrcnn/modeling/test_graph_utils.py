import numpy as np
import pytest
import tensorflow as tf

from mrcnn.modeling.graph_utils import (
    apply_box_deltas_graph,
    batch_slice,
    box_refinement_graph,
    clip_boxes_graph,
    denorm_boxes_graph,
    norm_boxes_graph,
    overlaps_graph,
    parse_image_meta_graph,
    trim_zeros_graph,
)


def numpy_refinement(box, gt_box):
    h, w = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    cy, cx = box[:, 0] + 0.5 * h, box[:, 1] + 0.5 * w
    gh, gw = gt_box[:, 2] - gt_box[:, 0], gt_box[:, 3] - gt_box[:, 1]
    gcy, gcx = gt_box[:, 0] + 0.5 * gh, gt_box[:, 1] + 0.5 * gw
    return np.stack([(gcy - cy) / h, (gcx - cx) / w, np.log(gh / h), np.log(gw / w)], axis=1)


def test_apply_box_deltas_hand_computed():
    boxes = tf.constant([[10.0, 20.0, 30.0, 60.0]])  # centre (20, 40), size 20 x 40
    deltas = tf.constant([[0.5, -0.25, np.log(2.0), 0.0]])
    # centre y 20 + 0.5 * 20 = 30, x 40 - 0.25 * 40 = 30; height 40, width 40.
    np.testing.assert_allclose(
        apply_box_deltas_graph(boxes, deltas).numpy(), [[10.0, 10.0, 50.0, 50.0]], rtol=1e-6
    )


def test_apply_box_deltas_inverts_refinement_with_leading_dims():
    rng = np.random.default_rng(0)
    yx = rng.uniform(0, 50, (2, 3, 2))
    boxes = np.concatenate([yx, yx + rng.uniform(1, 30, (2, 3, 2))], axis=-1).astype(np.float32)
    yx = rng.uniform(0, 50, (2, 3, 2))
    gt = np.concatenate([yx, yx + rng.uniform(1, 30, (2, 3, 2))], axis=-1).astype(np.float32)
    deltas = numpy_refinement(boxes.reshape(-1, 4), gt.reshape(-1, 4)).reshape(2, 3, 4)
    np.testing.assert_allclose(apply_box_deltas_graph(boxes, deltas).numpy(), gt, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(box_refinement_graph(boxes, gt).numpy(), deltas, rtol=1e-4, atol=1e-5)


def test_clip_boxes_shared_and_per_image_windows():
    boxes = tf.constant([[[-0.2, 0.1, 0.5, 1.3]], [[0.3, 0.3, 0.9, 0.9]]])
    np.testing.assert_allclose(
        clip_boxes_graph(boxes, tf.constant([0.0, 0.0, 1.0, 1.0])).numpy(),
        [[[0.0, 0.1, 0.5, 1.0]], [[0.3, 0.3, 0.9, 0.9]]],
    )
    windows = tf.constant([[[0.0, 0.0, 1.0, 1.0]], [[0.4, 0.0, 0.8, 0.5]]])
    np.testing.assert_allclose(
        clip_boxes_graph(boxes, windows).numpy(), [[[0.0, 0.1, 0.5, 1.0]], [[0.4, 0.3, 0.8, 0.5]]]
    )


def test_norm_and_denorm_boxes_match_matterport_convention():
    boxes = tf.constant([[0, 0, 128, 64], [10, 20, 30, 40]])
    normed = norm_boxes_graph(boxes, tf.constant([128.0, 64.0]))
    expected = (np.array([[0, 0, 128, 64], [10, 20, 30, 40]]) - [0, 0, 1, 1]) / [127, 63, 127, 63]
    np.testing.assert_allclose(normed.numpy(), expected, rtol=1e-6)
    restored = denorm_boxes_graph(normed, tf.constant([128.0, 64.0, 3.0]))
    assert restored.dtype == tf.int32
    np.testing.assert_array_equal(restored.numpy(), boxes.numpy())


def test_overlaps_hand_ious():
    b1 = tf.constant([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    b2 = tf.constant(
        [[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [0.0, 10.0, 10.0, 20.0], [0.0, 0.0, 5.0, 10.0]]
    )
    expected = [[1.0, 25.0 / 175.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(overlaps_graph(b1, b2).numpy(), expected, rtol=1e-6)
    assert overlaps_graph(b1, tf.zeros((0, 4))).shape == (2, 0)


def test_trim_zeros():
    boxes = tf.constant(
        [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]
    )
    trimmed, keep = trim_zeros_graph(boxes)
    np.testing.assert_array_equal(trimmed.numpy(), [[1, 2, 3, 4], [0, 0, 0, 0.5]])
    np.testing.assert_array_equal(keep.numpy(), [True, False, True, False])


def test_parse_image_meta():
    meta = np.array([[7, 480, 640, 3, 128, 128, 3, 16, 0, 112, 128, 0.2, 1, 1, 0]], np.float32)
    parsed = parse_image_meta_graph(meta)
    np.testing.assert_array_equal(parsed["image_id"].numpy(), [7])
    np.testing.assert_array_equal(parsed["original_image_shape"].numpy(), [[480, 640, 3]])
    np.testing.assert_array_equal(parsed["image_shape"].numpy(), [[128, 128, 3]])
    np.testing.assert_array_equal(parsed["window"].numpy(), [[16, 0, 112, 128]])
    np.testing.assert_allclose(parsed["scale"].numpy(), [0.2])
    np.testing.assert_array_equal(parsed["active_class_ids"].numpy(), [[1, 1, 0]])


def test_batch_slice_single_and_multiple_outputs():
    x = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = tf.constant([10.0, 20.0, 30.0])
    single = batch_slice(x, lambda a: tf.reduce_sum(a), 3)
    np.testing.assert_allclose(single.numpy(), [3, 7, 11])
    total, scaled = batch_slice([x, y], lambda a, b: [tf.reduce_sum(a) + b, a * b], 3, names=["t", "s"])
    np.testing.assert_allclose(total.numpy(), [13, 27, 41])
    np.testing.assert_allclose(scaled.numpy(), x.numpy() * y.numpy()[:, None])
    with pytest.raises(ValueError):
        batch_slice([x], lambda a: a, 2, names=["a", "b"])
