"""mrcnn.catalogue: the table of published weight files; fetching from a cache or a (local) URL, checks,
offline messages, and load_weights with an entry. No test touches the network: URLs are file:// or a closed
local port."""

import dataclasses
import hashlib
import os
import socket

import numpy as np
import pytest

from mrcnn import download
from mrcnn.catalogue import (
    COCO_CLASS_NAMES,
    HEAD_LAYERS,
    WEIGHTS,
    WeightsFile,
    default_cache_dir,
    get_weights,
)
from mrcnn.download import COCO_MODEL_SIZE, COCO_MODEL_URL, WeightsConnectionError, WeightsDownloadError
from mrcnn.registry import UnknownNameError

PAYLOAD = os.urandom(2 * 1024 * 1024 + 5)


@pytest.fixture(autouse=True)
def _empty_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "default_cache"))


def _local_entry(tmp_path, payload=PAYLOAD, **changes) -> WeightsFile:
    source = tmp_path / "published.h5"
    source.write_bytes(payload)
    entry = WeightsFile(
        name="local",
        filename="local.h5",
        url=source.as_uri(),
        backbone="small",
        description="a local test file",
        size=len(payload),
        md5=hashlib.md5(payload).hexdigest(),
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    return dataclasses.replace(entry, **changes)


def test_the_catalogue_describes_the_published_files():
    coco = get_weights("coco")
    assert coco.url == COCO_MODEL_URL and coco.size == COCO_MODEL_SIZE == 257_557_808
    assert coco.backbone == "resnet101" and coco.num_classes == 81 == len(COCO_CLASS_NAMES)
    assert coco.class_names[:3] == ("BG", "person", "bicycle") and coco.class_names[-1] == "toothbrush"
    assert coco.exclude_for(81) == () and coco.exclude_for(1 + 46) == HEAD_LAYERS
    imagenet = get_weights("imagenet")
    assert imagenet is get_weights("imagenet_resnet50") and imagenet.backbone == "resnet50"
    assert imagenet.md5 == "a268eb855778b3df3c7506639542a6af" and imagenet.class_names is None
    import mrcnn.model as modellib

    assert modellib.IMAGENET_RESNET50_URL == imagenet.url and modellib.IMAGENET_RESNET50_MD5 == imagenet.md5
    with pytest.raises(UnknownNameError, match="coco"):
        get_weights("voc")
    assert set(WEIGHTS) >= {"coco", "imagenet"}


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert default_cache_dir() == str(tmp_path / "default_cache")
    monkeypatch.delenv("MRCNN_WEIGHTS_DIR")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert default_cache_dir() == str(tmp_path / "keras" / "models")


def test_fetch_downloads_once_then_uses_the_cached_copy(tmp_path, monkeypatch):
    entry = _local_entry(tmp_path)
    path = entry.fetch(tmp_path / "cache", verbose=0)
    assert path == str(tmp_path / "cache" / "local.h5") and open(path, "rb").read() == PAYLOAD

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(download, "download_trained_weights", no_download)
    assert entry.fetch(tmp_path / "cache", verbose=0) == path
    # A copy in the default cache is found when the folder given has none.
    os.makedirs(default_cache_dir())
    os.replace(path, os.path.join(default_cache_dir(), "local.h5"))
    assert entry.fetch(tmp_path / "cache", verbose=0) == os.path.join(default_cache_dir(), "local.h5")


def test_a_wrong_copy_is_not_used_and_a_wrong_download_is_not_kept(tmp_path):
    entry = _local_entry(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "local.h5").write_bytes(PAYLOAD[:-1] + b"x")  # right size, wrong content
    assert entry.cached(cache) is None
    assert entry.fetch(cache, verbose=0) == str(cache / "local.h5")  # downloaded over it
    assert (cache / "local.h5").read_bytes() == PAYLOAD

    bad = _local_entry(tmp_path, md5="0" * 32)
    with pytest.raises(WeightsDownloadError, match="md5"):
        bad.fetch(tmp_path / "other", verbose=0)
    assert os.listdir(tmp_path / "other") == []


def test_offline_fetch_says_where_to_put_a_copy(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = _local_entry(tmp_path, url=f"http://127.0.0.1:{port}/local.h5")
    with pytest.raises(WeightsConnectionError) as info:
        entry.fetch(tmp_path / "cache", verbose=0, timeout=5)
    assert str(tmp_path / "cache" / "local.h5") in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_load_weights_with_an_entry_leaves_out_the_heads_for_other_classes(tmp_path):
    from mrcnn.model import MaskRCNN
    from mrcnn.testing import tiny_config

    source = MaskRCNN("inference", tiny_config(NUM_CLASSES=3, IMAGES_PER_GPU=1), str(tmp_path))
    source.save_weights(str(tmp_path / "three.h5"))
    payload = (tmp_path / "three.h5").read_bytes()
    entry = _local_entry(tmp_path, payload, class_names=("BG", "a", "b"), exclude_for_transfer=HEAD_LAYERS)

    target = MaskRCNN("inference", tiny_config(NUM_CLASSES=5, IMAGES_PER_GPU=1), str(tmp_path / "logs"))
    before = target.keras_model.get_layer("mrcnn_bbox_fc").get_weights()[0].copy()
    target.load_weights(entry, by_name=True)  # 5 != 3 classes: heads left out, so no shape mismatch
    for name in ("small1_conv", "fpn_c5p5"):
        for ours, theirs in zip(
            target.keras_model.get_layer(name).get_weights(), source.keras_model.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(target.keras_model.get_layer("mrcnn_bbox_fc").get_weights()[0], before)
