import re
from pathlib import Path

import keras
import pytest

from mrcnn.modeling.backbone import build_backbone, resnet_graph
from mrcnn.modeling.layers import BatchNorm
from mrcnn.modeling.registry import BACKBONES
from mrcnn.weights import weighted_layer_groups

# Matterport's COCO .h5 layout (from shared/reference), kept with the tests so they need nothing outside the repo.
TSV = Path(__file__).resolve().parents[2] / "data" / "matterport_coco_r101_h5_layout.tsv"


def _tsv_backbone_rows():
    rows = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        group, name, shape = line.split("\t")
        if group.startswith(("res", "bn", "conv1")):
            rows.append((group, name, shape))
    return rows


def _layout(model):
    return [(g, n, str(tuple(w.shape))) for g, weights in weighted_layer_groups(model) for n, w in weights]


def _build(architecture, size=64, **kwargs):
    inp = keras.Input((size, size, 3), name="input_image")
    outputs = resnet_graph(inp, architecture, **kwargs)
    return keras.Model(inp, [c for c in outputs if c is not None]), outputs


@pytest.fixture(scope="module")
def resnet101():
    return _build("resnet101", train_bn=False)


def test_resnet101_matches_matterport_layout_in_order(resnet101):
    model, _ = resnet101
    expected = _tsv_backbone_rows()
    assert len(expected) == 624
    assert _layout(model) == expected


def test_resnet101_stage_shapes(resnet101):
    _, (c1, c2, c3, c4, c5) = resnet101
    assert tuple(c1.shape) == (None, 16, 16, 64)
    assert tuple(c2.shape) == (None, 16, 16, 256)
    assert tuple(c3.shape) == (None, 8, 8, 512)
    assert tuple(c4.shape) == (None, 4, 4, 1024)
    assert tuple(c5.shape) == (None, 2, 2, 2048)


def test_resnet101_batchnorm_follows_train_bn(resnet101):
    model, _ = resnet101
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert len(bns) == 104
    assert all(not bn.train_bn for bn in bns)


def test_resnet50_has_six_stage4_blocks():
    model, outputs = _build("resnet50", train_bn=True)
    resnet101_only = re.compile(r"^(res|bn)4[g-w]_")
    expected = [row for row in _tsv_backbone_rows() if not resnet101_only.match(row[0])]
    assert _layout(model) == expected
    assert {name[:5] for name, _, _ in expected if name.startswith("res4")} == {f"res4{b}" for b in "abcdef"}
    assert tuple(outputs[4].shape) == (None, 2, 2, 2048)
    assert all(layer.train_bn for layer in model.layers if isinstance(layer, BatchNorm))


def test_se_resnet50_adds_se_blocks_and_keeps_matterport_weights():
    model, outputs = _build("se_resnet50", size=32)
    groups = dict(weighted_layer_groups(model))
    se_names = [name for name in groups if "_se_" in name]
    # 16 residual blocks (3 + 4 + 6 + 3), each with a squeeze and an excite Dense.
    assert len(se_names) == 32
    assert "res2a_se_squeeze" in se_names and "res5c_se_excite" in se_names
    assert tuple(groups["res2a_se_squeeze"][0][1].shape) == (256, 16)
    assert tuple(groups["res5c_se_excite"][0][1].shape) == (128, 2048)
    resnet101_only = re.compile(r"^(res|bn)4[g-w]_")
    expected = [row for row in _tsv_backbone_rows() if not resnet101_only.match(row[0])]
    non_se = [row for row in _layout(model) if "_se_" not in row[0]]
    # The SE blocks deepen the residual branch, so only the set (not the order) matches: load by name.
    assert sorted(non_se) == sorted(expected)
    assert tuple(outputs[4].shape) == (None, 1, 1, 2048)


def test_unknown_architecture_lists_choices():
    inp = keras.Input((32, 32, 3))
    with pytest.raises(ValueError, match="resnet152") as info:
        resnet_graph(inp, "resnet152")
    for name in BACKBONES:
        assert name in str(info.value)


def test_stage5_false_returns_none():
    inp = keras.Input((32, 32, 3))
    outputs = resnet_graph(inp, "resnet50", stage5=False)
    assert outputs[4] is None
    assert tuple(outputs[3].shape) == (None, 2, 2, 1024)


def test_build_backbone_accepts_callable_and_name():
    calls = []

    def tiny_backbone(input_image, stage5=True, train_bn=True):
        calls.append((stage5, train_bn))
        c = input_image
        outs = []
        for i, channels in enumerate([8, 8, 16, 16, 32]):
            c = keras.layers.Conv2D(channels, 3, strides=1 if i == 1 else 2, padding="same", name=f"tiny{i}")(
                c
            )
            outs.append(c)
        return outs

    inp = keras.Input((64, 64, 3))
    outs = build_backbone(inp, tiny_backbone, stage5=True, train_bn=False)
    assert calls == [(True, False)]
    assert [tuple(o.shape) for o in outs][-1] == (None, 4, 4, 32)

    outs = build_backbone(keras.Input((64, 64, 3)), "resnet50", train_bn=False)
    assert tuple(outs[4].shape) == (None, 2, 2, 2048)
