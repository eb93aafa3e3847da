"""MaskRCNN's graph helpers kept from Matterport's API: ancestor, find_trainable_layer, set_trainable's indent."""

import keras
import pytest

from mrcnn.model import MaskRCNN
from mrcnn.testing import tiny_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=1), str(tmp_path_factory.mktemp("logs")))


def test_ancestor_finds_the_nearest_tensor_made_by_a_named_layer(model):
    detections = model.keras_model.get_layer("mrcnn_detection").output
    rois = model.ancestor(detections, "ROI")
    assert rois is model.keras_model.get_layer("ROI").output
    # A regular expression on layer names; the nearest match wins (the RPN's outputs, then its inputs).
    found = model.ancestor(detections, "fpn_p[2-6]")
    assert found._keras_history.operation.name in {f"fpn_p{i}" for i in range(2, 7)}
    assert model.ancestor(detections, "no_such_layer") is None
    assert model.ancestor(rois, "mrcnn_detection") is None  # upstream only
    assert model.ancestor(detections, "ROI", checked=[rois]) is None  # checked tensors are not searched


def test_find_trainable_layer_unwraps_time_distributed(model):
    dense = keras.layers.Dense(3, name="inner")
    wrapped = keras.layers.TimeDistributed(keras.layers.TimeDistributed(dense))
    assert model.find_trainable_layer(wrapped) is dense
    conv = model.keras_model.get_layer("mrcnn_mask")
    assert model.find_trainable_layer(conv) is conv


def test_set_trainable_indents_its_listing(model, capsys):
    names = model.set_trainable("heads", indent=2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert "mrcnn_mask" in names and "small1_conv" not in names
    assert any(line.startswith("  frozen    small1_conv") for line in lines)
    assert "  In model: rpn_model" in lines
    assert any(line.startswith("      training  rpn_conv_shared") for line in lines)
    model.set_trainable("all", verbose=0)
