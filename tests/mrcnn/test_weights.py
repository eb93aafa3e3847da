import h5py
import keras
import numpy as np
import pytest

from mrcnn import weights as weights_module
from mrcnn.modeling.layers import BatchNorm
from mrcnn.modeling.rpn import build_rpn_model
from mrcnn.weights import (
    NonFiniteWeightsError,
    WeightsFileError,
    WeightsMismatchError,
    load_weights_h5,
    read_layout,
    save_weights_h5,
    weighted_layer_groups,
)


def _np(t):
    return keras.ops.convert_to_numpy(t)


def tiny_model(num_classes=5, extra_layer=False, seed=None, attribute_head=False):
    """Names from Matterport's scheme: conv1, bn_conv1, nested rpn_model, mrcnn_class_logits."""
    inp = keras.Input((8, 8, 3), name="input_image")
    x = keras.layers.Conv2D(4, (3, 3), padding="same", name="conv1")(inp)
    x = BatchNorm(name="bn_conv1", train_bn=False)(x)
    x = keras.layers.Activation("relu")(x)
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=4)
    logits, probs, bbox = rpn(x)
    head = keras.layers.Dense(num_classes, name="mrcnn_class_logits")(bbox)
    if extra_layer:
        head = keras.layers.Dense(2, name="extra_dense")(head)
    outputs = [logits, probs, head]
    if attribute_head:  # an optional attribute head, placed before the class head in the layer order
        outputs.insert(2, keras.layers.Dense(3, name="mrcnn_attr_logits")(bbox))
    model = keras.Model(inp, outputs)
    if seed is not None:
        rng = np.random.default_rng(seed)
        model.set_weights([rng.uniform(0.1, 1.0, size=w.shape).astype("float32") for w in model.weights])
    return model


def _values(model):
    return {f"{g}:{n}": _np(w).copy() for g, ws in weighted_layer_groups(model) for n, w in ws}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_weighted_layer_groups_names():
    groups = weighted_layer_groups(tiny_model())
    assert [g for g, _ in groups] == ["conv1", "bn_conv1", "rpn_model", "mrcnn_class_logits"]
    assert [n for n, _ in groups[1][1]] == [
        "bn_conv1/gamma:0",
        "bn_conv1/beta:0",
        "bn_conv1/moving_mean:0",
        "bn_conv1/moving_variance:0",
    ]
    assert [n for n, _ in groups[2][1]] == [
        "rpn_conv_shared/kernel:0",
        "rpn_conv_shared/bias:0",
        "rpn_class_raw/kernel:0",
        "rpn_class_raw/bias:0",
        "rpn_bbox_pred/kernel:0",
        "rpn_bbox_pred/bias:0",
    ]


def test_saved_file_has_keras2_layout(tmp_path):
    model = tiny_model(seed=0)
    path = tmp_path / "w.h5"
    save_weights_h5(model, path)
    assert not (tmp_path / "w.h5.tmp").exists()
    with h5py.File(path, "r") as f:
        layer_names = [n.decode() for n in f.attrs["layer_names"]]
        assert layer_names == [layer.name for layer in model.layers]
        assert f.attrs["backend"] in ("tensorflow", b"tensorflow")
        assert "keras_version" in f.attrs
        assert [n.decode() for n in f["rpn_model"].attrs["weight_names"]][0] == "rpn_conv_shared/kernel:0"
        assert len(f["input_image"].attrs["weight_names"]) == 0
        np.testing.assert_array_equal(
            f["rpn_model"]["rpn_class_raw/kernel:0"][()], _np(model.get_layer("rpn_model").weights[2])
        )
    layout = read_layout(path)
    assert layout[0] == ("conv1", "conv1/kernel:0", (3, 3, 3, 4))
    assert ("rpn_model", "rpn_bbox_pred/kernel:0", (1, 1, 512, 12)) in layout
    assert len(layout) == 2 + 4 + 6 + 2


