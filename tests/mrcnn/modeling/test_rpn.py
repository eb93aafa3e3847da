from pathlib import Path

import keras
import numpy as np

from mrcnn.modeling.rpn import build_rpn_model, rpn_over_pyramid
from mrcnn.weights import weighted_layer_groups

TSV = Path(__file__).resolve().parents[2] / "data" / "matterport_coco_r101_h5_layout.tsv"


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _tsv_rows(group):
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line and not line.startswith("#")]
    return [(r[1], r[2]) for r in rows if r[0] == group]


def test_rpn_model_is_one_nested_group_matching_matterport():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=256)
    assert rpn.name == "rpn_model"
    assert [t.name for t in rpn.inputs] == ["input_rpn_feature_map"]
    assert tuple(rpn.inputs[0].shape) == (None, None, None, 256)
    inp = keras.Input((None, None, 256))
    outer = keras.Model(inp, rpn(inp))
    groups = weighted_layer_groups(outer)
    assert [g for g, _ in groups] == ["rpn_model"]
    layout = [(n, str(tuple(w.shape))) for n, w in groups[0][1]]
    assert layout == _tsv_rows("rpn_model")


def test_rpn_outputs_are_reshaped_conv_outputs():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=8)
    x = np.random.default_rng(0).normal(size=(2, 5, 4, 8)).astype("float32")
    logits, probs, bbox = (_np(t) for t in rpn(x))
    assert logits.shape == (2, 5 * 4 * 3, 2) and probs.shape == (2, 60, 2) and bbox.shape == (2, 60, 4)
    probe = keras.Model(
        rpn.inputs[0], [rpn.get_layer("rpn_class_raw").output, rpn.get_layer("rpn_bbox_pred").output]
    )
    class_raw, bbox_raw = (_np(t) for t in probe(x))
    # Anchor order is (y, x, anchor): row-major reshape of the conv outputs.
    np.testing.assert_allclose(logits, class_raw.reshape(2, -1, 2), atol=1e-6)
    np.testing.assert_allclose(bbox, bbox_raw.reshape(2, -1, 4), atol=1e-6)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_rpn_anchor_stride_two():
    rpn = build_rpn_model(anchor_stride=2, anchors_per_location=2, depth=4)
    logits, _, bbox = rpn(np.zeros((1, 8, 6, 4), "float32"))
    assert tuple(logits.shape) == (1, 4 * 3 * 2, 2) and tuple(bbox.shape) == (1, 24, 4)


def test_rpn_over_pyramid_concatenates_levels_in_order():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=4)
    sizes = [16, 8, 4, 2, 1]
    inputs = [keras.Input((s, s, 4), name=f"p{i + 2}") for i, s in enumerate(sizes)]
    outputs = rpn_over_pyramid(rpn, inputs)
    model = keras.Model(inputs, outputs)
    names = {layer.name for layer in model.layers}
    assert {"rpn_class_logits", "rpn_class", "rpn_bbox", "rpn_model"} <= names
    total = sum(s * s for s in sizes) * 3
    assert [tuple(o.shape) for o in outputs] == [(None, total, 2), (None, total, 2), (None, total, 4)]

    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, s, s, 4)).astype("float32") for s in sizes]
    logits, probs, bbox = (_np(t) for t in model(maps))
    per_level = [[_np(t) for t in rpn(m)] for m in maps]
    np.testing.assert_allclose(logits, np.concatenate([p[0] for p in per_level], axis=1), atol=1e-5)
    np.testing.assert_allclose(probs, np.concatenate([p[1] for p in per_level], axis=1), atol=1e-5)
    np.testing.assert_allclose(bbox, np.concatenate([p[2] for p in per_level], axis=1), atol=1e-5)
    # One shared set of weights across the levels.
    assert len(model.weights) == 6
