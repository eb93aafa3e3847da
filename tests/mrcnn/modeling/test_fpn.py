from pathlib import Path

import keras
import numpy as np

from mrcnn.modeling.fpn import fpn_graph
from mrcnn.weights import weighted_layer_groups

TSV = Path(__file__).resolve().parents[2] / "data" / "matterport_coco_r101_h5_layout.tsv"


def _tsv_rows(prefix):
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line and not line.startswith("#")]
    return [tuple(r) for r in rows if r[0].startswith(prefix)]


def _fpn_model(channels=(256, 512, 1024, 2048), size=64, pyramid_size=256):
    inputs = [
        keras.Input((size // s, size // s, c), name=f"c{i + 2}")
        for i, (s, c) in enumerate(zip((4, 8, 16, 32), channels))
    ]
    return keras.Model(inputs, fpn_graph(*inputs, pyramid_size=pyramid_size))


def test_fpn_weights_match_matterport_layout():
    model = _fpn_model()
    layout = [(g, n, str(tuple(w.shape))) for g, ws in weighted_layer_groups(model) for n, w in ws]
    assert layout == _tsv_rows("fpn_")


def test_fpn_output_shapes_and_layer_names():
    model = _fpn_model(channels=(8, 16, 32, 64), pyramid_size=16)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 16, 16, 16),
        (None, 8, 8, 16),
        (None, 4, 4, 16),
        (None, 2, 2, 16),
        (None, 1, 1, 16),
    ]
    names = {layer.name for layer in model.layers}
    for name in [
        "fpn_c5p5", "fpn_p5upsampled", "fpn_c4p4", "fpn_p4add", "fpn_p4upsampled", "fpn_c3p3", "fpn_p3add",
        "fpn_p3upsampled", "fpn_c2p2", "fpn_p2add", "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6",
    ]:  # fmt: skip
        assert name in names


def test_fpn_top_down_values():
    """With identity 1x1 laterals and identity-centre 3x3 smoothing, P_k = C_k + upsample(P_{k+1})."""
    model = _fpn_model(channels=(2, 2, 2, 2), size=32, pyramid_size=2)
    for layer in model.layers:
        if layer.name.startswith("fpn_c"):
            layer.set_weights([np.eye(2, dtype="float32")[None, None], np.zeros(2, "float32")])
        elif layer.name in ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5"):
            kernel = np.zeros((3, 3, 2, 2), "float32")
            kernel[1, 1] = np.eye(2)
            layer.set_weights([kernel, np.zeros(2, "float32")])
    rng = np.random.default_rng(0)
    cs = [rng.normal(size=(1, 32 // s, 32 // s, 2)).astype("float32") for s in (4, 8, 16, 32)]
    p2, p3, p4, p5, p6 = (keras.ops.convert_to_numpy(t) for t in model(cs))

    def up(x):
        return x.repeat(2, axis=1).repeat(2, axis=2)

    np.testing.assert_allclose(p5, cs[3], atol=1e-5)
    np.testing.assert_allclose(p4, cs[2] + up(cs[3]), atol=1e-5)
    np.testing.assert_allclose(p3, cs[1] + up(p4), atol=1e-5)
    np.testing.assert_allclose(p2, cs[0] + up(p3), atol=1e-5)
    np.testing.assert_allclose(p6, p5[:, ::2, ::2], atol=1e-6)