@pytest.mark.parametrize("by_name", [True, False])
def test_round_trip(tmp_path, by_name):
    source = tiny_model(seed=0)
    path = tmp_path / "w.h5"
    save_weights_h5(source, path)
    target = tiny_model(seed=1)
    report = load_weights_h5(target, path, by_name=by_name)
    _assert_same(_values(target), _values(source))
    assert report.loaded == ["conv1", "bn_conv1", "rpn_model", "mrcnn_class_logits"]
    assert report.skipped == report.missing_in_file == report.unused_in_file == []
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
    for a, b in zip(source(x), target(x)):
        np.testing.assert_allclose(_np(a), _np(b))


def test_exclude_skips_layers(tmp_path):
    path = tmp_path / "w.h5"
    source = tiny_model(seed=0)
    save_weights_h5(source, path)
    target = tiny_model(seed=1)
    before = _values(target)
    report = load_weights_h5(target, path, exclude=["mrcnn_class_logits", "rpn_model"])
    after, src = _values(target), _values(source)
    for key in after:
        expected = before if key.startswith(("mrcnn_class_logits", "rpn_model")) else src
        np.testing.assert_array_equal(after[key], expected[key], err_msg=key)
    assert report.skipped == ["rpn_model", "mrcnn_class_logits"]
    assert report.loaded == ["conv1", "bn_conv1"]


def test_shape_mismatch_raises_and_leaves_model_untouched(tmp_path):
    path = tmp_path / "w.h5"
    save_weights_h5(tiny_model(num_classes=5, seed=0), path)
    target = tiny_model(num_classes=7, seed=1)
    before = _values(target)
    for by_name in (True, False):
        with pytest.raises(WeightsMismatchError) as info:
            load_weights_h5(target, path, by_name=by_name)
        message = str(info.value)
        assert "mrcnn_class_logits" in message and "kernel" in message
        assert "(4, 5)" in message and "(4, 7)" in message
        assert ("mrcnn_class_logits", "mrcnn_class_logits/kernel:0 (file: mrcnn_class_logits/kernel:0)") == (
            info.value.mismatches[0][:2]
        )
        _assert_same(_values(target), before)
    # Excluding the mismatched layer makes the load succeed.
    report = load_weights_h5(target, path, by_name=True, exclude=["mrcnn_class_logits"])
    assert report.skipped == ["mrcnn_class_logits"]


def test_missing_and_unused_layers_reported(tmp_path):
    path = tmp_path / "w.h5"
    save_weights_h5(tiny_model(seed=0), path)
    target = tiny_model(extra_layer=True, seed=1)
    report = load_weights_h5(target, path, by_name=True)
    assert report.missing_in_file == ["extra_dense"]
    assert report.unused_in_file == []
    assert "1 missing in file" in report.summary()

    path2 = tmp_path / "w2.h5"
    save_weights_h5(target, path2)
    report = load_weights_h5(tiny_model(), path2, by_name=True)
    assert report.unused_in_file == ["extra_dense"]
    with pytest.raises(WeightsMismatchError, match="5 layers with weights but the model has 4"):
        load_weights_h5(tiny_model(), path2, by_name=False)


@pytest.mark.parametrize("by_name", [False, True])
def test_the_attribute_head_loads_optionally_both_ways(tmp_path, by_name):
    """A file with the head into a model without it: the head is skipped and reported; without the head into a
    model with it: reported missing. Everything else loads, also by position (Keras 2's by_name=False)."""
    with_head, without = tiny_model(seed=0, attribute_head=True), tiny_model(seed=1)
    save_weights_h5(with_head, tmp_path / "head.h5")
    save_weights_h5(without, tmp_path / "plain.h5")

    target = tiny_model(seed=2)
    report = load_weights_h5(target, tmp_path / "head.h5", by_name=by_name)
    assert report.skipped_attribute_layers == report.unused_in_file == ["mrcnn_attr_logits"]
    assert "the file's attribute head was skipped (mrcnn_attr_logits)" in report.summary()
    expected = {k: v for k, v in _values(with_head).items() if not k.startswith("mrcnn_attr_")}
    _assert_same(_values(target), expected)

    target = tiny_model(seed=3, attribute_head=True)
    head_before = target.get_layer("mrcnn_attr_logits").get_weights()
    report = load_weights_h5(target, tmp_path / "plain.h5", by_name=by_name)
    assert report.missing_in_file == ["mrcnn_attr_logits"] and not report.skipped_attribute_layers
    for a, b in zip(head_before, target.get_layer("mrcnn_attr_logits").get_weights()):
        np.testing.assert_array_equal(a, b)  # left as it was
    values = _values(target)
    _assert_same({k: v for k, v in values.items() if not k.startswith("mrcnn_attr_")}, _values(without))

    report = load_weights_h5(target, tmp_path / "head.h5", by_name=by_name)  # matched by name either way
    assert not report.missing_in_file and not report.unused_in_file
    _assert_same(_values(target), _values(with_head))


