import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mrcnn.anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors
from mrcnn.config import Config


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)


def test_generate_anchors_known_layout():
    anchors = generate_anchors(32, [0.5, 1, 2], (2, 3), feature_stride=4, anchor_stride=1)
    assert anchors.shape == (2 * 3 * 3, 4)
    s = math.sqrt(2)
    # First cell (centre 0, 0): ratios 0.5, 1, 2 in order; ratio = width / height.
    np.testing.assert_allclose(
        anchors[:3],
        [
            [-16 * s, -16 / s, 16 * s, 16 / s],
            [-16, -16, 16, 16],
            [-16 / s, -16 * s, 16 / s, 16 * s],
        ],
    )
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    # Row-major over cells (x fastest), each cell repeated for the three ratios.
    expected_centers = np.repeat([[y, x] for y in (0, 4) for x in (0, 4, 8)], 3, axis=0)
    np.testing.assert_allclose(centers, expected_centers, atol=1e-9)
    sizes = anchors[:, 2:] - anchors[:, :2]
    np.testing.assert_allclose(np.sqrt(sizes[:, 0] * sizes[:, 1]), 32)


def test_generate_anchors_anchor_stride_skips_cells():
    anchors = generate_anchors(16, [1], (4, 4), feature_stride=8, anchor_stride=2)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_allclose(centers, [[0, 0], [0, 16], [16, 0], [16, 16]])


def test_generate_pyramid_anchors_concatenates_levels_in_order():
    shapes = np.array([[4, 4], [2, 2]])
    anchors = generate_pyramid_anchors((8, 16), [0.5, 1, 2], shapes, [4, 8], 1)
    assert anchors.shape == (16 * 3 + 4 * 3, 4)
    np.testing.assert_allclose(anchors[:48], generate_anchors(8, [0.5, 1, 2], (4, 4), 4, 1))
    np.testing.assert_allclose(anchors[48:], generate_anchors(16, [0.5, 1, 2], (2, 2), 8, 1))


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([64, 128, 192, 256]),
    st.sampled_from([64, 128, 320]),
    st.lists(st.sampled_from([0.5, 1, 2, 3]), min_size=1, max_size=4, unique=True),
    st.integers(1, 3),
)
def test_anchor_count_is_sum_over_levels(h, w, ratios, anchor_stride):
    strides = [4, 8, 16, 32, 64]
    shapes = np.array([[math.ceil(h / s), math.ceil(w / s)] for s in strides])
    anchors = generate_pyramid_anchors((8, 16, 32, 64, 128), ratios, shapes, strides, anchor_stride)
    expected = sum(math.ceil(sh / anchor_stride) * math.ceil(sw / anchor_stride) for sh, sw in shapes)
    assert anchors.shape == (expected * len(ratios), 4)
    assert np.all(anchors[:, 2] > anchors[:, 0]) and np.all(anchors[:, 3] > anchors[:, 1])


def test_compute_backbone_shapes_resnet():
    config = TinyConfig()
    shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    np.testing.assert_array_equal(shapes, [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]])
    np.testing.assert_array_equal(
        compute_backbone_shapes(config, (100, 70, 3)), [[25, 18], [13, 9], [7, 5], [4, 3], [2, 2]]
    )


def test_compute_backbone_shapes_callable_backbone():
    def backbone(input_image, stage5=True, train_bn=False):
        raise AssertionError("not called")

    class CallableConfig(TinyConfig):
        BACKBONE = staticmethod(backbone)
        COMPUTE_BACKBONE_SHAPE = staticmethod(lambda shape: np.array([[shape[0] // 2, shape[1] // 2]]))

    np.testing.assert_array_equal(compute_backbone_shapes(CallableConfig(), (64, 32, 3)), [[32, 16]])
