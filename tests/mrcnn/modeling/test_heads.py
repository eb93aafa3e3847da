from pathlib import Path

import keras
import numpy as np
import pytest

from mrcnn.modeling.heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.modeling.layers import BatchNorm
from mrcnn.weights import weighted_layer_groups

TSV = Path(__file__).resolve().parents[2] / "data" / "matterport_coco_r101_h5_layout.tsv"
IMAGE = 64  # P2..P5 are 16, 8, 4, 2 pixels wide


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _tsv_rows(prefix):
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line and not line.startswith("#")]
    return [tuple(r) for r in rows if r[0].startswith(prefix)]


def _layout(model):
    return [(g, n, str(tuple(w.shape))) for g, ws in weighted_layer_groups(model) for n, w in ws]


def _image_meta(batch, num_classes):
    meta = np.concatenate(
        [[0], [IMAGE, IMAGE, 3], [IMAGE, IMAGE, 3], [0, 0, IMAGE, IMAGE], [1], np.ones(num_classes)]
    )
    return np.tile(meta.astype("float32"), (batch, 1))


def _inputs(depth, num_classes):
    rois = keras.Input((None, 4), name="rois")
    meta = keras.Input((12 + num_classes,), name="image_meta")
    maps = [
        keras.Input((IMAGE // s, IMAGE // s, depth), name=f"p{i + 2}") for i, s in enumerate((4, 8, 16, 32))
    ]
    return rois, meta, maps


def _feed(batch, n_rois, depth, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    y1x1 = rng.uniform(0, 0.6, size=(batch, n_rois, 2))
    hw = rng.uniform(0.05, 0.4, size=(batch, n_rois, 2))
    rois = np.concatenate([y1x1, y1x1 + hw], axis=-1).astype("float32")
    maps = [rng.normal(size=(batch, IMAGE // s, IMAGE // s, depth)).astype("float32") for s in (4, 8, 16, 32)]
    return [rois, _image_meta(batch, num_classes), *maps]


def _classifier_model(depth, pool, num_classes, fc, train_bn=False):
    rois, meta, maps = _inputs(depth, num_classes)
    outputs = fpn_classifier_graph(rois, maps, meta, pool, num_classes, train_bn=train_bn, fc_layers_size=fc)
    return keras.Model([rois, meta, *maps], outputs)


def _mask_model(depth, pool, num_classes, train_bn=False):
    rois, meta, maps = _inputs(depth, num_classes)
    return keras.Model(
        [rois, meta, *maps], build_fpn_mask_graph(rois, maps, meta, pool, num_classes, train_bn)
    )


def _randomize_bn(model, seed=0):
    """Non-trivial moving statistics so that inference-mode BN is not the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.uniform(0.1, 0.5, n),
                    rng.normal(size=n) * 0.1,
                    rng.uniform(0.5, 2, n),
                ]
            )


@pytest.fixture(scope="module")
def coco_sized_classifier():
    return _classifier_model(depth=256, pool=7, num_classes=81, fc=1024)


def test_classifier_weights_match_matterport(coco_sized_classifier):
    expected = _tsv_rows("mrcnn_class") + _tsv_rows("mrcnn_bbox")
    assert _layout(coco_sized_classifier) == expected
    names = {layer.name for layer in coco_sized_classifier.layers}
    assert {"roi_align_classifier", "pool_squeeze", "mrcnn_class", "mrcnn_bbox"} <= names


def test_classifier_output_shapes(coco_sized_classifier):
    logits, probs, bbox = coco_sized_classifier.outputs
    assert tuple(logits.shape) == (None, None, 81)
    assert tuple(probs.shape) == (None, None, 81)
    assert tuple(bbox.shape) == (None, None, 81, 4)
    logits, probs, bbox = (_np(t) for t in coco_sized_classifier(_feed(2, 3, 256, 81)))
    assert logits.shape == (2, 3, 81) and probs.shape == (2, 3, 81) and bbox.shape == (2, 3, 81, 4)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_mask_weights_and_shapes_match_matterport():
    model = _mask_model(depth=256, pool=14, num_classes=81)
    assert _layout(model) == _tsv_rows("mrcnn_mask")
    assert tuple(model.output.shape) == (None, None, 28, 28, 81)
    assert "roi_align_mask" in {layer.name for layer in model.layers}


def test_classifier_rois_are_independent_and_in_order():
    """Each ROI's output equals the output for that ROI alone: the ROI folding keeps (batch, roi) order."""
    keras.utils.set_random_seed(0)
    depth, nc = 4, 3
    model = _classifier_model(depth=depth, pool=3, num_classes=nc, fc=16, train_bn=False)
    _randomize_bn(model)
    feed = _feed(2, 5, depth, nc, seed=1)
    logits, probs, bbox = (_np(t) for t in model(feed, training=True))  # frozen BN: same as inference
    probe = keras.Model(model.inputs, model.get_layer("mrcnn_bbox_fc").output)
    np.testing.assert_allclose(bbox, _np(probe(feed)).reshape(2, 5, nc, 4), atol=1e-5)
    assert not np.allclose(logits[0, 0], logits[0, 1], atol=1e-3)
    for b in range(2):
        for n in range(5):
            single = [feed[0][b : b + 1, n : n + 1], feed[1][b : b + 1]] + [m[b : b + 1] for m in feed[2:]]
            s_logits, s_probs, s_bbox = (_np(t) for t in model(single))
            np.testing.assert_allclose(s_logits[0, 0], logits[b, n], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(s_probs[0, 0], probs[b, n], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(s_bbox[0, 0], bbox[b, n], rtol=1e-4, atol=1e-4)


def test_mask_rois_are_independent_and_in_order():
    keras.utils.set_random_seed(1)
    depth, nc = 4, 2
    model = _mask_model(depth=depth, pool=4, num_classes=nc, train_bn=False)
    _randomize_bn(model, seed=2)
    feed = _feed(2, 3, depth, nc, seed=3)
    masks = _np(model(feed))
    assert masks.shape == (2, 3, 8, 8, nc)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert not np.allclose(masks[1, 0], masks[1, 2], atol=1e-4)
    for b in range(2):
        for n in range(3):
            single = [feed[0][b : b + 1, n : n + 1], feed[1][b : b + 1]] + [m[b : b + 1] for m in feed[2:]]
            np.testing.assert_allclose(_np(model(single))[0, 0], masks[b, n], rtol=1e-4, atol=1e-5)


def test_heads_train_bn_flag_reaches_batchnorms():
    model = _mask_model(depth=4, pool=4, num_classes=2, train_bn=True)
    bns = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert [bn.name for bn in bns] == [f"mrcnn_mask_bn{i}" for i in range(1, 5)]
    assert all(bn.train_bn for bn in bns)
