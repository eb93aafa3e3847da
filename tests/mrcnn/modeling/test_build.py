"""mrcnn.modeling.build: the one module that reads a Config, and graphs that Keras' ``.keras`` format saves and
``keras.saving.load_model`` rebuilds (every custom layer takes plain settings and is registered)."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import mrcnn.modeling
from mrcnn import matterport_compat
from mrcnn import model as modellib
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.modeling import build
from mrcnn.modeling.detection import DetectionLayer
from mrcnn.modeling.layers import (
    BatchNorm,
    FastConv2D,
    FastConv2DTranspose,
    FlattenRois,
    UnflattenRois,
)
from mrcnn.modeling.proposals import ProposalLayer
from mrcnn.modeling.roi_align import PyramidROIAlign
from mrcnn.modeling.targets import DetectionTargetLayer
from mrcnn.testing import small_backbone, small_backbone_shapes, tiny_config

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELING_DIR = Path(mrcnn.modeling.__file__).parent
RNG = np.random.default_rng(11)


def config(**overrides):
    """Tiny model, one image per batch, every detection kept (random weights still detect)."""
    return tiny_config(IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0, **overrides)


# ----------------------------------------------------------------------------------------------------------
# Layers: plain settings, get_config, registration
# ----------------------------------------------------------------------------------------------------------


def sample_layers() -> dict:
    """One instance of every custom layer of mrcnn.modeling, with settings other than the defaults."""
    cfg = config()
    return {
        "BatchNorm": BatchNorm(train_bn=False, momentum=0.9, name="bn"),
        "FastConv2D": FastConv2D(4, 3, padding="same", name="conv"),
        "FastConv2DTranspose": FastConv2DTranspose(4, 2, strides=2, name="deconv"),
        "FlattenRois": FlattenRois(name="flatten"),
        "UnflattenRois": UnflattenRois(inner_shape=(8,), name="unflatten"),
        "ProposalLayer": ProposalLayer(
            10, 0.6, pre_nms_limit=50, rpn_bbox_std_dev=[0.1, 0.1, 0.3, 0.3], nms_method="map_fn", name="ROI"
        ),
        "PyramidROIAlign": PyramidROIAlign([5, 7], name="roi_align"),
        "DetectionTargetLayer": DetectionTargetLayer(**build.detection_target_args(cfg), name="targets"),
        "DetectionLayer": DetectionLayer(**build.detection_layer_args(cfg), name="detection"),
        "ConstantAnchors": build.ConstantAnchors(**build.anchor_args(cfg, (64, 128, 3)), name="anchors"),
        "NormBoxes": build.NormBoxes(name="norm_boxes"),
        "LossLayer": build.LossLayer("mrcnn_mask_loss", name="mrcnn_mask_loss"),
        "PositiveRows": build.PositiveRows(name="rows"),
        "ValidDetectionBoxes": build.ValidDetectionBoxes(name="boxes"),
        "PadDetections": build.PadDetections(8, name="pad"),
        "ActiveClassIds": build.ActiveClassIds(4, name="active"),
    }


def custom_layer_classes() -> dict:
    """Every keras Layer class (models aside) defined in a module of mrcnn.modeling, by name."""
    found = {}
    for info in pkgutil.iter_modules([str(MODELING_DIR)]):
        module = importlib.import_module(f"mrcnn.modeling.{info.name}")
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and issubclass(value, keras.layers.Layer)
                and not issubclass(value, keras.Model)
            ):
                found[name] = value
    return found


def test_every_custom_layer_is_sampled():
    assert set(custom_layer_classes()) == set(sample_layers())
    assert len(sample_layers()) == 16


@pytest.mark.parametrize("name", sorted(sample_layers()))
def test_layer_config_round_trip(name):
    layer = sample_layers()[name]
    cls = custom_layer_classes()[name]
    assert keras.saving.get_registered_object(f"mrcnn>{name}") is cls
    serialized = keras.saving.serialize_keras_object(layer)
    json.dumps(serialized)  # plain values only: no arrays, callables or Config objects
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(clone) is cls
    assert clone.get_config() == layer.get_config()


def test_constant_anchors_save_settings_not_boxes():
    cfg = config()
    layer = build.ConstantAnchors(**build.anchor_args(cfg, (64, 128, 3)))
    np.testing.assert_array_equal(layer.anchors, build.pyramid_anchors(cfg, (64, 128)))
    assert len(json.dumps(layer.get_config())) < 1000 < layer.anchors.size


def test_layers_reject_a_config_where_a_setting_belongs():
    with pytest.raises(TypeError, match="ProposalLayer: pre_nms_limit must be an int, got Config"):
        ProposalLayer(10, 0.7, config())
    with pytest.raises(TypeError, match="DetectionLayer: max_instances must be an int"):
        DetectionLayer(config())
    with pytest.raises(ValueError, match="Unknown loss 'rpn_loss'"):
        build.LossLayer("rpn_loss")


@pytest.mark.parametrize(
    "make",
    [
        lambda cfg: matterport_compat.ProposalLayer(12, 0.6, cfg, name="ROI"),
        lambda cfg: matterport_compat.DetectionTargetLayer(cfg, name="targets"),
        lambda cfg: matterport_compat.DetectionLayer(cfg, name="detection"),
    ],
    ids=["ProposalLayer", "DetectionTargetLayer", "DetectionLayer"],
)
def test_matterport_adapters_translate_the_config_and_round_trip(make):
    cfg = config(PRE_NMS_LIMIT=123, TRAIN_ROIS_PER_IMAGE=12, DETECTION_MAX_INSTANCES=7)
    layer = make(cfg)
    settings = layer.get_config()
    assert settings.get("pre_nms_limit", 123) == 123
    assert settings.get("num_rois", 12) == 12
    assert settings.get("max_instances", 7) == 7
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == settings


def test_only_build_reads_a_config():
    """No module of mrcnn.modeling but build.py imports Config or reads a Config setting (``config.NAME``)."""
    readers = []
    for path in sorted(MODELING_DIR.glob("*.py")):
        if path.name == "build.py":
            continue
        text = path.read_text()
        if re.search(r"\bconfig\.[A-Z]", text) or "mrcnn.config" in text:
            readers.append(path.name)
    assert readers == []


# ----------------------------------------------------------------------------------------------------------
# Whole graphs through the .keras format
# ----------------------------------------------------------------------------------------------------------


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Random weights everywhere, BatchNorm statistics included, so that a BatchNorm applied twice or not at
    all (folding lost or doubled) changes the outputs."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 2.0, shape)
        elif "moving_mean" in weight.path:
            value = rng.normal(0.0, 0.2, shape)
        else:
            value = weight.numpy() + rng.normal(0.0, 0.02, shape)
        weight.assign(value.astype(weight.dtype))


def folded_pairs(model: keras.Model) -> list[tuple[str, str]]:
    pairs = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            pairs += folded_pairs(layer)
        elif isinstance(layer, BatchNorm) and layer.folded_into() is not None:
            pairs.append((layer.folded_into().name, layer.name))
    return sorted(pairs)


def weights_by_path(model: keras.Model) -> dict:
    return {w.path: w.numpy() for w in model.weights}


def inference_inputs(model: modellib.MaskRCNN, images):
    molded, metas, _ = model.mold_inputs(images)
    anchors = model.get_anchors(molded[0].shape)
    anchors = np.repeat(anchors[None], len(images), axis=0)
    return [molded.astype(np.float32), metas.astype(np.float32), anchors]


@pytest.fixture(scope="module")
def saved_inference_model(tmp_path_factory):
    """(MaskRCNN with random weights, path of its keras_model saved as .keras)."""
    keras.utils.set_random_seed(3)
    model = modellib.MaskRCNN("inference", config(), str(tmp_path_factory.mktemp("logs")))
    randomize(model.keras_model)
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    model.keras_model.save(path)
    return model, path


def test_inference_model_reloads_with_equal_detections(saved_inference_model, tmp_path):
    model, path = saved_inference_model
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, build.MaskRCNNGraph)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.keras_model.layers]
    assert folded_pairs(loaded) == folded_pairs(model.keras_model) != []
    expected = weights_by_path(model.keras_model)
    actual = weights_by_path(loaded)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(actual[key], value, err_msg=key)

    images = [ShapesDataset.build(2, 64, 64, seed=4).load_image(i) for i in range(2)]
    inputs = inference_inputs(model, images[:1])
    for before, after in zip(model.keras_model(inputs), loaded(inputs), strict=True):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))

    # The documented way to detect with a reloaded graph: a MaskRCNN of the same Config, given the graph.
    facade = modellib.MaskRCNN("inference", config(), str(tmp_path))
    facade.keras_model = loaded
    for image in images:
        before, after = model.detect([image])[0], facade.detect([image])[0]
        assert len(before["class_ids"]) > 0
        for key in ("rois", "class_ids", "scores", "masks"):
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_reload_in_a_fresh_process_needs_only_import_mrcnn_model(saved_inference_model, tmp_path):
    model, path = saved_inference_model
    image = ShapesDataset.build(1, 64, 64, seed=5).load_image(0)
    inputs = inference_inputs(model, [image])
    np.savez(tmp_path / "inputs.npz", *inputs)
    script = f"""
        import keras, numpy as np
        import mrcnn.model  # registers the custom layers
        model = keras.saving.load_model({str(path)!r})
        data = np.load({str(tmp_path / "inputs.npz")!r})
        outputs = model([data[f"arr_{{i}}"] for i in range(3)])
        np.savez({str(tmp_path / "outputs.npz")!r}, *[np.asarray(o) for o in outputs])
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    for i, expected in enumerate(model.keras_model(inputs)):
        np.testing.assert_array_equal(outputs[f"arr_{i}"], np.asarray(expected))


