import keras
import numpy as np
import tensorflow as tf

from mrcnn.modeling.roi_align import (
    PyramidROIAlign,
    crop_and_resize,
    crop_and_resize_image_gradient,
    roi_pyramid_level,
)

META_SIZE = 12 + 3


def make_meta(batch: int, height: int, width: int) -> np.ndarray:
    meta = np.zeros((batch, META_SIZE), np.float32)
    meta[:, 4:7] = [height, width, 3]
    meta[:, 7:11] = [0, 0, height, width]
    meta[:, 11] = 1.0
    return meta


def constant_pyramid(batch: int, channels: int = 2) -> list[np.ndarray]:
    """P2..P5 with value == level everywhere, so the chosen level can be read from the crop."""
    return [np.full((batch, 64 // 2**i, 64 // 2**i, channels), 2.0 + i, np.float32) for i in range(4)]


def test_level_assignment_matches_fpn_formula():
    # 512x512 image: a 224 px box is level 4, 112 px level 3, the full image level 5, a tiny box level 2.
    boxes = np.array(
        [[0, 0, 224 / 512, 224 / 512], [0, 0, 112 / 512, 112 / 512], [0, 0, 1, 1], [0, 0, 0.02, 0.02]]
    )
    levels = roi_pyramid_level(tf.constant(boxes, tf.float32), tf.constant([512.0, 512.0, 3.0]))
    np.testing.assert_array_equal(levels.numpy(), [4, 3, 5, 2])
    # Zero-size padding boxes go to level 2 rather than producing NaN.
    assert roi_pyramid_level(tf.zeros((1, 4)), tf.constant([512.0, 512.0, 3.0])).numpy()[0] == 2


def test_routes_boxes_to_levels_and_keeps_order_across_batch():
    big = [0.0, 0.0, 1.0, 1.0]  # P5
    small = [0.1, 0.1, 0.12, 0.12]  # P2
    mid4 = [0.2, 0.2, 0.2 + 224 / 512, 0.2 + 224 / 512]  # P4
    mid3 = [0.3, 0.3, 0.3 + 112 / 512, 0.3 + 112 / 512]  # P3
    boxes = np.array([[big, small, mid4, mid3], [mid3, [0, 0, 0, 0], big, small]], np.float32)
    maps = constant_pyramid(2)
    # Make image 1 distinguishable from image 0 to check the batch index of each crop.
    maps = [np.concatenate([m[:1], m[1:] + 10.0], axis=0) for m in maps]
    out = PyramidROIAlign((3, 3))([boxes, make_meta(2, 512, 512), *maps]).numpy()
    assert out.shape == (2, 4, 3, 3, 2)
    expected = np.array([[5, 2, 4, 3], [13, 12, 15, 12]], np.float32)
    np.testing.assert_allclose(out[..., 0].mean(axis=(2, 3)), expected)
    np.testing.assert_allclose(out.std(axis=(2, 3, 4)), 0.0, atol=1e-6)


def test_crop_values_follow_coordinates():
    # P2 (64x64) holds the x index in channel 0 and the y index in channel 1; a tiny image routes all to P2.
    h = w = 64
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    p2 = np.stack([xs, ys], axis=-1)[np.newaxis]
    others = [np.zeros((1, s, s, 2), np.float32) for s in (32, 16, 8)]
    box = np.array([[[0.25, 0.5, 0.75, 1.0]]], np.float32)
    out = PyramidROIAlign((5, 5))([box, make_meta(1, 64, 64), p2, *others]).numpy()[0, 0]
    # crop_and_resize samples y1*(H-1) + i*(y2-y1)*(H-1)/(ph-1).
    exp_x = 0.5 * 63 + np.arange(5) * 0.5 * 63 / 4
    exp_y = 0.25 * 63 + np.arange(5) * 0.5 * 63 / 4
    # edges are kept 1e-5 inside the map (see _MAX_EDGE), hence atol
    np.testing.assert_allclose(out[..., 0], np.tile(exp_x, (5, 1)), atol=1e-3)
    np.testing.assert_allclose(out[..., 1], np.tile(exp_y[:, None], (1, 5)), atol=1e-3)


def test_functional_model_with_unknown_batch():
    boxes_in = keras.Input((None, 4))
    meta_in = keras.Input((META_SIZE,))
    maps_in = [keras.Input((None, None, 2)) for _ in range(4)]
    layer = PyramidROIAlign((7, 7), name="roi_align_classifier")
    out = layer([boxes_in, meta_in, *maps_in])
    assert tuple(out.shape) == (None, None, 7, 7, 2)
    model = keras.Model([boxes_in, meta_in, *maps_in], out)
    boxes = np.tile(np.array([[[0, 0, 1, 1], [0.1, 0.1, 0.12, 0.12]]], np.float32), (3, 1, 1))
    result = model([boxes, make_meta(3, 512, 512), *constant_pyramid(3)])
    assert tuple(result.shape) == (3, 2, 7, 7, 2)
    np.testing.assert_allclose(np.asarray(result)[:, :, 0, 0, 0], [[5, 2]] * 3)
    assert PyramidROIAlign.from_config(layer.get_config()).pool_shape == (7, 7)


def test_gradients_reach_the_feature_maps_of_the_chosen_levels():
    maps = [tf.Variable(m) for m in constant_pyramid(1)]
    boxes = np.array([[[0, 0, 1, 1], [0.1, 0.1, 0.12, 0.12]]], np.float32)  # P5 and P2
    with tf.GradientTape() as tape:
        out = PyramidROIAlign((2, 2))([boxes, make_meta(1, 512, 512), *maps])
        loss = tf.reduce_sum(out)
    grads = tape.gradient(loss, maps)
    sums = [float(tf.reduce_sum(g)) if g is not None else 0.0 for g in grads]
    np.testing.assert_allclose(sums, [8.0, 0.0, 0.0, 8.0], rtol=1e-5)


def test_box_on_the_image_edge_is_not_extrapolated():
    """A box ending at 1.0 and one ending a rounding error beyond must crop the same values (no zero rows)."""
    feature = tf.random.stateless_uniform([1, 16, 16, 4], seed=[1, 2], minval=1.0, maxval=2.0)
    meta = tf.constant([[0, 64, 64, 3, 64, 64, 3, 0, 0, 64, 64, 1, 0, 0]], tf.float32)
    on_edge = tf.constant([[[0.2, 0.2, 1.0, 1.0]]])
    beyond = tf.constant([[[0.2, 0.2, 1.0000001, 1.0000001]]])
    layer = PyramidROIAlign([7, 7])
    a = layer([on_edge, meta, feature, feature, feature, feature]).numpy()
    b = layer([beyond, meta, feature, feature, feature, feature]).numpy()
    assert a.min() >= 1.0 and b.min() >= 1.0  # every sample inside the map, none extrapolated to 0
    np.testing.assert_allclose(a, b, atol=1e-4)


def _random_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 4] normalized boxes, partly outside the image, with zero-size and flipped ones among them."""
    y = np.sort(rng.uniform(-0.2, 1.2, (count, 2)), axis=1)
    x = np.sort(rng.uniform(-0.2, 1.2, (count, 2)), axis=1)
    boxes = np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1).astype(np.float32)
    boxes[:4] = 0.0  # padding ROIs
    boxes[4] = [0.3, 0.6, 0.3, 0.6]  # a point
    boxes[5] = [0.9, 0.1, 0.2, 0.4]  # y1 > y2: crop_and_resize flips it
    return boxes


def test_crop_and_resize_keeps_tensorflows_output_and_gradient():
    """Same crops as tf.image.crop_and_resize, and the same image gradient as TensorFlow's kernel computes for
    one box at a time (a single box cannot race with itself), summed over the boxes."""
    rng = np.random.default_rng(0)
    image = tf.constant(rng.standard_normal((3, 13, 17, 5)), tf.float32)
    boxes = _random_boxes(rng, 40)
    box_indices = rng.integers(0, 3, 40).astype(np.int32)
    for crop_size in [(7, 7), (1, 1), (4, 1)]:
        dy = tf.constant(rng.standard_normal((40, *crop_size, 5)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(image)
            crops = crop_and_resize(image, boxes, box_indices, crop_size)
            loss = tf.reduce_sum(crops * dy)
        grad = tape.gradient(loss, image).numpy()
        expected_crops = tf.image.crop_and_resize(image, boxes, box_indices, crop_size).numpy()
        np.testing.assert_array_equal(crops.numpy(), expected_crops)
        expected = sum(
            tf.raw_ops.CropAndResizeGradImage(
                grads=dy[i : i + 1],
                boxes=boxes[i : i + 1],
                box_ind=box_indices[i : i + 1],
                image_size=tf.shape(image),
                T=tf.float32,
            ).numpy()
            for i in range(40)
        )
        assert np.abs(expected).max() > 1.0
        # the same terms summed in another order: float32 rounding only
        np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
        direct = crop_and_resize_image_gradient(dy, boxes, box_indices, tf.shape(image)).numpy()
        np.testing.assert_array_equal(direct, grad)


def test_overlapping_crops_lose_no_gradient():
    """32 zero-size padding ROIs per image all sample pixel (0, 0): its gradient is exactly 32 * 7 * 7 every
    time. TensorFlow's CPU kernel, whose threads add into that pixel without synchronisation, loses part of
    it in some runs (issue #11)."""
    image = tf.random.stateless_normal([2, 16, 16, 256], seed=[3, 4])
    boxes = tf.zeros([64, 4])
    box_indices = tf.repeat(tf.range(2), 32)

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(image)
            crops = crop_and_resize(image, boxes, box_indices, (7, 7))
        return tape.gradient(crops, image)

    for _ in range(100):
        grad = gradient().numpy()
        np.testing.assert_array_equal(grad[:, 0, 0], 32 * 49)
        assert np.count_nonzero(grad) == 2 * 32
