"""It learns: from random weights, a small model trained on coloured shapes detects them again.

Slow (minutes on 2 CPU cores): ``python -m pytest -m slow tests/mrcnn/test_learning.py``.
"""

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import Config
from mrcnn.data.ground_truth import load_image_gt
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.metrics import compute_ap


class LearnConfig(Config):
    NAME = "learn"
    BACKBONE = "small"
    TRAIN_BN = True
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 8
    MINI_MASK_SHAPE = (28, 28)
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    DETECTION_MAX_INSTANCES = 10
    DETECTION_MIN_CONFIDENCE = 0.5
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 2
    LEARNING_RATE = 0.01


@pytest.mark.slow
def test_it_learns_shapes(tmp_path):
    keras.utils.set_random_seed(0)
    config = LearnConfig()
    train_set = ShapesDataset.build(16, 128, 128, seed=11, min_shapes=1, max_shapes=3)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    model.train(train_set, None, learning_rate=config.LEARNING_RATE, epochs=8, layers="all", verbose=2)

    class InferenceConfig(LearnConfig):
        IMAGES_PER_GPU = 1

    detector = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    detector.load_weights(model.find_last(), by_name=True)
    aps = []
    for image_id in train_set.image_ids:
        image, _, gt_class_ids, gt_boxes, gt_masks = load_image_gt(train_set, config, image_id)
        result = detector.detect([image])[0]
        ap, *_ = compute_ap(
            gt_boxes,
            gt_class_ids,
            gt_masks,
            result["rois"],
            result["class_ids"],
            result["scores"],
            result["masks"],
            iou_threshold=0.5,
        )
        aps.append(ap)
    mean_ap = float(np.mean(aps))
    print(f"mAP@0.5 on the training images: {mean_ap:.3f}")
    assert mean_ap >= 0.8