def _write_keras2_file(f, values):
    """Write as Keras 2's save_weights does: every layer name, empty weight_names for weightless layers."""
    bn_names = [f"bn_conv1/{n}:0" for n in ("gamma", "beta", "moving_mean", "moving_variance")]
    rpn_layers = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")
    rpn_names = [f"{layer}/{w}:0" for layer in rpn_layers for w in ("kernel", "bias")]
    groups = {
        "input_image": [],
        "conv1": [("conv1/kernel:0", values[0]), ("conv1/bias:0", values[1])],
        "bn_conv1": list(zip(bn_names, values[2:6])),
        "activation_7": [],
        "rpn_model": list(zip(rpn_names, values[6:12])),
        "mrcnn_class_logits": [
            ("mrcnn_class_logits/kernel:0", values[12]),
            ("mrcnn_class_logits/bias:0", values[13]),
        ],
    }
    f.attrs["layer_names"] = [name.encode("utf8") for name in groups]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.2.4"
    for name, weights in groups.items():
        g = f.create_group(name)
        g.attrs["weight_names"] = [n.encode("utf8") for n, _ in weights] if weights else np.asarray([])
        for n, v in weights:
            g.create_dataset(n, data=v)


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize("by_name", [True, False])
def test_hand_written_keras2_file_loads(tmp_path, wrapped, by_name):
    rng = np.random.default_rng(5)
    shapes = [tuple(w.shape) for w in tiny_model().weights]
    values = [rng.normal(size=s).astype("float32") for s in shapes]
    path = tmp_path / "k2.h5"
    with h5py.File(path, "w") as f:
        if wrapped:  # full-model save: model_config at the root, weights under model_weights
            f.attrs["model_config"] = b"{}"
            f.create_group("optimizer_weights")
            _write_keras2_file(f.create_group("model_weights"), values)
        else:
            _write_keras2_file(f, values)
    model = tiny_model(seed=1)
    report = load_weights_h5(model, path, by_name=by_name)
    assert report.loaded == ["conv1", "bn_conv1", "rpn_model", "mrcnn_class_logits"]
    for w, v in zip(model.weights, values):
        np.testing.assert_array_equal(_np(w), v)
    assert read_layout(path)[6] == ("rpn_model", "rpn_conv_shared/kernel:0", (3, 3, 4, 512))


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    model = tiny_model()
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_weights_h5(model, missing)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(WeightsFileError, match="corrupt.h5"):
        load_weights_h5(model, corrupt)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("something")
    with pytest.raises(WeightsFileError, match="layer_names"):
        read_layout(empty)