def training_inputs(cfg, anchors: int) -> dict:
    rng = np.random.default_rng(6)
    g = cfg.MAX_GT_INSTANCES
    boxes = np.zeros((1, g, 4), np.float32)
    boxes[0, :2] = [[5, 5, 30, 40], [20, 10, 60, 50]]
    masks = np.zeros((1, *cfg.MINI_MASK_SHAPE, g), bool)
    masks[0, 2:12, 3:14, :2] = True
    meta = compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64), 1.0, np.ones(cfg.NUM_CLASSES))
    class_ids = np.zeros((1, g), np.int32)
    class_ids[0, :2] = 1, 2
    return {
        "input_image": rng.normal(size=(1, 64, 64, 3)).astype(np.float32),
        "input_image_meta": meta[None].astype(np.float32),
        "input_rpn_match": rng.integers(-1, 2, size=(1, anchors, 1)).astype(np.int32),
        "input_rpn_bbox": rng.normal(size=(1, cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)).astype(np.float32),
        "input_gt_class_ids": class_ids,
        "input_gt_boxes": boxes,
        "input_gt_masks": masks,
    }


def test_training_graph_reloads_with_equal_weights_and_outputs(tmp_path):
    """Same weights and trainable flags; the outputs before the detection target layer's random sampling
    (RPN outputs and proposals) are equal, and the reloaded graph computes its five losses."""
    cfg = config()
    keras.utils.set_random_seed(7)
    model = modellib.MaskRCNN("training", cfg, str(tmp_path))
    model.set_trainable("heads", verbose=0)
    randomize(model.keras_model, seed=1)
    path = tmp_path / "train.keras"
    model.keras_model.save(path)
    loaded = keras.saving.load_model(path)

    assert folded_pairs(loaded) == folded_pairs(model.keras_model)
    expected = weights_by_path(model.keras_model)
    actual = weights_by_path(loaded)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(actual[key], value, err_msg=key)
    trainable = {w.path for w in model.keras_model.trainable_weights}
    assert {w.path for w in loaded.trainable_weights} == trainable and 0 < len(trainable) < len(expected)

    anchors = build.pyramid_anchors(cfg, cfg.IMAGE_SHAPE).shape[0]
    inputs = training_inputs(cfg, anchors)
    before = model.keras_model(inputs, training=False)
    after = loaded(inputs, training=False)
    for i in (0, 1, 2, 7):  # rpn_class_logits, rpn_class, rpn_bbox, rpn_rois
        np.testing.assert_array_equal(np.asarray(before[i]), np.asarray(after[i]))
    losses = [float(np.asarray(x)[0]) for x in after[-len(build.LOSS_OUTPUTS) :]]
    assert all(np.isfinite(losses)) and losses[0] > 0


