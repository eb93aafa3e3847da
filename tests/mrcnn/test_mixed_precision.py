"""Mixed precision (config.MIXED_PRECISION): a training step under both policies, bfloat16 inference vs float32.

Tolerances of the bfloat16 vs float32 comparison (same weights, one 64x64 image, random "small" backbone):
bfloat16 keeps 8 significant bits (relative error ~0.4% per op), so the RPN's probabilities agree within
0.03 and its box deltas within 0.1 (observed: 0.01 and 0.04); the detections, made from float32 box math,
agree within 0.02 in coordinates and score for the best detection (observed: 0.005).
"""

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import Config, ConfigError
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.modeling.proposals import ProposalLayer
from mrcnn.modeling.roi_align import PyramidROIAlign
from mrcnn.testing import TINY_SETTINGS
from mrcnn.training import make_optimizer

TinyConfig = type(
    "TinyConfig",
    (Config,),
    {
        **TINY_SETTINGS,
        "NAME": "mixed",
        "IMAGES_PER_GPU": 1,
        "POST_NMS_ROIS_TRAINING": 32,
        "DETECTION_MIN_CONFIDENCE": 0.0,
        "STEPS_PER_EPOCH": 1,
    },
)


def make_config(**overrides) -> Config:
    return type("TestConfig", (TinyConfig,), overrides)()


@pytest.fixture(autouse=True)
def policy_is_restored():
    before = keras.config.dtype_policy().name
    yield
    assert keras.config.dtype_policy().name == before == "float32"


def test_setting_is_validated():
    assert make_config().MIXED_PRECISION is None
    with pytest.raises(ConfigError, match="MIXED_PRECISION"):
        make_config(MIXED_PRECISION="half")


def test_float16_gets_loss_scaling():
    plain = make_optimizer(make_config(MIXED_PRECISION="mixed_bfloat16"), 0.01)
    assert isinstance(plain, keras.optimizers.SGD)
    scaled = make_optimizer(make_config(MIXED_PRECISION="mixed_float16"), 0.01)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)


def test_bfloat16_inference_agrees_with_float32(tmp_path):
    keras.utils.set_random_seed(0)
    full = modellib.MaskRCNN("inference", make_config(), str(tmp_path))
    half = modellib.MaskRCNN("inference", make_config(MIXED_PRECISION="mixed_bfloat16"), str(tmp_path))
    half.keras_model.set_weights(full.keras_model.get_weights())

    km = half.keras_model
    assert km.get_layer("fpn_p2").compute_dtype == "bfloat16"
    for layer in km.layers:
        if isinstance(layer, (ProposalLayer, PyramidROIAlign)):
            assert layer.compute_dtype == "float32", layer.name

    image = ShapesDataset.build(1, 64, 64, seed=3).load_image(0)
    molded, metas, _ = full.mold_inputs([image])
    anchors = full.get_anchors(molded.shape[1:])[None]
    ref = [np.asarray(t) for t in full.keras_model([molded, metas, anchors])]
    out = km([molded, metas, anchors])
    assert all(t.dtype == "float32" for t in out)
    out = [np.asarray(t) for t in out]
    detections, rpn_class, rpn_bbox = 0, 5, 6
    assert not np.array_equal(out[rpn_class], ref[rpn_class])  # it did compute in bfloat16
    np.testing.assert_allclose(out[rpn_class], ref[rpn_class], atol=0.03)
    np.testing.assert_allclose(out[rpn_bbox], ref[rpn_bbox], atol=0.1)
    assert ref[detections][0, 0, 4] > 0
    np.testing.assert_allclose(out[detections][0, 0], ref[detections][0, 0], atol=0.02)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_training_step_has_finite_losses(tmp_path, policy):
    """One step of MaskRCNN.train; float16 goes through the LossScaleOptimizer (it runs on CPU too)."""
    config = make_config(MIXED_PRECISION=policy)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    assert model.keras_model.get_layer("fpn_p2").compute_dtype == policy.removeprefix("mixed_")
    assert all(w.dtype == "float32" for w in model.keras_model.weights)
    before = model.keras_model.get_layer("mrcnn_class_logits").get_weights()[0].copy()
    history = model.train(
        ShapesDataset.build(2, 64, 64, seed=1), None, learning_rate=0.01, epochs=1, layers="heads", verbose=0
    )
    for key in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss"):
        assert np.isfinite(history.history[key]).all(), key
    assert history.history["loss"][0] > 0
    after = model.keras_model.get_layer("mrcnn_class_logits").get_weights()[0]
    assert np.isfinite(after).all() and not np.array_equal(after, before)
