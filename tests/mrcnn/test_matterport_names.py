"""Every public name of Matterport's mrcnn/model.py, utils.py and visualize.py resolves on our modules, accepts
Matterport's parameters, and (for a sample of each kind) gives Matterport's results on Matterport's arguments.

The names and signatures are the fixture tests/data/matterport_public_names.json.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import patches

import mrcnn.model as modellib
from mrcnn import utils, visualize
from mrcnn.modeling import backbone
from mrcnn.modeling.build import detection_layer_args
from mrcnn.modeling.detection import DetectionLayer as OurDetectionLayer
from mrcnn.modeling.detection import refine_detections_graph as batched_refine_detections
from mrcnn.testing import tiny_config

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "matterport_public_names.json"
NAMES = json.loads(FIXTURE.read_text())
REPO_ROOT = Path(__file__).resolve().parents[2]

ENTRIES = [(module, name, spec) for module, names in NAMES["modules"].items() for name, spec in names.items()]
CALLABLES = [entry for entry in ENTRIES if entry[2]["kind"] != "constant"]
RNG = np.random.default_rng(5)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _id(entry) -> str:
    return f"{entry[0]}.{entry[1]}"


def _parse(param: str) -> tuple[str, str, object]:
    """'name' -> required, 'name=<literal>' -> optional with that default, '**name' -> keyword arguments."""
    if param.startswith("**"):
        return param[2:], "var_keyword", None
    if "=" in param:
        name, default = param.split("=", 1)
        return name, "optional", ast.literal_eval(default)
    return param, "required", None


# ----------------------------------------------------------------------------------------------------------
# Every name, every signature
# ----------------------------------------------------------------------------------------------------------


def test_fixture_counts_match_its_lists():
    assert NAMES["counts"] == {module: len(names) for module, names in NAMES["modules"].items()}
    assert NAMES["counts"]["mrcnn.model"] == 41


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_name_resolves(entry):
    module_name, name, spec = entry
    module = importlib.import_module(module_name)
    value = getattr(module, name)
    assert name in dir(module)
    if spec["kind"] == "constant":
        assert value == spec["value"]
    elif spec["kind"] == "class":
        assert inspect.isclass(value)
    else:
        assert callable(value) and not inspect.isclass(value)


def test_from_import_and_star_import_resolve():
    namespace: dict = {}
    exec("from mrcnn.model import *", namespace)  # noqa: S102
    assert set(NAMES["modules"]["mrcnn.model"]) <= set(namespace)
    from mrcnn.model import DetectionTargetLayer, resnet_graph  # noqa: F401


def test_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'resnet_grap'"):
        modellib.resnet_grap  # noqa: B018


@pytest.mark.parametrize("entry", CALLABLES, ids=_id)
def test_signature_accepts_matterport_parameters(entry):
    """Matterport's calls bind to ours the same way: positionally in Matterport's order, by Matterport's
    keywords, with only the required arguments, and with Matterport's defaults when they are left out."""
    module_name, name, spec = entry
    signature = inspect.signature(getattr(importlib.import_module(module_name), name))
    params = [_parse(p) for p in spec["params"]]
    named = [p for p in params if p[1] != "var_keyword"]
    names = [p[0] for p in named]

    bound = signature.bind(*[object()] * len(named))
    assert list(bound.arguments)[: len(named)] == names, "positional order differs from Matterport's"
    signature.bind(**{n: object() for n in names})
    signature.bind(*[object()] * sum(kind == "required" for _, kind, _ in params))
    for param_name, kind, default in named:
        if kind == "optional":
            ours = signature.parameters[param_name].default
            assert ours is not inspect.Parameter.empty, f"{param_name} has no default"
            assert (tuple(ours) if isinstance(default, tuple) else ours) == default, (
                f"default of {param_name}"
            )
    if any(kind == "var_keyword" for _, kind, _ in params):
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def test_imports_stay_lazy():
    """In a fresh interpreter: ``import mrcnn.utils`` still does not import TensorFlow, and ``import
    mrcnn.model`` neither imports the adapter module (new with these names) nor resolves any lazy name;
    the first access does."""
    script = """
        import sys
        import mrcnn.utils as utils
        assert "tensorflow" not in sys.modules
        assert "box_refinement_graph" in dir(utils)
        utils.box_refinement_graph
        assert "tensorflow" in sys.modules

        import mrcnn.model as modellib
        assert "mrcnn.matterport_compat" not in sys.modules
        assert not set(modellib._MATTERPORT_NAMES) & set(vars(modellib))
        modellib.resnet_graph
        assert "mrcnn.matterport_compat" in sys.modules
        assert "resnet_graph" in vars(modellib)
        print("ok")
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------------------------------------
# Graph functions and models, called with Matterport's arguments
# ----------------------------------------------------------------------------------------------------------


def test_resnet_graph_with_matterport_arguments():
    image = keras.Input((64, 64, 3))
    c1, c2, c3, c4, c5 = modellib.resnet_graph(image, "resnet50", stage5=True)
    shapes = [tuple(t.shape) for t in (c1, c2, c3, c4, c5)]
    assert shapes == [
        (None, 16, 16, 64),
        (None, 16, 16, 256),
        (None, 8, 8, 512),
        (None, 4, 4, 1024),
        (None, 2, 2, 2048),
    ]
    names = {layer.name for layer in keras.Model(image, c5).layers}
    assert {"conv1", "bn_conv1", "res4f_branch2c", "res5c_out"} <= names and "res4g_branch2a" not in names
    # Matterport's default leaves stage 5 out.
    assert modellib.resnet_graph(keras.Input((64, 64, 3)), "resnet50")[4] is None


def test_resnet_blocks_take_matterport_positional_order():
    x = keras.Input((16, 16, 8))
    # conv_block(input_tensor, kernel_size, filters, stage, block, strides, use_bias, train_bn)
    y = modellib.conv_block(x, 3, [4, 4, 16], 2, "a", (2, 2), False, False)
    # identity_block(input_tensor, kernel_size, filters, stage, block, use_bias, train_bn)
    z = modellib.identity_block(y, 3, [4, 4, 16], 2, "b", True, True)
    assert tuple(y.shape) == (None, 8, 8, 16) and tuple(z.shape) == (None, 8, 8, 16)
    layers = {layer.name: layer for layer in keras.Model(x, z).layers}
    assert not layers["res2a_branch2a"].use_bias and not layers["res2a_branch1"].use_bias
    assert layers["res2b_branch2a"].use_bias
    assert not layers["bn2a_branch2a"].train_bn and layers["bn2b_branch2a"].train_bn
    assert isinstance(layers["bn2a_branch1"], modellib.BatchNorm)


def test_batch_norm_called_as_matterport():
    bn = modellib.BatchNorm(name="bn_test")
    x = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    bn.build(x.shape)
    gamma, beta, mean, var = (RNG.uniform(0.5, 1.5, 4).astype(np.float32) for _ in range(4))
    bn.set_weights([gamma, beta, mean, var])
    frozen = bn(x, training=False).numpy()
    expected = (x - mean) / np.sqrt(var + bn.epsilon) * gamma + beta
    np.testing.assert_allclose(frozen, expected, rtol=1e-5, atol=1e-6)
    batch = bn(x, training=True).numpy()
    expected = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + bn.epsilon) * gamma + beta
    np.testing.assert_allclose(batch, expected, rtol=1e-4, atol=1e-5)


def test_compute_backbone_shapes():
    config = tiny_config()
    shapes = modellib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    np.testing.assert_array_equal(shapes, [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]])
    shapes = modellib.compute_backbone_shapes(config, (100, 70, 3))
    expected = [[math.ceil(100 / s), math.ceil(70 / s)] for s in config.BACKBONE_STRIDES]
    np.testing.assert_array_equal(shapes, expected)


def test_rpn_graph_and_model():
    feature_map = keras.Input((8, 8, 16))
    logits, probs, deltas = modellib.rpn_graph(feature_map, 3, 1)
    assert [tuple(t.shape) for t in (logits, probs, deltas)] == [
        (None, 192, 2),
        (None, 192, 2),
        (None, 192, 4),
    ]
    rpn = modellib.build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=16)
    out = rpn(RNG.normal(size=(2, 4, 4, 16)).astype(np.float32))
    assert [tuple(o.shape) for o in out] == [(2, 48, 2), (2, 48, 2), (2, 48, 4)]
    np.testing.assert_allclose(out[1].numpy().sum(-1), 1.0, rtol=1e-5)


def _meta(batch: int, num_classes: int, size: int = 64) -> np.ndarray:
    metas = [
        modellib.compose_image_meta(
            i, (size, size, 3), (size, size, 3), (0, 0, size, size), 1.0, np.ones(num_classes)
        )
        for i in range(batch)
    ]
    return np.stack(metas).astype(np.float32)


def test_fpn_heads_with_matterport_arguments():
    num_classes, channels = 4, 8
    rois = keras.Input((5, 4))
    image_meta = keras.Input((12 + num_classes,))
    feature_maps = [keras.Input((64 // s, 64 // s, channels)) for s in (4, 8, 16, 32)]
    logits, probs, bbox = modellib.fpn_classifier_graph(
        rois, feature_maps, image_meta, 7, num_classes, train_bn=False, fc_layers_size=32
    )
    masks = modellib.build_fpn_mask_graph(rois, feature_maps, image_meta, 14, num_classes, train_bn=False)
    model = keras.Model([rois, image_meta, *feature_maps], [logits, probs, bbox, masks])
    boxes = np.tile(np.array([[0.1, 0.1, 0.6, 0.5]], np.float32), (2, 5, 1))
    maps = [RNG.normal(size=(2, 64 // s, 64 // s, channels)).astype(np.float32) for s in (4, 8, 16, 32)]
    out = model([boxes, _meta(2, num_classes), *maps])
    assert [tuple(o.shape) for o in out] == [(2, 5, 4), (2, 5, 4), (2, 5, 4, 4), (2, 5, 28, 28, 4)]
    np.testing.assert_allclose(out[1].numpy().sum(-1), 1.0, rtol=1e-5)


def test_small_graph_helpers_match_numpy():
    boxes = np.array([[10, 10, 30, 40], [0, 0, 20, 20], [5, 50, 25, 60]], np.float32)
    others = np.array([[12, 12, 28, 38], [50, 50, 60, 60]], np.float32)
    deltas = RNG.normal(scale=0.2, size=(3, 4)).astype(np.float32)

    np.testing.assert_allclose(
        modellib.apply_box_deltas_graph(boxes, deltas).numpy(),
        utils.apply_box_deltas(boxes, deltas),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        modellib.overlaps_graph(boxes, others).numpy(), utils.compute_overlaps(boxes, others), rtol=1e-5
    )
    window = np.array([0, 0, 25, 45], np.float32)
    np.testing.assert_array_equal(
        modellib.clip_boxes_graph(boxes, window).numpy(), [[10, 10, 25, 40], [0, 0, 20, 20], [5, 45, 25, 45]]
    )
    np.testing.assert_allclose(
        modellib.norm_boxes_graph(boxes, np.array([64, 64])).numpy(),
        utils.norm_boxes(boxes, (64, 64)),
        rtol=1e-6,
    )
    normalized = utils.norm_boxes(boxes, (64, 64))
    np.testing.assert_array_equal(
        modellib.denorm_boxes_graph(normalized, np.array([64, 64])).numpy(),
        utils.denorm_boxes(normalized, (64, 64)),
    )
    np.testing.assert_allclose(modellib.log2_graph(tf.constant([1.0, 8.0, 0.5])).numpy(), [0.0, 3.0, -1.0])

    padded = np.concatenate([boxes, np.zeros((2, 4), np.float32)])
    trimmed, non_zeros = modellib.trim_zeros_graph(padded, name="trim_test")
    np.testing.assert_array_equal(trimmed.numpy(), boxes)
    np.testing.assert_array_equal(non_zeros.numpy(), [True, True, True, False, False])

    meta = _meta(2, 4)
    parsed_graph = modellib.parse_image_meta_graph(meta)
    parsed = modellib.parse_image_meta(meta)
    for key, value in parsed.items():
        np.testing.assert_array_equal(parsed_graph[key].numpy().astype(value.dtype), value)


def test_batch_pack_graph():
    x = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2)
    counts = np.array([2, 0, 7])
    packed = modellib.batch_pack_graph(x, counts, 3).numpy()
    np.testing.assert_array_equal(packed, np.concatenate([x[0, :2], x[1, :0], x[2, :7]]))
    np.testing.assert_array_equal(modellib.batch_pack_graph(x, counts, 1).numpy(), x[0, :2])


def test_box_refinement_graph_equals_numpy_box_refinement():
    box = np.array([[10, 10, 30, 40], [0, 0, 20, 20]], np.int32)
    gt_box = np.array([[12, 8, 34, 41], [2, 1, 18, 25]], np.int32)
    np.testing.assert_allclose(
        utils.box_refinement_graph(box, gt_box).numpy(),
        utils.box_refinement(box, gt_box),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        utils.box_refinement_graph(box=box, gt_box=gt_box).numpy(),
        utils.box_refinement(box, gt_box),
        rtol=1e-5,
    )


# ----------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------


def test_proposal_layer_keeps_best_anchors():
    config = tiny_config()
    anchors = np.array([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9], [0.1, 0.6, 0.3, 0.95]], np.float32)
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]], np.float32)
    layer = modellib.ProposalLayer(proposal_count=4, nms_threshold=0.7, config=config, name="ROI")
    proposals = layer([probs, np.zeros((1, 3, 4), np.float32), anchors[None]]).numpy()
    np.testing.assert_allclose(
        proposals[0], np.concatenate([anchors[[1, 2, 0]], np.zeros((1, 4))]), atol=1e-6
    )


def test_pyramid_roi_align_shape():
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0]]], np.float32)
    maps = [RNG.normal(size=(1, 64 // s, 64 // s, 3)).astype(np.float32) for s in (4, 8, 16, 32)]
    pooled = modellib.PyramidROIAlign([7, 7], name="roi_align_classifier")([boxes, _meta(1, 4), *maps])
    assert tuple(pooled.shape) == (1, 3, 7, 7, 3)


def test_detection_target_layer_and_graph():
    config = tiny_config(USE_MINI_MASK=False)
    gt_boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0, 0, 0, 0]], np.float32)
    gt_class_ids = np.array([2, 0], np.int32)
    gt_masks = np.zeros((64, 64, 2), bool)
    gt_masks[6:33, 6:33, 0] = True
    proposals = np.array([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]], np.float32)

    rois, class_ids, deltas, masks = modellib.detection_targets_graph(
        proposals, gt_class_ids, gt_boxes, gt_masks, config
    )
    assert rois.shape == (16, 4) and class_ids.shape == (16,) and deltas.shape == (16, 4)
    assert masks.shape == (16, 28, 28)
    np.testing.assert_allclose(rois.numpy()[:2], proposals[:2], atol=1e-6)
    np.testing.assert_array_equal(class_ids.numpy()[:2], [2, 0])
    np.testing.assert_allclose(deltas.numpy()[0], 0.0, atol=1e-6)

    layer = modellib.DetectionTargetLayer(config, name="proposal_targets")
    outputs = layer([proposals[None], gt_class_ids[None], gt_boxes[None], gt_masks[None]])
    assert [tuple(o.shape) for o in outputs] == [(1, 16, 4), (1, 16), (1, 16, 4), (1, 16, 28, 28)]
    np.testing.assert_array_equal(outputs[1].numpy()[0, :2], [2, 0])


def _detection_inputs(config, n: int = 6):
    num_classes = config.NUM_CLASSES
    rois = (
        np.sort(RNG.uniform(0, 1, size=(n, 2, 2)), axis=1).transpose(0, 2, 1).reshape(n, 4)[:, [0, 2, 1, 3]]
    )
    rois = rois.astype(np.float32)
    probs = RNG.dirichlet(np.ones(num_classes) * 0.3, size=n).astype(np.float32)
    deltas = RNG.normal(scale=0.5, size=(n, num_classes, 4)).astype(np.float32)
    return rois, probs, deltas


def test_refine_detections_graph_is_per_image():
    config = tiny_config(DETECTION_MIN_CONFIDENCE=0.3)
    rois, probs, deltas = _detection_inputs(config)
    window = np.array([0.0, 0.1, 1.0, 0.9], np.float32)
    detections = modellib.refine_detections_graph(rois, probs, deltas, window, config).numpy()
    assert detections.shape == (config.DETECTION_MAX_INSTANCES, 6)
    expected = batched_refine_detections(
        rois[None], probs[None], deltas[None], window[None], **detection_layer_args(config)
    ).numpy()[0]
    np.testing.assert_allclose(detections, expected, atol=1e-6)
    kept = detections[detections[:, 5] > 0]
    assert len(kept) and np.all(kept[:, 5] >= 0.3) and np.all(np.diff(kept[:, 5]) <= 0)
    assert np.all((kept[:, [1, 3]] >= 0.1 - 1e-6) & (kept[:, [1, 3]] <= 0.9 + 1e-6))


def test_detection_layer_config_default():
    config = tiny_config(DETECTION_MIN_CONFIDENCE=0.3, IMAGES_PER_GPU=1)
    rois, probs, deltas = _detection_inputs(config)
    inputs = [rois[None], probs[None], deltas[None], _meta(1, config.NUM_CLASSES)]
    ours = OurDetectionLayer(**detection_layer_args(config))(inputs).numpy()
    theirs = modellib.DetectionLayer(config, name="mrcnn_detection")(inputs).numpy()
    np.testing.assert_allclose(theirs, ours)
    assert theirs.shape == (1, config.DETECTION_MAX_INSTANCES, 6)
    with pytest.raises(ValueError, match="DetectionLayer has no config"):
        modellib.DetectionLayer()(inputs)


# ----------------------------------------------------------------------------------------------------------
# Losses, with Matterport's argument order, against numpy references of Matterport's formulas
# ----------------------------------------------------------------------------------------------------------


def _smooth_l1(diff):
    diff = np.abs(diff)
    return np.where(diff < 1, 0.5 * diff**2, diff - 0.5)


def _cross_entropy(logits, labels):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]


def test_smooth_l1_loss():
    y_true = RNG.normal(size=(5, 4)).astype(np.float32)
    y_pred = y_true + RNG.normal(scale=2.0, size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        modellib.smooth_l1_loss(y_true=y_true, y_pred=y_pred).numpy(), _smooth_l1(y_true - y_pred), rtol=1e-5
    )


def test_rpn_losses():
    config = tiny_config()
    batch, anchors = 2, 12
    rpn_match = RNG.choice([-1, 0, 1], size=(batch, anchors, 1)).astype(np.int32)
    logits = RNG.normal(size=(batch, anchors, 2)).astype(np.float32)
    rpn_bbox = RNG.normal(size=(batch, anchors, 4)).astype(np.float32)
    target_bbox = np.zeros((batch, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32)
    for b in range(batch):
        n = int(np.sum(rpn_match[b, :, 0] == 1))
        target_bbox[b, :n] = RNG.normal(size=(n, 4))

    match = rpn_match[..., 0]
    used = match != 0
    expected_class = _cross_entropy(logits[used], (match[used] == 1).astype(np.int64)).mean()
    class_loss = modellib.rpn_class_loss_graph(rpn_match, logits)
    np.testing.assert_allclose(float(class_loss), expected_class, rtol=1e-5)

    diffs = [target_bbox[b, : np.sum(match[b] == 1)] - rpn_bbox[b, match[b] == 1] for b in range(batch)]
    expected_bbox = _smooth_l1(np.concatenate(diffs)).mean()
    bbox_loss = modellib.rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox)
    np.testing.assert_allclose(float(bbox_loss), expected_bbox, rtol=1e-5)


def test_mrcnn_losses():
    batch, rois, num_classes, size = 2, 6, 4, 5
    target_class_ids = np.array([[1, 3, 0, 2, 0, 0], [2, 0, 0, 1, 1, 0]], np.int32)
    logits = RNG.normal(size=(batch, rois, num_classes)).astype(np.float32)
    logits[0, 0, 3] = 9.0  # predicted class 3: inactive below, so this ROI does not count
    active_class_ids = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], np.float32)
    target_bbox = RNG.normal(size=(batch, rois, 4)).astype(np.float32)
    pred_bbox = RNG.normal(size=(batch, rois, num_classes, 4)).astype(np.float32)
    target_masks = (RNG.random((batch, rois, size, size)) > 0.5).astype(np.float32)
    pred_masks = RNG.uniform(0.05, 0.95, size=(batch, rois, size, size, num_classes)).astype(np.float32)

    weight = active_class_ids[0][logits.argmax(-1)]
    expected = (_cross_entropy(logits, target_class_ids.astype(np.int64)) * weight).sum() / weight.sum()
    loss = modellib.mrcnn_class_loss_graph(target_class_ids, logits, active_class_ids)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)

    b, r = np.nonzero(target_class_ids > 0)
    c = target_class_ids[b, r]
    expected = _smooth_l1(target_bbox[b, r] - pred_bbox[b, r, c]).mean()
    loss = modellib.mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)

    y_true, y_pred = target_masks[b, r], pred_masks[b, r, :, :, c]
    expected = -(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred)).mean()
    loss = modellib.mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# Numpy functions
# ----------------------------------------------------------------------------------------------------------


def _gt(config):
    """One 64x64 image with two rectangular instances: class ids, pixel boxes, full masks."""
    gt_boxes = np.array([[8, 8, 32, 40], [36, 20, 60, 52]], np.int32)
    gt_class_ids = np.array([1, 3], np.int32)
    full = np.zeros((64, 64, 2), bool)
    for i, (y1, x1, y2, x2) in enumerate(gt_boxes):
        full[y1:y2, x1:x2, i] = True
    return gt_class_ids, gt_boxes, full


def test_build_detection_targets_from_random_rois():
    config = (
        tiny_config()
    )  # USE_MINI_MASK: gt_masks are mini masks, as Matterport's data_generator passes them
    gt_class_ids, gt_boxes, full = _gt(config)
    gt_masks = utils.minimize_mask(gt_boxes, full, config.MINI_MASK_SHAPE)
    rpn_rois = modellib.generate_random_rois(config.IMAGE_SHAPE, 40, gt_class_ids, gt_boxes)
    assert rpn_rois.shape == (40, 4) and rpn_rois.dtype == np.int32
    assert np.all(rpn_rois[:, 2] > rpn_rois[:, 0]) and np.all(rpn_rois[:, 3] > rpn_rois[:, 1])
    rpn_rois[0] = gt_boxes[0]  # one ROI exactly on a ground-truth box

    rois, class_ids, bboxes, masks = modellib.build_detection_targets(
        rpn_rois, gt_class_ids, gt_boxes, gt_masks, config
    )
    total = config.TRAIN_ROIS_PER_IMAGE
    assert rois.shape == (total, 4) and class_ids.shape == (total,)
    assert bboxes.shape == (total, config.NUM_CLASSES, 4)
    assert masks.shape == (total, *config.MASK_SHAPE, config.NUM_CLASSES)

    iou = utils.compute_overlaps(rois, gt_boxes)
    positive = class_ids > 0
    assert positive.any()
    np.testing.assert_array_equal(positive, iou.max(1) > 0.5)
    np.testing.assert_array_equal(class_ids[positive], gt_class_ids[iou[positive].argmax(1)])
    for i in np.flatnonzero(positive):
        gt = gt_boxes[iou[i].argmax()]
        expected = utils.box_refinement(rois[i : i + 1], gt[None])[0] / config.BBOX_STD_DEV
        np.testing.assert_allclose(bboxes[i, class_ids[i]], expected, rtol=1e-5, atol=1e-6)
        assert np.count_nonzero(bboxes[i]) == np.count_nonzero(expected)
        assert np.count_nonzero(masks[i, :, :, np.arange(config.NUM_CLASSES) != class_ids[i]]) == 0
    on_box = np.flatnonzero(np.all(rois == gt_boxes[0], axis=1))
    if on_box.size:  # the exact ROI was sampled: its mask target covers the whole ROI
        assert masks[on_box[0], :, :, 1].min() > 0.99
    assert not bboxes[~positive].any() and not masks[~positive].any()


def test_mold_mask_molds_like_the_image():
    config = tiny_config()
    mask = np.zeros((40, 30, 2), bool)
    mask[5:20, 3:12, 0] = True
    mask[25:39, 10:29, 1] = True
    molded = utils.mold_mask(mask, config)
    image, window, scale, padding, _ = utils.resize_image(
        np.zeros((40, 30, 3), np.uint8),
        min_dim=config.IMAGE_MIN_DIM,
        max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        mode=config.IMAGE_RESIZE_MODE,
    )
    assert molded.shape == image.shape[:2] + (2,) and molded.dtype == bool
    np.testing.assert_array_equal(molded, utils.resize_mask(mask, scale, padding))
    # Nothing outside the window (the padding) is set.
    y1, x1, y2, x2 = window
    assert molded.sum() == molded[y1:y2, x1:x2].sum() > 0
    np.testing.assert_array_equal(utils.mold_mask(mask[:, :, 0], config), molded[:, :, 0])
    with pytest.raises(ValueError, match="crop"):
        utils.mold_mask(mask, tiny_config(IMAGE_RESIZE_MODE="crop"))


# ----------------------------------------------------------------------------------------------------------
# Visualize
# ----------------------------------------------------------------------------------------------------------


def test_draw_box_paints_matterport_pixels():
    image = np.zeros((12, 12, 3), np.uint8)
    out = visualize.draw_box(image, (2, 3, 6, 8), (255, 0, 0))
    assert out is image
    expected = np.zeros((12, 12), bool)
    expected[2:4, 3:8] = expected[6:8, 3:8] = True  # top and bottom lines
    expected[2:6, 3:5] = expected[2:6, 8:10] = True  # left and right lines
    np.testing.assert_array_equal(image[..., 0] == 255, expected)
    assert not image[..., 1:].any()
    # Parts outside the image are left out (not wrapped around to the other side).
    edge = np.zeros((5, 5, 3), np.uint8)
    visualize.draw_box(edge, np.array([-1, -1, 3, 3]), [9, 9, 9])
    expected = np.zeros((5, 5), bool)
    expected[0:1, 0:3] = expected[3:5, 0:3] = expected[0:3, 0:1] = expected[0:3, 3:5] = True
    np.testing.assert_array_equal(edge[..., 2] == 9, expected)
    edge[:] = 0
    visualize.draw_box(edge, (3, 3, 5, 5), [9, 9, 9])
    expected[:] = False
    expected[3:5, 3:5] = True
    np.testing.assert_array_equal(edge[..., 2] == 9, expected)


def _roi_scene(n: int):
    image = np.full((64, 64, 3), 100, np.uint8)
    rois = np.tile(np.array([[10, 10, 40, 40]], np.int32), (n, 1)) + np.arange(n)[:, None]
    refined = rois + np.array([2, -2, 3, 1])
    class_ids = np.array([i % 3 for i in range(n)], np.int32)
    mask = np.ones((n, 28, 28, 4), np.float32)
    return image, rois, refined, mask, class_ids


def test_draw_rois_draws_each_roi_and_its_refinement(capsys):
    image, rois, refined, mask, class_ids = _roi_scene(6)
    _, ax = plt.subplots()
    visualize.draw_rois(image, rois, refined, mask, class_ids, ["BG", "a", "b", "c"], limit=10, ax=ax)
    rectangles = [p for p in ax.patches if isinstance(p, patches.Rectangle)]
    positives = int(np.sum(class_ids > 0))
    assert len(rectangles) == 6 + positives
    assert ax.get_title() == "6 ROIs"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["a", "b", "a", "b"])
    shown = ax.get_images()[0].get_array()
    assert np.any(shown[25, 25] != 100)  # the positive ROIs' masks are tinted in
    printed = capsys.readouterr().out
    assert (
        "Positive ROIs:  4" in printed
        and "Negative ROIs:  2" in printed
        and "Positive Ratio: 0.67" in printed
    )


def test_draw_rois_samples_limit_and_saves(tmp_path):
    image, rois, refined, mask, class_ids = _roi_scene(12)
    path = visualize.draw_rois(
        image, rois, refined, mask[..., 0], class_ids, ["BG", "a", "b"], 5, save_path=tmp_path / "rois.png"
    )
    assert Path(path).is_file() and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, ax = plt.subplots()
    visualize.draw_rois(image, rois, refined, mask, class_ids, ["BG", "a", "b"], limit=5, ax=ax)
    assert ax.get_title() == "Showing 5 random ROIs out of 12"
    dashed = [p for p in ax.patches if p.get_linestyle() in ("--", "dashed")]
    assert len(dashed) == 5


def test_backbone_use_bias_default_unchanged():
    """Our own blocks keep biases by default (Matterport's weight files have them)."""
    x = keras.Input((8, 8, 16))
    y = backbone.identity_block(x, 3, [4, 4, 16], 3, "b")
    layers = {layer.name: layer for layer in keras.Model(x, y).layers}
    assert layers["res3b_branch2b"].use_bias
