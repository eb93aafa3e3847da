"""Heads never run on zero rows: an image without detections, a training step without a positive ROI.

With oneDNN on (TensorFlow's default on CPUs with AVX-512 VNNI/BF16 or AMX), TensorFlow's fused
Conv2D + BiasAdd (+ FusedBatchNorm) + Relu rejects an input with zero rows, so the mask head must always get at
least one (see ``MIN_HEAD_ROWS`` in mrcnn.modeling.build). These tests run in whatever oneDNN state the process
has; CI runs the graph tests a second time with TF_ENABLE_ONEDNN_OPTS=1, and ``test_onednn.py`` forces it on
in a subprocess so that a plain local run covers that path too.

"No detections" is made certain, not left to random weights: the classifier's logits layer is set to a zero
kernel and a bias that favours the background, so every ROI is background whatever the features are.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.modeling.build import MIN_HEAD_ROWS, PadDetections, PositiveRows, ValidDetectionBoxes
from mrcnn.testing import tiny_config
from mrcnn.training import TrainingLoader, TrainingModel

# Every backbone family in float32, and every precision on the small backbone and (bfloat16, what AMX CPUs
# run) on ResNet50. The mask head is the same whatever the backbone; what changes with the precision is whether
# the BatchNorms are folded into the convolutions (float32 only), i.e. which fused kernels oneDNN picks.
CASES = [
    ("resnet50", None),
    ("se_resnet50", None),
    ("small", None),
    ("resnet50", "mixed_bfloat16"),
    ("small", "mixed_bfloat16"),
    ("small", "mixed_float16"),
]


@pytest.fixture(autouse=True)
def policy_is_restored():
    yield
    assert keras.config.dtype_policy().name == "float32"


def force_background(model: keras.Model, logit: float = 8.0) -> None:
    """Every ROI's class becomes the background: a zero kernel and a bias of ``logit`` on class 0."""
    layer = model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    bias = np.zeros_like(bias)
    bias[0] = logit
    layer.set_weights([np.zeros_like(kernel), bias])


@pytest.mark.parametrize("backbone, precision", CASES, ids=[f"{b}-{p or 'float32'}" for b, p in CASES])
def test_detect_on_images_without_detections(tmp_path, backbone, precision):
    config = tiny_config(BACKBONE=backbone, MIXED_PRECISION=precision, DETECTION_MIN_CONFIDENCE=0.0)
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    force_background(model.keras_model)
    images = [ShapesDataset.build(2, 64, 64, seed=3).load_image(i) for i in range(2)]
    results = model.detect(images)  # a batch of two images, neither with a detection
    assert len(results) == 2
    for r in results:
        assert r["rois"].shape == (0, 4) and r["class_ids"].shape == (0,) and r["scores"].shape == (0,)
        assert r["masks"].shape == (64, 64, 0)


def test_padding_rows_of_the_mask_output_are_zero(tmp_path):
    """The mask head's output holds masks for real detections only, whatever rows the head ran on."""
    x = tf.ones([2, 3, 4, 4, 5])  # the head ran on 3 rows of each image
    detections = np.zeros([2, 6, 6], np.float32)
    detections[0, :3, 4] = 1  # image 0: three detections; image 1: none
    padded = np.asarray(PadDetections(6)([x, tf.constant(detections)]))
    assert padded.shape == (2, 6, 4, 4, 5)
    assert (padded[0, :3] == 1).all() and not padded[0, 3:].any() and not padded[1].any()


def test_row_cutting_layers_keep_at_least_one_row():
    detections = tf.zeros([2, 5, 6])
    assert ValidDetectionBoxes()(detections).shape == (2, MIN_HEAD_ROWS, 4)
    rois, ids, masks = PositiveRows()(
        [tf.zeros([2, 7, 4]), tf.zeros([2, 7], tf.int32), tf.zeros([2, 7, 3, 3])]
    )
    assert rois.shape[1] == ids.shape[1] == masks.shape[1] == MIN_HEAD_ROWS


@pytest.mark.parametrize("precision", [None, "mixed_bfloat16"], ids=lambda p: p or "float32")
def test_training_step_without_a_positive_roi(tmp_path, precision):
    """Ground truth with no instance (all class ids 0): no ROI is positive, the mask head still gets a row,
    and the step gives finite losses with zero box and mask losses."""
    config = tiny_config(MIXED_PRECISION=precision, TRAIN_BN=False)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    batch = TrainingLoader(ShapesDataset.build(2, 64, 64, seed=1), config, shuffle=False, workers=1)[0]
    batch["input_gt_class_ids"] = np.zeros_like(batch["input_gt_class_ids"])
    batch = {k: tf.constant(v) for k, v in batch.items()}
    trainer = TrainingModel(model.keras_model, config)
    trainer.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    logs = {k: float(v) for k, v in tf.function(trainer.train_step)(batch).items()}
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["mrcnn_bbox_loss"] == 0.0 and logs["mrcnn_mask_loss"] == 0.0, logs
    assert logs["mrcnn_class_loss"] > 0.0
