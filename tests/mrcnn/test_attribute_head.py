"""The attribute head (Config.NUM_ATTRIBUTES > 0): graph shapes, detect() output, weights with and without the
head, checkpoint metadata, and training steps on tiny models.

The layout with NUM_ATTRIBUTES = 0 is Matterport's: test_model.py checks it against the COCO file's layout;
here the head is checked to add only ``mrcnn_attr_*`` layers and to leave every other weight's shape alone.
Loading with and without the head is tested on small models in test_weights.py (and on whole models here,
slow). Only the training step is rerun with oneDNN in CI (``graph``): it is where the head could meet zero rows.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.attributes import attributes_above
from mrcnn.data.synthetic import AttributeShapesDataset, ShapesDataset
from mrcnn.metadata import read_metadata
from mrcnn.modeling.build import loss_outputs
from mrcnn.testing import tiny_config
from mrcnn.training import TrainingLoader, TrainingModel
from mrcnn.weights import read_layout, weighted_layer_groups

A = 3  # AttributeShapesDataset's attributes
SHARED = dict(NUM_ATTRIBUTES=A)  # the head on the classifier's fully connected features
OWN = dict(NUM_ATTRIBUTES=A, ATTRIBUTE_FC_LAYERS_SIZE=16)  # its own ROI Align and fully connected layers


def layout(model) -> dict[str, tuple]:
    return {f"{g}/{n}": tuple(w.shape) for g, ws in weighted_layer_groups(model) for n, w in ws}


def images(count=2, seed=3):
    dataset = AttributeShapesDataset.build(count, 64, 64, seed=seed)
    return [dataset.load_image(i) for i in range(count)]


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    config = tiny_config(DETECTION_MIN_CONFIDENCE=0.0)
    return modellib.MaskRCNN("inference", config, str(tmp_path_factory.mktemp("plain")))


@pytest.fixture(scope="module")
def head_model(tmp_path_factory):
    model = modellib.MaskRCNN(
        "inference", tiny_config(DETECTION_MIN_CONFIDENCE=0.0, **SHARED), str(tmp_path_factory.mktemp("h"))
    )
    model.checkpoint_fields["attribute_names"] = list(AttributeShapesDataset.ATTRIBUTES)
    # Every ROI a confident class 1 (a zero kernel, a bias for class 1): detections whatever the features.
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    bias = np.zeros_like(bias)
    bias[1] = 8.0
    layer.set_weights([np.zeros_like(kernel), bias])
    return model


def test_head_adds_only_mrcnn_attr_layers(plain_model, head_model):
    plain, head = layout(plain_model.keras_model), layout(head_model.keras_model)
    added = {k: v for k, v in head.items() if k not in plain}
    assert set(plain) <= set(head)
    assert all(plain[k] == head[k] for k in plain)
    assert added == {
        "mrcnn_attr_logits/mrcnn_attr_logits/kernel:0": (64, A),  # FPN_CLASSIF_FC_LAYERS_SIZE = 64
        "mrcnn_attr_logits/mrcnn_attr_logits/bias:0": (A,),
    }


def test_inference_outputs_and_detect_give_attribute_scores(head_model):
    outputs = head_model.keras_model.outputs
    assert len(outputs) == 8 and tuple(outputs[-1].shape[1:]) == (8, A)  # DETECTION_MAX_INSTANCES = 8
    results = head_model.detect(images())
    for r in results:
        n = len(r["class_ids"])
        assert n > 0
        assert r["attributes"].shape == (n, A) and r["attributes"].dtype == np.float32
        assert ((r["attributes"] > 0) & (r["attributes"] < 1)).all()  # sigmoid probabilities
    named = head_model.attributes_above(results[0], threshold=0.0)
    scores = results[0]["attributes"][0]
    expected = [AttributeShapesDataset.ATTRIBUTES[a] for a in np.argsort(-scores, kind="stable")]
    assert [name for name, _ in named[0]] == expected


def test_attributes_above_threshold_sorted_by_score():
    scores = np.array([[0.2, 0.9, 0.6], [0.1, 0.0, 0.3]])
    assert attributes_above(scores, ["a", "b", "c"], 0.5) == [
        [("b", pytest.approx(0.9)), ("c", pytest.approx(0.6))],
        [],
    ]
    with pytest.raises(ValueError, match="2 attribute names for 3"):
        attributes_above(scores, ["a", "b"])


def _assert_same_detections(a, b, attributes=True):
    for ra, rb in zip(a, b):
        for key in ("rois", "class_ids", "scores", "masks") + (("attributes",) if attributes else ()):
            np.testing.assert_allclose(ra[key], rb[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_attribute_checkpoint_loads_into_a_model_without_the_head(tmp_path, plain_model, head_model):
    """Both by position and by name: the head's layers are reported as skipped, and the detections are the
    head model's (the head shares the classifier's layers), without attribute scores."""
    imgs = images()
    path = str(tmp_path / "head.h5")
    head_model.save_weights(path)
    assert read_metadata(path).attribute_names == list(AttributeShapesDataset.ATTRIBUTES)
    assert "mrcnn_attr_logits" in {layer for layer, _, _ in read_layout(path)}
    for by_name in (True, False):
        report = plain_model.load_weights(path, by_name=by_name)
        assert report.skipped_attribute_layers == ["mrcnn_attr_logits"], by_name
        assert "attribute head was skipped" in report.summary()
    assert plain_model.attribute_names is None and "attribute_names" not in plain_model.checkpoint_fields
    results = plain_model.detect(imgs)
    _assert_same_detections(results, head_model.detect(imgs), attributes=False)
    assert "attributes" not in results[0]
    with pytest.raises(ValueError, match="no attribute head"):
        plain_model.attributes_above(results[0])


@pytest.mark.slow
def test_attribute_checkpoint_round_trip_and_a_file_without_the_head(tmp_path, plain_model, head_model):
    """from_checkpoint rebuilds the head (by name); a file without the head (as Matterport's COCO weights)
    loads by position with the head reported missing; our file by position gives the same detections."""
    imgs = images()
    head_path, plain_path = str(tmp_path / "head.h5"), str(tmp_path / "plain.h5")
    head_model.save_weights(head_path)
    plain_model.save_weights(plain_path)
    expected = head_model.detect(imgs)
    again = modellib.MaskRCNN.from_checkpoint(head_path, model_dir=str(tmp_path))
    assert again.config.NUM_ATTRIBUTES == A
    assert again.attribute_names == list(AttributeShapesDataset.ATTRIBUTES)
    report = again.load_weights(plain_path)
    assert report.missing_in_file == ["mrcnn_attr_logits"] and not report.unused_in_file
    report = again.load_weights(head_path)
    assert not report.missing_in_file and not report.unused_in_file
    _assert_same_detections(again.detect(imgs), expected)


@pytest.mark.graph  # CI runs it again with oneDNN on: the head must not run on zero rows
def test_training_steps_with_the_head_and_without_positive_rois(tmp_path):
    """A head with its own layers (the one that cuts its rows to the positive ROIs): one step with the sample's
    instances trains it; one where no ROI is positive gives an attribute loss of 0, not NaN, and no update."""
    # The ground-truth boxes as the proposals (USE_RPN_ROIS = False): positive ROIs whatever the RPN's weights.
    config = tiny_config(TRAIN_BN=False, WEIGHT_DECAY=0.0, USE_RPN_ROIS=False, **OWN)
    assert loss_outputs(config)[-1] == "mrcnn_attr_loss" and config.LOSS_WEIGHTS["mrcnn_attr_loss"] == 1.0
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    dataset = AttributeShapesDataset.build(2, 64, 64, seed=1)
    batch = TrainingLoader(dataset, config, shuffle=False, workers=1)[0]
    assert batch["input_gt_attributes"].shape == (2, config.MAX_GT_INSTANCES, A)
    assert batch["input_gt_attribute_weights"][..., :2].any()
    batch["input_roi"] = batch["input_gt_boxes"].astype(np.float32)
    trainer = TrainingModel(model.keras_model, config)
    trainer.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    step = tf.function(trainer.train_step)
    head = model.keras_model.get_layer("mrcnn_attr_logits")

    before = head.get_weights()[0].copy()
    logs = {k: float(v) for k, v in step({k: tf.constant(v) for k, v in batch.items()}).items()}
    assert set(loss_outputs(config)) < set(logs) and all(np.isfinite(v) for v in logs.values()), logs
    assert logs["mrcnn_mask_loss"] > 0.0  # positive ROIs
    assert logs["mrcnn_attr_loss"] > 0.0
    assert not np.array_equal(before, head.get_weights()[0])  # the loss reaches the head

    batch["input_gt_class_ids"] = np.zeros_like(batch["input_gt_class_ids"])
    for tracker in trainer.metrics:  # the logs are running means over the steps
        tracker.reset_state()
    before = head.get_weights()[0].copy()
    logs = {k: float(v) for k, v in step({k: tf.constant(v) for k, v in batch.items()}).items()}
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["mrcnn_attr_loss"] == 0.0
    np.testing.assert_array_equal(before, head.get_weights()[0])  # no gradient (SGD without momentum)

    head_layers = {
        layer.name for layer in model.get_trainable_layers() if layer.name.startswith("mrcnn_attr_")
    }
    assert head_layers == {
        "mrcnn_attr_fc1",
        "mrcnn_attr_bn1",
        "mrcnn_attr_fc2",
        "mrcnn_attr_bn2",
        "mrcnn_attr_logits",
    }
    assert head_layers <= set(model.set_trainable("heads", verbose=0))  # the "heads" group trains the head


def test_dataset_without_attributes_is_a_clear_error(tmp_path):
    config = tiny_config(**SHARED)
    with pytest.raises(ValueError, match="NUM_ATTRIBUTES"):
        TrainingLoader(ShapesDataset.build(2, 64, 64), config, shuffle=False, workers=1)


def test_attribute_shapes_rows_align_with_masks():
    dataset = AttributeShapesDataset.build(6, 64, 64, seed=2, max_shapes=6)
    for i in dataset.image_ids:
        _, class_ids = dataset.load_mask(i)
        attributes, weights = dataset.load_attribute_targets(i)
        assert attributes.shape == weights.shape == (len(class_ids), A)
        np.testing.assert_array_equal(weights[:, 2], (class_ids != 3).astype(np.float32))