def test_mixed_precision_policies_survive_the_round_trip(tmp_path):
    """keep_float32's policies travel in the layers' configs (input layers and the nested RPN model, which
    compute nothing, come back float32), folding is redone, and the outputs are equal."""
    cfg = config(MIXED_PRECISION="mixed_bfloat16")
    model = modellib.MaskRCNN("inference", cfg, str(tmp_path))
    model.keras_model.save(tmp_path / "bf16.keras")
    loaded = keras.saving.load_model(tmp_path / "bf16.keras")

    def policies(m):
        out = {}
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                out.update({f"{layer.name}/{k}": v for k, v in policies(layer).items()})
            elif not isinstance(layer, keras.layers.InputLayer):
                out[layer.name] = layer.dtype_policy.name
        return out

    expected = policies(model.keras_model)
    assert policies(loaded) == expected
    assert expected["mrcnn_detection"] == expected["mrcnn_class"] == "float32"
    assert expected["mrcnn_mask_conv1"] == "mixed_bfloat16"
    assert folded_pairs(loaded) == folded_pairs(model.keras_model)
    inputs = inference_inputs(model, [ShapesDataset.build(1, 64, 64, seed=8).load_image(0)])
    for before, after in zip(model.keras_model(inputs), loaded(inputs), strict=True):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_callable_backbone_saves_when_its_layers_are_registered(tmp_path):
    model = build.build_inference_model(
        config(BACKBONE=small_backbone, COMPUTE_BACKBONE_SHAPE=small_backbone_shapes)
    )
    model.save(tmp_path / "callable.keras")
    loaded = keras.saving.load_model(tmp_path / "callable.keras")
    assert "small1_conv" in {layer.name for layer in loaded.layers}


class UnregisteredScale(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def _backbone_with_unregistered_layer(input_image, stage5=True, train_bn=True):
    outputs = small_backbone(input_image, stage5=stage5, train_bn=train_bn)
    return [*outputs[:4], UnregisteredScale(name="odd_scale")(outputs[4])]


def test_unloadable_layer_is_a_clear_error_at_save_time(tmp_path):
    cfg = config(BACKBONE=_backbone_with_unregistered_layer, COMPUTE_BACKBONE_SHAPE=small_backbone_shapes)
    model = build.build_inference_model(cfg)
    with pytest.raises(
        ValueError, match=r"could not rebuild odd_scale \(.*UnregisteredScale\).*register_keras"
    ):
        model.save(tmp_path / "odd.keras")
