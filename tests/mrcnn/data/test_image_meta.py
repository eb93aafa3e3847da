import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta


def test_layout_is_matterports():
    meta = compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6, [1, 1, 0, 1])
    assert meta.dtype == np.float32
    np.testing.assert_allclose(
        meta, [7, 480, 640, 3, 1024, 1024, 3, 128, 0, 896, 1024, 1.6, 1, 1, 0, 1], rtol=1e-7
    )


def test_round_trip_batched():
    metas = np.stack(
        [
            compose_image_meta(0, (64, 48, 3), (64, 64, 3), (0, 8, 64, 56), 1.0, [1, 1, 1]),
            compose_image_meta(
                123456, np.array([100, 200, 3]), [128, 128, 3], [32, 0, 96, 128], 0.64, [1, 0, 1]
            ),
        ]
    )
    parsed = parse_image_meta(metas)
    np.testing.assert_array_equal(parsed["image_id"], [0, 123456])
    np.testing.assert_array_equal(parsed["original_image_shape"], [[64, 48, 3], [100, 200, 3]])
    np.testing.assert_array_equal(parsed["image_shape"], [[64, 64, 3], [128, 128, 3]])
    np.testing.assert_array_equal(parsed["window"], [[0, 8, 64, 56], [32, 0, 96, 128]])
    np.testing.assert_allclose(parsed["scale"], [1.0, 0.64], rtol=1e-6)
    np.testing.assert_array_equal(parsed["active_class_ids"], [[1, 1, 1], [1, 0, 1]])
    assert parsed["image_id"].dtype == np.int32 and parsed["window"].dtype == np.int32
    assert parsed["scale"].dtype == np.float32


def test_single_vector_parses_unbatched():
    parsed = parse_image_meta(compose_image_meta(3, (10, 20, 3), (32, 32, 3), (11, 0, 21, 32), 1.6, [1, 0]))
    assert parsed["image_id"] == 3
    np.testing.assert_array_equal(parsed["window"], [11, 0, 21, 32])


def test_length_matches_config():
    class TinyConfig(Config):
        NAME = "tiny"
        NUM_CLASSES = 5

    config = TinyConfig()
    meta = compose_image_meta(0, (1, 1, 3), (1, 1, 3), (0, 0, 1, 1), 1, np.ones([5]))
    assert meta.shape == (config.IMAGE_META_SIZE,)


def test_bad_window_length_raises():
    with pytest.raises(ValueError, match="window"):
        compose_image_meta(0, (1, 1, 3), (1, 1, 3), (0, 0, 1), 1, [1])