def test_failed_save_leaves_existing_file_and_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "w.h5"
    save_weights_h5(tiny_model(seed=0), path)
    original = path.read_bytes()

    def boom(_):
        raise RuntimeError("disk full")

    monkeypatch.setattr(keras.ops, "convert_to_numpy", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_weights_h5(tiny_model(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert not (tmp_path / "w.h5.tmp").exists()
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(keras.ops, "convert_to_numpy", boom)
        save_weights_h5(tiny_model(seed=1), tmp_path / "new.h5")
    assert not (tmp_path / "new.h5").exists() and not (tmp_path / "new.h5.tmp").exists()


def test_long_name_lists_are_chunked(tmp_path):
    names = [f"layer_{i:05d}_" + "x" * 200 for i in range(400)]  # > 64 KiB as one attribute
    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w") as f:
        weights_module.write_name_list(f, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs
        assert weights_module.read_name_list(f, "layer_names") == names


def test_non_finite_weights_are_refused_on_load_naming_the_file(tmp_path):
    good = tiny_model(seed=0)
    poisoned = tiny_model(seed=1)
    kernel = poisoned.get_layer("conv1").kernel
    value = _np(kernel).copy()
    value[0, 0, 0, :2] = [np.nan, np.inf]
    kernel.assign(value)
    path = tmp_path / "diverged.h5"
    save_weights_h5(poisoned, path)  # as an older version (or another tool) would have written it
    before = _values(good)
    with pytest.raises(NonFiniteWeightsError, match=r"diverged\.h5.*'conv1'.*2 of 108") as info:
        load_weights_h5(good, path)
    assert info.value.path == str(path) and info.value.bad[0][:3] == ("conv1", "conv1/kernel:0", 2)
    _assert_same(_values(good), before)  # nothing was loaded
    load_weights_h5(good, path, check_finite=False)  # on request, the file still loads


def test_non_finite_weights_are_never_written_as_a_checkpoint(tmp_path):
    model = tiny_model(seed=0)
    path = tmp_path / "w.h5"
    save_weights_h5(model, path, check_finite=True)
    original = path.read_bytes()
    bias = model.get_layer("mrcnn_class_logits").bias
    bias.assign(np.full(bias.shape, np.nan, "float32"))
    with pytest.raises(NonFiniteWeightsError, match="not writing .*w.h5.*mrcnn_class_logits"):
        save_weights_h5(model, path, check_finite=True)
    assert path.read_bytes() == original and not (tmp_path / "w.h5.tmp").exists()


def test_ctrl_c_during_a_write_removes_the_partial_file_and_keeps_the_old_one(
    tmp_path, monkeypatch, python_sigint
):
    import os
    import signal

    path = tmp_path / "w.h5"
    save_weights_h5(tiny_model(seed=0), path)
    original = path.read_bytes()
    real = h5py.Group.create_dataset
    written = []

    def interrupted_midway(self, name, *args, **kwargs):
        written.append(name)
        if len(written) == 3:
            assert (tmp_path / "w.h5.tmp").exists()
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt, as from Ctrl-C
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", interrupted_midway)
    with pytest.raises(KeyboardInterrupt):
        save_weights_h5(tiny_model(seed=1), path)
    assert len(written) == 3
    assert path.read_bytes() == original and not (tmp_path / "w.h5.tmp").exists()


def test_for_inference_copies_the_training_weights_in_memory(tmp_path):
    """MaskRCNN.for_inference / copy_weights: the inference model detects with the training model's weights
    and writes or reads no file."""
    from mrcnn.model import MaskRCNN
    from mrcnn.testing import tiny_config
    from mrcnn.weights import WeightsMismatchError, copy_weights

    trained = MaskRCNN("training", tiny_config(), str(tmp_path))
    trained.class_names = ["BG", "a", "b", "c"]
    for variable in trained.keras_model.weights:  # weights no fresh model has
        variable.assign(np.full(variable.shape, 0.01, variable.dtype))
    inference = trained.for_inference()
    assert inference.config.BATCH_SIZE == 1 and inference.config.origin("IMAGES_PER_GPU") == "for_inference"
    assert trained.config.BATCH_SIZE == 2 and inference.class_names == trained.class_names
    for layer in ("small1_conv", "mrcnn_mask", "rpn_model"):
        for ours in inference.keras_model.get_layer(layer).weights:
            np.testing.assert_array_equal(ours.numpy(), np.full(ours.shape, 0.01, np.float32))
    assert list(tmp_path.iterdir()) == []

    other = MaskRCNN("inference", tiny_config(NUM_CLASSES=6, IMAGES_PER_GPU=1), str(tmp_path))
    before = other.keras_model.get_layer("small1_conv").get_weights()[0].copy()
    with pytest.raises(WeightsMismatchError, match="mrcnn_class_logits"):
        copy_weights(trained.keras_model, other.keras_model)
    np.testing.assert_array_equal(other.keras_model.get_layer("small1_conv").get_weights()[0], before)
