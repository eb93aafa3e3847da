"""The MaskRCNN facade: building, Matterport's weight layout, .h5 round trips, layer groups, detect, training."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import Config
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.modeling.build import LOSS_OUTPUTS
from mrcnn.testing import TINY_SETTINGS, small_backbone, small_backbone_shapes
from mrcnn.weights import WeightsMismatchError, read_layout, save_weights_h5, weighted_layer_groups

LAYOUT_TSV = Path(__file__).resolve().parents[1] / "data" / "matterport_coco_r101_h5_layout.tsv"


# The tiny test model with a real ResNet50 backbone; every detection is kept.
TinyConfig = type(
    "TinyConfig", (Config,), {**TINY_SETTINGS, "BACKBONE": "resnet50", "DETECTION_MIN_CONFIDENCE": 0.0}
)


def make_config(**overrides) -> Config:
    return type("TestConfig", (TinyConfig,), overrides)()


def shapes(count=6, size=64, seed=0):
    return ShapesDataset.build(count, size, size, seed=seed)


def layout_rows(path=LAYOUT_TSV):
    rows = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        group, name, shape = line.split("\t")
        rows.append((group, name, tuple(int(v) for v in shape.strip("()").split(",") if v.strip())))
    return rows


def favour_class(model, class_id=1, logit=4.0):
    """Random heads put most ROIs in the background class; bias them towards ``class_id`` so there are
    detections to compare."""
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    kernel *= 0.1  # keep scores below saturation so that they are distinct (no ties to order arbitrarily)
    bias[:] = 0
    bias[class_id] = logit
    layer.set_weights([kernel, bias])


@pytest.fixture(scope="module")
def inference_model(tmp_path_factory):
    model = modellib.MaskRCNN("inference", make_config(), str(tmp_path_factory.mktemp("logs")))
    favour_class(model)
    return model


def test_inference_layout_equals_matterport_coco_file(tmp_path):
    config = make_config(
        BACKBONE="resnet101",
        NUM_CLASSES=81,
        TOP_DOWN_PYRAMID_SIZE=256,
        FPN_CLASSIF_FC_LAYERS_SIZE=1024,
    )
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    ours = [
        (group, name, tuple(var.shape))
        for group, weights in weighted_layer_groups(model.keras_model)
        for name, var in weights
    ]
    expected = layout_rows()
    assert sorted(ours) == sorted(expected)
    # The file we write reads back with the same layout.
    path = tmp_path / "r101.h5"
    save_weights_h5(model.keras_model, str(path))
    assert sorted(read_layout(str(path))) == sorted(expected)


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_training_graph_builds(tmp_path, backbone):
    model = modellib.MaskRCNN("training", make_config(BACKBONE=backbone), str(tmp_path))
    names = {layer.name for layer in model.keras_model.layers}
    for loss in LOSS_OUTPUTS:
        assert loss in names
    assert ("res4w_branch2c" in names) == (backbone == "resnet101")
    assert "rpn_model" in names and "mrcnn_mask" in names


def test_h5_round_trip_gives_identical_detections(tmp_path, inference_model):
    image = shapes(1).load_image(0)
    before = inference_model.detect([image])[0]
    path = str(tmp_path / "weights.h5")
    inference_model.save_weights(path)

    fresh = modellib.MaskRCNN("inference", make_config(), str(tmp_path))
    fresh.load_weights(path, by_name=True)
    after = fresh.detect([image])[0]
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(before[key], after[key])
    assert len(before["class_ids"]) > 0  # min confidence 0: random weights still detect something


def test_load_with_exclude_and_mismatch_error(tmp_path, inference_model):
    path = str(tmp_path / "four_classes.h5")
    inference_model.save_weights(path)
    other = modellib.MaskRCNN("inference", make_config(NUM_CLASSES=6), str(tmp_path))
    before = other.keras_model.get_layer("mrcnn_class_logits").get_weights()[0].copy()
    with pytest.raises(WeightsMismatchError) as error:
        other.load_weights(path, by_name=True)
    message = str(error.value)
    assert "mrcnn_" in message and "(64, 4)" in message and "(64, 6)" in message
    # nothing was loaded by the failed call
    np.testing.assert_array_equal(other.keras_model.get_layer("mrcnn_class_logits").get_weights()[0], before)

    other.load_weights(
        path, by_name=True, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
    )
    np.testing.assert_array_equal(
        other.keras_model.get_layer("res2a_branch2a").get_weights()[0],
        inference_model.keras_model.get_layer("res2a_branch2a").get_weights()[0],
    )
    np.testing.assert_array_equal(
        other.keras_model.get_layer("rpn_model").get_weights()[0],
        inference_model.keras_model.get_layer("rpn_model").get_weights()[0],
    )
    np.testing.assert_array_equal(other.keras_model.get_layer("mrcnn_class_logits").get_weights()[0], before)


def test_layer_groups(tmp_path):
    model = modellib.MaskRCNN("training", make_config(), str(tmp_path))

    def trainable_names():
        return {layer.name for layer in model.get_trainable_layers() if layer.trainable}

    heads = set(model.set_trainable("heads", verbose=0))
    assert heads == trainable_names()
    assert heads and all(n.startswith(("mrcnn_", "rpn_", "fpn_")) for n in heads)
    assert "rpn_conv_shared" in heads and "fpn_c5p5" in heads and "mrcnn_mask" in heads

    four = set(model.set_trainable("4+", verbose=0))
    assert heads < four
    assert "res4a_branch2a" in four and "bn5c_branch2c" in four and "res3a_branch2a" not in four
    assert not any(n.startswith(("res2", "res3", "bn2", "bn3", "conv1")) for n in four)

    everything = set(model.set_trainable("all", verbose=0))
    assert everything == {layer.name for layer in model.get_trainable_layers()}
    assert "conv1" in everything and "res3a_branch2a" in everything

    custom = set(model.set_trainable(r"mrcnn\_mask.*", verbose=0))
    assert custom == {n for n in everything if n.startswith("mrcnn_mask")}


def test_detect_batch_equals_single(tmp_path):
    keras.utils.set_random_seed(1)
    config = make_config(IMAGES_PER_GPU=4)
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    favour_class(model, class_id=2, logit=2.0)
    dataset = shapes(4, seed=3)
    images = [dataset.load_image(i) for i in range(4)]

    # The graph's detections for each image of a batch equal those of the image run alone (up to the last
    # float bits in which batched convolutions differ from single ones).
    molded, metas, _ = model.mold_inputs(images)
    anchors = np.broadcast_to(
        model.get_anchors(molded.shape[1:]), (4, *model.get_anchors(molded.shape[1:]).shape)
    )
    batch_detections, batch_masks = (t.numpy() for t in model._predict(molded, metas, anchors))
    assert np.count_nonzero(batch_detections[..., 4]) > 4
    for i in range(4):
        alone, alone_masks = (
            t.numpy() for t in model._predict(molded[i : i + 1], metas[i : i + 1], anchors[i : i + 1])
        )
        np.testing.assert_allclose(batch_detections[i], alone[0], atol=1e-3)
        np.testing.assert_allclose(batch_masks[i], alone_masks[0], atol=1e-3)
    # ... and differ between images (each image gets its own detections, not image 0's)
    assert not np.allclose(batch_detections[0], batch_detections[1], atol=1e-3)

    results = model.detect(images)
    assert len(results) == 4
    for image, result in zip(images, results):
        assert result["masks"].shape[:2] == image.shape[:2] and result["masks"].dtype == bool
        assert (
            len(result["rois"])
            == len(result["class_ids"])
            == len(result["scores"])
            == result["masks"].shape[2]
        )
    # more images than BATCH_SIZE run in several batches
    assert len(model.detect(images + images[:1])) == 5


def test_detect_returns_original_coordinates(tmp_path, inference_model):
    image = np.zeros((40, 96, 3), np.uint8) + 128  # resized and padded to 64x64
    result = inference_model.detect([image])[0]
    assert result["masks"].shape[:2] == (40, 96)
    if len(result["rois"]):
        assert result["rois"][:, [0, 2]].max() <= 40 and result["rois"][:, [1, 3]].max() <= 96
        assert (result["rois"] >= 0).all()


def test_detect_with_no_detections(tmp_path):
    """DETECTION_MIN_CONFIDENCE above every score gives empty results of the right shapes.

    The scores are made certain to stay below 1.0: random ResNet weights give logit gaps of 15-25, whose
    softmax rounds to exactly 1.0 in float32 on oneDNN's kernel (Eigen's stops at 1 - 2**-24), and Matterport's
    ``score >= DETECTION_MIN_CONFIDENCE`` keeps such a score even at 1.0. Here the classifier's logits layer
    gives every ROI the probabilities softmax([0, 3, 0, 0]) (0.87 for class 1) whatever the features are.
    """
    model = modellib.MaskRCNN("inference", make_config(DETECTION_MIN_CONFIDENCE=0.9), str(tmp_path))
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.eye(1, bias.shape[0], 1, dtype=bias.dtype)[0] * 3.0])
    image = shapes(1).load_image(0)
    result = model.detect([image])[0]
    assert (
        result["rois"].shape == (0, 4)
        and result["class_ids"].shape == (0,)
        and result["scores"].shape == (0,)
    )
    assert result["masks"].shape == (64, 64, 0)
    # The same weights with a threshold below 0.87 detect class 1 (so the empty result above is the threshold's).
    lower = modellib.MaskRCNN("inference", make_config(DETECTION_MIN_CONFIDENCE=0.8), str(tmp_path))
    lower.keras_model.set_weights(model.keras_model.get_weights())
    found = lower.detect([image])[0]
    assert len(found["class_ids"]) > 0 and set(found["class_ids"].tolist()) == {1}
    np.testing.assert_allclose(found["scores"], np.exp(3) / (np.exp(3) + 3), rtol=1e-5)


def test_mask_head_runs_on_real_detections_only(tmp_path, inference_model):
    """Masks of the graph equal those of a mask head run on all DETECTION_MAX_INSTANCES rows."""
    image = shapes(1, seed=5).load_image(0)
    molded, metas, _ = inference_model.mold_inputs([image])
    anchors = inference_model.get_anchors(molded.shape[1:])[None]
    detections, _, _, masks, *_ = inference_model.keras_model([molded, metas, anchors], training=False)
    detections, masks = np.asarray(detections), np.asarray(masks)
    n = int((detections[0, :, 4] > 0).sum())
    assert 0 < n
    assert masks.shape[1] == inference_model.config.DETECTION_MAX_INSTANCES
    assert not masks[0, n:].any()
    km = inference_model.keras_model
    feature_maps = [km.get_layer(name).output for name in ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5")]
    probe = keras.Model(km.inputs, feature_maps)
    maps = probe([molded, metas, anchors], training=False)
    # the mask head applied by hand to every row, padding included
    d = detections.shape[1]
    x = km.get_layer("roi_align_mask")([detections[:, :, :4], metas, *maps])
    x = np.reshape(x, (d, *x.shape[2:]))
    for i in range(1, 5):
        x = km.get_layer(f"mrcnn_mask_conv{i}")(x)
        x = np.maximum(km.get_layer(f"mrcnn_mask_bn{i}")(x, training=False), 0)
    x = km.get_layer("mrcnn_mask")(km.get_layer("mrcnn_mask_deconv")(x))
    np.testing.assert_allclose(masks[0, :n], np.asarray(x)[:n], atol=1e-5)


def test_train_writes_checkpoints_and_resumes(tmp_path):
    config = make_config(BACKBONE=small_backbone, COMPUTE_BACKBONE_SHAPE=small_backbone_shapes, TRAIN_BN=True)
    train_set, val_set = shapes(6, seed=1), shapes(2, seed=2)
    model = modellib.MaskRCNN("training", config, str(tmp_path))

    def kernel(m, name):
        return m.keras_model.get_layer(name).get_weights()[0].copy()

    # mrcnn_class_logits always gets a gradient; the mask head only when a sampled ROI is positive
    backbone_before, head_before = kernel(model, "small1_conv"), kernel(model, "mrcnn_class_logits")
    history = model.train(train_set, val_set, learning_rate=0.001, epochs=1, layers="heads", verbose=0)
    # 'heads' moves the heads and leaves the backbone alone
    np.testing.assert_array_equal(kernel(model, "small1_conv"), backbone_before)
    assert not np.array_equal(kernel(model, "mrcnn_class_logits"), head_before)
    losses = history.history
    for key in (
        "loss",
        "rpn_class_loss",
        "rpn_bbox_loss",
        "mrcnn_class_loss",
        "mrcnn_bbox_loss",
        "mrcnn_mask_loss",
        "val_loss",
    ):
        assert key in losses and np.isfinite(losses[key]).all(), key

    last = model.find_last()
    assert os.path.basename(last) == "mask_rcnn_tiny_0001.h5"
    run_dir = os.path.dirname(last)
    assert os.path.isfile(os.path.join(run_dir, "config.json"))
    assert os.path.isfile(os.path.join(run_dir, "history.csv"))
    assert not [f for f in os.listdir(run_dir) if f.endswith(".part")]

    resumed = modellib.MaskRCNN("training", config, str(tmp_path))
    resumed.load_weights(resumed.find_last(), by_name=True)
    assert resumed.epoch == 1 and resumed.log_dir == run_dir
    np.testing.assert_array_equal(kernel(resumed, "mrcnn_mask"), kernel(model, "mrcnn_mask"))
    # A new train() call (epoch 1 ended the first one; other layers): its optimizer starts anew. It is stopped
    # (as by a kill) after its first epoch (2), before epoch 3.
    first_call = _OptimizerProbe(stop_before_epoch=3)
    with pytest.raises(_Stopped):
        resumed.train(
            train_set, None, 0.001, epochs=3, layers="all", verbose=0, custom_callbacks=[first_call]
        )
    assert first_call.at_begin["iterations"] == 0 and not any(
        np.any(m) for m in first_call.at_begin["momenta"]
    )
    assert not np.array_equal(kernel(resumed, "small1_conv"), backbone_before)
    assert os.path.basename(resumed.find_last()) == "mask_rcnn_tiny_0002.h5"
    assert os.path.dirname(resumed.find_last()) == run_dir

    # Resuming that call from its checkpoint: its optimizer takes the momentum and the step count it had at the end
    # of epoch 2, exactly (stopped again before a step: the comparison is the point).
    resumed.load_weights(resumed.find_last(), by_name=True)
    second_call = _OptimizerProbe(stop_before_epoch=0)
    with pytest.raises(_Stopped):
        resumed.train(
            train_set, None, 0.001, epochs=3, layers="all", verbose=0, custom_callbacks=[second_call]
        )
    end_of_epoch_2 = first_call.at_epoch_end[2]
    assert second_call.at_begin["iterations"] == end_of_epoch_2["iterations"] == config.STEPS_PER_EPOCH
    assert len(second_call.at_begin["momenta"]) == len(end_of_epoch_2["momenta"]) > 0
    for restored, saved in zip(second_call.at_begin["momenta"], end_of_epoch_2["momenta"]):
        np.testing.assert_array_equal(restored, saved)


class _Stopped(Exception):
    pass


class _OptimizerProbe(keras.callbacks.Callback):
    """Records the trainer's SGD momenta and iteration count when fit begins and at each epoch's end (after the
    checkpoint); raises _Stopped at the beginning of fit when ``stop_before_epoch`` is 0, else before that
    (1-based) epoch."""

    def __init__(self, stop_before_epoch):
        super().__init__()
        self.stop_before_epoch = stop_before_epoch
        self.at_begin, self.at_epoch_end = None, {}

    def _state(self):
        optimizer = self.model.optimizer
        return {
            "iterations": int(optimizer.iterations.numpy()),
            "momenta": [keras.ops.convert_to_numpy(m).copy() for m in optimizer.momentums],
        }

    def on_train_begin(self, logs=None):
        self.at_begin = self._state()
        if self.stop_before_epoch == 0:
            raise _Stopped

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.stop_before_epoch:
            raise _Stopped

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end[epoch + 1] = self._state()


def test_find_last_without_runs_is_clear(tmp_path):
    model = modellib.MaskRCNN("inference", make_config(), str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="tiny"):
        model.find_last()


def test_mode_is_checked(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        modellib.MaskRCNN("serving", make_config(), str(tmp_path))


def test_matterport_helpers_importable_from_model():
    for name in (
        "load_image_gt",
        "data_generator",
        "mold_image",
        "unmold_image",
        "compose_image_meta",
        "parse_image_meta",
        "log",
        "build_rpn_targets",
    ):
        assert callable(getattr(modellib, name))


def test_batch_norm_momentum_setting(tmp_path):
    model = modellib.MaskRCNN("training", make_config(BATCH_NORM_MOMENTUM=0.9), str(tmp_path))
    norms = [
        layer for layer in model.get_trainable_layers() if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and all(layer.momentum == 0.9 for layer in norms)


def _fake_checkpoint(path, complete=True):
    """An .h5 that find_last accepts (it lists its layers), or a damaged one."""
    import h5py

    if not complete:
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)  # an HDF5 signature and nothing after it
        return str(path)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv1"])
    return str(path)


def test_runs_of_the_same_minute_get_folders_of_their_own_and_last_resumes_the_newest_complete_one(
    tmp_path, monkeypatch
):
    import datetime as real_datetime

    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 5, 6, 7, 8, 9)

    monkeypatch.setattr(modellib.datetime, "datetime", Frozen)
    model = modellib.MaskRCNN("inference", make_config(NAME="runs", BACKBONE="small"), str(tmp_path))
    first = model.claim_log_dir()
    assert first == str(tmp_path / "runs20240506T0708") and model.claim_log_dir() == first  # claimed once
    assert model.checkpoint_path.startswith(first + os.sep)
    model.set_log_dir()
    second = model.claim_log_dir()
    assert second == first + "-2" and model.checkpoint_path.startswith(second + os.sep)
    model.set_log_dir()
    third = model.claim_log_dir()
    assert third == first + "-3"

    _fake_checkpoint(Path(first) / "mask_rcnn_runs_0001.h5")
    _fake_checkpoint(Path(first) / "mask_rcnn_runs_0002.h5")
    _fake_checkpoint(Path(second) / "mask_rcnn_runs_0001.h5")
    _fake_checkpoint(Path(second) / "mask_rcnn_runs_0002.h5", complete=False)  # damaged after the rename
    (Path(second) / "mask_rcnn_runs_0003.h5.tmp").write_bytes(b"half written")
    # third: killed before its first checkpoint, so it is passed over
    assert [os.path.basename(p) for p in modellib.run_folders(str(tmp_path), "runs")] == [
        "runs20240506T0708",
        "runs20240506T0708-2",
        "runs20240506T0708-3",
    ]
    last = model.find_last()
    assert last == os.path.join(second, "mask_rcnn_runs_0001.h5")

    # Resuming from a "-k" folder continues that folder and its epoch count, as from Matterport's names.
    model.set_log_dir(last)
    assert model.epoch == 1 and model.log_dir == second and model.claim_log_dir() == second
    model.set_log_dir(os.path.join(first, "mask_rcnn_runs_0002.h5"))
    assert model.epoch == 2 and model.log_dir == first
    # A file outside a run folder starts a new run.
    model.set_log_dir(str(tmp_path / "elsewhere.h5"))
    assert model.epoch == 0 and model.log_dir == first  # the minute's base name, claimed anew at training


def test_find_last_when_no_run_has_a_complete_checkpoint(tmp_path):
    os.makedirs(tmp_path / "tiny20240101T0000")
    _fake_checkpoint(tmp_path / "tiny20240101T0000" / "mask_rcnn_tiny_0001.h5", complete=False)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        modellib.find_last_checkpoint(str(tmp_path), "tiny")
