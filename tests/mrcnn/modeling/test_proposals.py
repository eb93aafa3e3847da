import keras
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.modeling.proposals import NMS_METHODS, ProposalLayer


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 4
    POST_NMS_ROIS_INFERENCE = 4
    POST_NMS_ROIS_TRAINING = 4


ANCHORS = np.array(
    [
        [0.10, 0.10, 0.30, 0.30],  # 0: score 0.9
        [0.11, 0.10, 0.31, 0.30],  # 1: score 0.8, IoU with 0 ~0.9 -> suppressed
        [0.50, 0.50, 0.90, 0.90],  # 2: score 0.3
        [0.10, 0.50, 0.30, 0.70],  # 3: score 0.7
        [0.60, 0.10, 0.80, 0.30],  # 4: score 0.1, cut by PRE_NMS_LIMIT = 4
    ],
    np.float32,
)
SCORES = np.array([0.9, 0.8, 0.3, 0.7, 0.1], np.float32)


def proposal_layer(proposal_count, nms_threshold, config=None, **kwargs):
    """A ProposalLayer with the PRE_NMS_LIMIT and RPN_BBOX_STD_DEV of ``config`` (a TinyConfig by default)."""
    config = config or TinyConfig()
    return ProposalLayer(
        proposal_count,
        nms_threshold,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
        **kwargs,
    )


def rpn_inputs(scores, deltas=None, anchors=ANCHORS):
    probs = np.stack([1 - scores, scores], axis=-1)[np.newaxis].astype(np.float32)
    if deltas is None:
        deltas = np.zeros((1, len(scores), 4), np.float32)
    return [probs, deltas, anchors[np.newaxis]]


@pytest.mark.parametrize("method", NMS_METHODS)
def test_picks_top_scores_in_order_and_suppresses_overlaps(method):
    layer = proposal_layer(5, 0.7, nms_method=method)
    out = layer(rpn_inputs(SCORES)).numpy()
    assert out.shape == (1, 5, 4)
    np.testing.assert_allclose(out[0, :3], ANCHORS[[0, 3, 2]], atol=1e-6)
    np.testing.assert_array_equal(out[0, 3:], 0.0)


def test_proposal_count_limits_output():
    out = proposal_layer(2, 0.7)(rpn_inputs(SCORES)).numpy()
    np.testing.assert_allclose(out[0], ANCHORS[[0, 3]], atol=1e-6)


def test_lower_threshold_suppresses_more_and_higher_keeps_more():
    out = proposal_layer(5, 0.95)(rpn_inputs(SCORES)).numpy()
    np.testing.assert_allclose(out[0, :4], ANCHORS[[0, 1, 3, 2]], atol=1e-6)


def test_deltas_scaled_by_std_dev_and_clipped():
    deltas = np.zeros((1, 5, 4), np.float32)
    # dy = 1 / 0.1 * 0.1 -> move anchor 3 down by 0.1 * its height 0.2 = 0.02.
    deltas[0, 3] = [1.0, 0.0, 0.0, 0.0]
    # log(dw) = 0.2 * 5 = 1 -> width of anchor 2 becomes 0.4 * e, clipped to [0, 1].
    deltas[0, 2] = [0.0, 0.0, 0.0, 5.0]
    out = proposal_layer(5, 0.7)(rpn_inputs(SCORES, deltas)).numpy()[0]
    np.testing.assert_allclose(out[1], [0.12, 0.50, 0.32, 0.70], atol=1e-6)
    half = 0.2 * np.e
    np.testing.assert_allclose(out[2], [0.5, max(0.7 - half, 0.0), 0.9, min(0.7 + half, 1.0)], atol=1e-6)


@pytest.mark.parametrize("method", NMS_METHODS)
def test_batch_equals_each_image_alone(method):
    rng = np.random.default_rng(0)
    config = TinyConfig()
    config.PRE_NMS_LIMIT = 50
    n = 80
    centers = rng.uniform(0.1, 0.9, (n, 2))
    sizes = rng.uniform(0.05, 0.3, (n, 2))
    anchors = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)
    batch = [rpn_inputs(rng.permutation(n).astype(np.float32) / n, None, anchors) for _ in range(3)]
    for inputs in batch:
        inputs[1] = rng.normal(0, 0.5, (1, n, 4)).astype(np.float32)
    layer = proposal_layer(20, 0.5, config, nms_method=method)
    together = layer([np.concatenate([b[i] for b in batch]) for i in range(3)]).numpy()
    for k, inputs in enumerate(batch):
        np.testing.assert_allclose(together[k], layer(inputs).numpy()[0], atol=1e-6)
    assert not np.allclose(together[0], together[1])


def test_functional_graph_and_config_round_trip():
    probs = keras.Input((None, 2))
    deltas = keras.Input((None, 4))
    anchors = keras.Input((None, 4))
    layer = proposal_layer(3, 0.7, name="ROI")
    out = layer([probs, deltas, anchors])
    assert tuple(out.shape) == (None, 3, 4)
    model = keras.Model([probs, deltas, anchors], out)
    result = np.asarray(model(rpn_inputs(SCORES)))
    np.testing.assert_allclose(result[0], ANCHORS[[0, 3, 2]], atol=1e-6)
    clone = ProposalLayer.from_config(layer.get_config())
    assert (clone.proposal_count, clone.nms_threshold, clone.pre_nms_limit) == (3, 0.7, 4)
    np.testing.assert_allclose(clone(rpn_inputs(SCORES)).numpy(), result, atol=1e-6)
