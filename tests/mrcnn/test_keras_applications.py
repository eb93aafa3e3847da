"""mrcnn.keras_applications: keras-applications' ImageNet ResNet files renamed into Matterport's layers, and the
catalogue entry that uses it. The source files are real keras.applications ResNets (random weights) saved in
the Keras-2 layout the published files have; no network."""

import dataclasses
import hashlib
import re
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from mrcnn.catalogue import IMAGENET_RESNET50, IMAGENET_RESNET101, get_weights, imagenet_weights
from mrcnn.keras_applications import convert_to_matterport, matterport_layer_name
from mrcnn.weights import WeightsFileError, read_layout, save_weights_h5

TSV = Path(__file__).resolve().parents[1] / "data" / "matterport_coco_r101_h5_layout.tsv"


def _matterport_backbone_layout(depth: int):
    """Matterport's backbone weights (the COCO file's ResNet101; ResNet50 lacks blocks g..w of stage 4)."""
    rows = set()
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        group, name, shape = line.split("\t")
        if depth == 50 and re.match(r"(res|bn)4[g-w]_", group):
            continue
        if group.startswith(("res", "bn", "conv1")):
            rows.add((group, name, shape))
    return rows


def _keras_resnet_file(folder, depth: int) -> Path:
    build = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101}[depth]
    model = build(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = folder / f"resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    save_weights_h5(model, path)
    return path


@pytest.fixture(scope="module")
def keras_resnet50_file(tmp_path_factory):
    return _keras_resnet_file(tmp_path_factory.mktemp("published"), 50)


def test_names():
    assert matterport_layer_name("conv1_conv") == "conv1" and matterport_layer_name("conv1_bn") == "bn_conv1"
    assert matterport_layer_name("conv2_block1_0_conv") == "res2a_branch1"
    assert matterport_layer_name("conv4_block7_2_bn") == "bn4g_branch2b"
    assert matterport_layer_name("conv4_block23_3_conv") == "res4w_branch2c"
    assert matterport_layer_name("avg_pool") is None and matterport_layer_name("predictions") is None


def test_converted_resnet50_has_matterports_backbone_layout(keras_resnet50_file, tmp_path):
    target = convert_to_matterport(keras_resnet50_file, tmp_path / "converted.h5")
    layout = {(group, name, str(shape)) for group, name, shape in read_layout(target)}
    assert layout == _matterport_backbone_layout(50)
    with h5py.File(keras_resnet50_file, "r") as src, h5py.File(target, "r") as out:
        np.testing.assert_array_equal(
            out["res4f_branch2b"]["res4f_branch2b/kernel:0"][()],
            src["conv4_block6_2_conv"]["conv4_block6_2_conv/kernel:0"][()],
        )
        np.testing.assert_array_equal(
            out["bn_conv1"]["bn_conv1/moving_variance:0"][()],
            src["conv1_bn"]["conv1_bn/moving_variance:0"][()],
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.h5"]


@pytest.mark.slow
def test_converted_resnet101_has_matterports_backbone_layout(tmp_path):
    """The same for ResNet101, whose stage 4 runs to block w (about 20 s on 2 CPU cores)."""
    target = convert_to_matterport(_keras_resnet_file(tmp_path, 101), tmp_path / "converted.h5")
    layout = {(group, name, str(shape)) for group, name, shape in read_layout(target)}
    assert layout == _matterport_backbone_layout(101)


def test_a_file_without_resnet_layers_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
        f.create_group("dense").attrs["weight_names"] = np.array([b"dense/kernel:0"])
        f["dense"].create_dataset("dense/kernel:0", data=np.zeros((2, 2), np.float32))
    with pytest.raises(WeightsFileError, match="no keras-applications ResNet layer"):
        convert_to_matterport(path, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.h5.tmp").exists()


def test_catalogue_entry_fetches_then_converts_once(keras_resnet50_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "default_cache"))
    payload = keras_resnet50_file.read_bytes()
    entry = dataclasses.replace(
        IMAGENET_RESNET101, url=keras_resnet50_file.as_uri(), md5=hashlib.md5(payload).hexdigest()
    )
    path = entry.fetch(tmp_path / "weights", verbose=0)
    assert Path(path).name == "resnet101_weights_tf_dim_ordering_tf_kernels_notop_matterport.h5"
    assert ("res4f_branch2c", "res4f_branch2c/kernel:0", (1, 1, 256, 1024)) in read_layout(path)
    assert entry.cached(tmp_path / "weights") == path  # the conversion is kept
    assert (
        get_weights("imagenet_resnet101") is IMAGENET_RESNET101 and IMAGENET_RESNET101.backbone == "resnet101"
    )
    assert imagenet_weights("se_resnet101") is IMAGENET_RESNET101
    assert (
        imagenet_weights("resnet50") is IMAGENET_RESNET50 and imagenet_weights("small") is IMAGENET_RESNET50
    )
