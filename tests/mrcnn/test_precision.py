"""mrcnn.precision: names, the auto rule, detection comparison; weights stay float32 in files at any precision."""

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.config import ConfigError
from mrcnn.precision import (
    GpuInfo,
    compare_detections,
    keras_policy,
    precision_name,
    resolve_precision,
)
from mrcnn.runtime import CpuInfo
from mrcnn.testing import calibrate_random_weights, real_photos, tiny_config
from mrcnn.training import make_optimizer
from mrcnn.weights import load_weights_h5, save_weights_h5

AMX = CpuInfo("Intel Xeon 8481C", 2, frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}))
AVX512_BF16 = CpuInfo("AMD EPYC 9654", 2, frozenset({"avx2", "avx512f", "avx512_bf16"}))
AVX2 = CpuInfo("AMD EPYC 7B13", 2, frozenset({"avx2", "fma"}))
H100 = GpuInfo("NVIDIA H100", (9, 0))
P100 = GpuInfo("Tesla P100", (6, 0))


@pytest.fixture(autouse=True)
def policy_is_restored():
    yield
    assert keras.config.dtype_policy().name == "float32"


# ------------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "value, name, policy",
    [
        (None, "float32", None),
        ("float32", "float32", None),
        ("bfloat16", "bfloat16", "mixed_bfloat16"),
        ("mixed_bfloat16", "bfloat16", "mixed_bfloat16"),
        ("float16", "float16", "mixed_float16"),
        ("mixed_float16", "float16", "mixed_float16"),
    ],
)
def test_names_map_to_keras_policies(value, name, policy):
    assert precision_name(value) == name
    assert keras_policy(value) == policy


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="half"):
        precision_name("half")
    with pytest.raises(ConfigError, match="MIXED_PRECISION"):
        tiny_config(MIXED_PRECISION="half")


@pytest.mark.parametrize("value", ["float32", "bfloat16", "float16", "auto", "mixed_bfloat16", None])
def test_config_accepts_short_names_and_auto(value):
    assert tiny_config(MIXED_PRECISION=value).MIXED_PRECISION == value


def test_short_float16_name_gets_loss_scaling():
    assert isinstance(
        make_optimizer(tiny_config(MIXED_PRECISION="float16"), 0.01), keras.optimizers.LossScaleOptimizer
    )
    assert isinstance(make_optimizer(tiny_config(MIXED_PRECISION="bfloat16"), 0.01), keras.optimizers.SGD)


# ------------------------------------------------------------------------------------------------- auto
@pytest.mark.parametrize(
    "cpu, gpus, expected, why",
    [
        (AMX, [], "bfloat16", "amx_bf16"),
        (AVX512_BF16, [], "bfloat16", "avx512_bf16"),
        (AVX2, [], "float32", "neither AMX nor AVX512-BF16"),
        (AVX2, [H100], "float16", "tensor cores (compute capability 9.0)"),
        (AMX, [H100], "float16", "H100"),
        (AMX, [P100], "float32", "no tensor cores"),
    ],
)
def test_auto_rule(cpu, gpus, expected, why):
    name, reason = resolve_precision("auto", cpu=cpu, gpus=gpus)
    assert name == expected
    assert reason.startswith("auto: ") and why in reason


def test_explicit_choice_is_kept_and_says_when_emulated():
    name, reason = resolve_precision("bfloat16", cpu=AVX2, gpus=[])
    assert name == "bfloat16" and "emulated: no AMX / AVX512-BF16 here" in reason
    assert resolve_precision("bfloat16", cpu=AMX, gpus=[]) == ("bfloat16", "chosen")
    name, reason = resolve_precision("float16", cpu=AMX, gpus=[])
    assert name == "float16" and "no GPU" in reason
    assert resolve_precision("float16", cpu=AVX2, gpus=[H100]) == ("float16", "chosen")
    assert resolve_precision("float32", cpu=AVX2) == ("float32", "chosen")


def test_auto_on_this_machine_follows_its_cpu_flags():
    from mrcnn.precision import gpu_info
    from mrcnn.runtime import cpu_info, has_bf16_hardware

    name, _ = resolve_precision("auto")
    if gpu_info():
        assert name in ("float16", "float32")
    else:
        assert name == ("bfloat16" if has_bf16_hardware(cpu_info()) else "float32")
    assert precision_name("auto") == name


# ------------------------------------------------------------------------------------------- comparison
def _result(boxes, class_ids, scores, masks=None, shape=(40, 40)):
    boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
    if masks is None:
        masks = np.zeros((*shape, len(boxes)), bool)
        for k, (y1, x1, y2, x2) in enumerate(boxes):
            masks[y1:y2, x1:x2, k] = True
    return {
        "rois": boxes,
        "class_ids": np.asarray(class_ids),
        "scores": np.asarray(scores, float),
        "masks": masks,
    }


def test_identical_detections_agree_fully():
    ref = [_result([[0, 0, 20, 20], [10, 10, 30, 30]], [1, 2], [0.9, 0.8]), _result([], [], [])]
    agreement = compare_detections(ref, ref)
    assert (agreement.reference, agreement.matched, agreement.extra) == (2, 2, 0)
    assert agreement.matched_share == 1.0 and agreement.mask_iou == 1.0 and agreement.score_diff_max == 0.0
    assert agreement.meets()


def test_class_box_and_mask_differences_are_counted():
    ref = [_result([[0, 0, 20, 20], [10, 10, 30, 30], [0, 20, 10, 40]], [1, 2, 3], [0.9, 0.8, 0.7])]
    other = _result([[0, 0, 20, 20], [10, 10, 30, 30], [0, 30, 10, 40]], [1, 1, 3], [0.85, 0.8, 0.7])
    other["masks"][:10, :, 0] = False  # half of the first mask gone
    agreement = compare_detections(ref, [other])
    # The second changed class, the third moved (IoU 0.5): one of three matched, with mask IoU 0.5.
    assert (agreement.reference, agreement.matched, agreement.extra) == (3, 1, 2)
    assert agreement.mask_iou == pytest.approx(0.5)
    assert agreement.score_diff_mean == pytest.approx(0.05)
    assert not agreement.meets()


def test_a_box_is_matched_once():
    ref = [_result([[0, 0, 20, 20], [0, 0, 20, 20]], [1, 1], [0.9, 0.8])]
    agreement = compare_detections(ref, [_result([[0, 0, 20, 20]], [1], [0.9])])
    assert agreement.matched == 1 and agreement.matched_share == 0.5


def test_comparison_needs_one_result_per_image():
    with pytest.raises(ValueError, match="one per image"):
        compare_detections([_result([], [], [])], [])


# ---------------------------------------------------------------------------------------------- weights
def _float_datasets(path):
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.append(obj.dtype) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_weights_files_are_float32_at_any_precision(tmp_path):
    """A float32 file loads into a bfloat16 model (and float16), which saves float32 that a float32 model
    loads back to the same values."""
    keras.utils.set_random_seed(0)
    full = modellib.MaskRCNN("inference", tiny_config(), str(tmp_path))
    half = modellib.MaskRCNN("inference", tiny_config(MIXED_PRECISION="bfloat16"), str(tmp_path))
    fp16 = modellib.MaskRCNN("inference", tiny_config(MIXED_PRECISION="float16"), str(tmp_path))
    assert half.keras_model.get_layer("fpn_p2").compute_dtype == "bfloat16"
    full_file, half_file = str(tmp_path / "full.h5"), str(tmp_path / "half.h5")
    full.save_weights(full_file)
    assert set(_float_datasets(full_file)) == {np.dtype("float32")}

    half.load_weights(full_file)
    fp16.load_weights(full_file)
    for model in (half, fp16):
        assert all(w.dtype == "float32" for w in model.keras_model.weights)
        for a, b in zip(full.keras_model.get_weights(), model.keras_model.get_weights()):
            np.testing.assert_array_equal(a, b)

    half.save_weights(half_file)
    assert set(_float_datasets(half_file)) == {np.dtype("float32")}
    again = modellib.MaskRCNN("inference", tiny_config(), str(tmp_path))
    again.load_weights(half_file)
    for a, b in zip(full.keras_model.get_weights(), again.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_bfloat16_variable_is_saved_as_float32(tmp_path):
    """Even a layer whose variables are bfloat16 (a pure "bfloat16" policy, not ours) writes float32."""
    inputs = keras.Input((4,), name="input_image")
    dense = keras.layers.Dense(3, name="mrcnn_class_logits", dtype="bfloat16")
    model = keras.Model(inputs, dense(inputs))
    assert dense.kernel.dtype == "bfloat16"
    path = str(tmp_path / "w.h5")
    save_weights_h5(model, path)
    assert set(_float_datasets(path)) == {np.dtype("float32")}
    reference = keras.Model(inputs, keras.layers.Dense(3, name="mrcnn_class_logits")(inputs))
    load_weights_h5(reference, path)
    np.testing.assert_array_equal(
        reference.get_layer("mrcnn_class_logits").get_weights()[0],
        np.asarray(dense.kernel, np.float32),
    )


# ----------------------------------------------------------------------------- accuracy on calibrated weights
SAMPLE_PHOTOS = str(Path(__file__).resolve().parents[2] / "fashion" / "sample" / "train")


@pytest.fixture(scope="module")
def calibrated_tiny(tmp_path_factory):
    """(weights path, images, float32 detections) of the tiny model with random-but-calibrated weights, on 6
    scikit-image photos and 10 sample photos (float32, so the noisy copies differ only by the noise)."""
    folder = tmp_path_factory.mktemp("calibrated")
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN(
        "inference", tiny_config(IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0), str(folder)
    )
    photos = real_photos(folder=SAMPLE_PHOTOS, limit=16)
    factors = calibrate_random_weights(model, photos[:8], graph=False)  # eager: no traces, cheaper here
    assert set(factors) == {
        "rpn_class_raw",
        "rpn_bbox_pred",
        "mrcnn_class_logits",
        "mrcnn_bbox_fc",
        "mrcnn_mask",
    }
    path = str(folder / "calibrated.h5")
    model.save_weights(path)
    images = [p.astype(np.float32) for p in photos]
    reference = [model.detect([image])[0] for image in images]
    rng = np.random.default_rng(1)
    noisy = [(im * (1 + rng.uniform(-(2**-9), 2**-9, im.shape))).astype(np.float32) for im in images]
    floor = compare_detections(reference, [model.detect([image])[0] for image in noisy])
    return path, images, reference, floor, folder


@pytest.mark.slow
def test_calibration_in_graph_and_eagerly_agrees(tmp_path):
    """The graph route (benches) and the eager one (CI) give the same scale factors (measured: within 1e-7
    relative)."""
    photos = real_photos(folder=SAMPLE_PHOTOS, limit=4)
    factors = []
    for graph in (True, False):
        keras.utils.set_random_seed(0)
        model = modellib.MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=1), str(tmp_path))
        factors.append(calibrate_random_weights(model, photos, graph=graph))
    assert factors[0].keys() == factors[1].keys()
    for name in factors[0]:
        assert factors[0][name] == pytest.approx(factors[1][name], rel=1e-5), name


def _detect_at(precision, calibrated_tiny):
    """The agreement with float32 of a ``precision`` model that loaded the float32 file, after checking that
    its weights are float32 and the file's values, and that it saves them back as float32 unchanged."""
    path, images, reference, _, folder = calibrated_tiny
    config = tiny_config(IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0, MIXED_PRECISION=precision)
    model = modellib.MaskRCNN("inference", config, str(folder))
    assert model.keras_model.get_layer("fpn_p2").compute_dtype == precision
    model.load_weights(path)
    assert all(w.dtype == "float32" for w in model.keras_model.weights)
    saved = str(folder / f"saved_by_{precision}.h5")
    model.save_weights(saved)
    assert set(_float_datasets(saved)) == {np.dtype("float32")}
    with h5py.File(path, "r") as original, h5py.File(saved, "r") as again:
        names = []
        original.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert names
        for name in names:
            np.testing.assert_array_equal(original[name][()], again[name][()], err_msg=name)
    return compare_detections(reference, [model.detect([image])[0] for image in images])


@pytest.mark.slow  # the calibrated tiny trio: about 30 s of CPU (about 2 min of a busy 2-core machine)
def test_calibration_gives_unsaturated_varied_detections(calibrated_tiny):
    _, images, reference, floor, _ = calibrated_tiny
    scores = np.concatenate([r["scores"] for r in reference])
    assert len(scores) == len(images) * 8  # DETECTION_MAX_INSTANCES each: confidence 0
    assert 0.2 < np.median(scores) < 0.99 and np.std(scores) > 0.02  # neither saturated nor flat
    fills = [
        r["masks"][..., k].sum() / max(1, (y2 - y1) * (x2 - x1))
        for r in reference
        for k, (y1, x1, y2, x2) in enumerate(r["rois"])
    ]
    fill = float(np.mean(fills))
    assert 0.1 < fill < 0.9  # masks are neither empty nor full boxes
    # A rounding-level change of the input (bfloat16's rounding of the image alone) moves these weights'
    # detections already: the floor any half-precision arithmetic can reach on them (measured 99.2%, 0.910).
    assert floor.matched_share >= 0.95 and floor.mask_iou < 0.98


@pytest.mark.slow
def test_float16_meets_the_accuracy_targets_on_calibrated_weights(calibrated_tiny):
    agreement = _detect_at("float16", calibrated_tiny)
    print(agreement.summary())
    assert agreement.meets(0.95, 0.9), agreement.summary()
    assert agreement.score_diff_mean < 0.002


@pytest.mark.slow
def test_bfloat16_on_calibrated_weights(calibrated_tiny):
    """Issue #12's targets (>= 95% matched, mask IoU >= 0.9) hold for bfloat16 on trained weights (the slow
    tests and bench/precision.py's sample rows) but not on random weights, whose decisions are near ties and
    whose float32 detections move under a 2^-9 input change already (see the calibration test): measured
    here 91.4% matched, mask IoU 0.756, mean score difference 0.0026. The bounds catch a broken half-precision
    path (a layer computing garbage gives a few % matched), not the targets."""
    agreement = _detect_at("bfloat16", calibrated_tiny)
    print(agreement.summary())
    assert agreement.matched_share >= 0.85 and agreement.mask_iou >= 0.65, agreement.summary()
    assert agreement.score_diff_mean < 0.01


@pytest.mark.slow
def test_precisions_on_calibrated_resnet50_at_512(tmp_path):
    """ResNet50 at 512, 100 detections, random-but-calibrated weights with residual branches scaled to 0.1 (at
    1.0 float32 itself keeps only about half of its detections under a 2^-9 input change; at 0.1, 96%).
    float16 meets issue #12's targets (measured 99.2% matched, mask IoU 0.969); bfloat16 does not on random
    weights (measured 84.0%, 0.727; see test_bfloat16_on_calibrated_weights), bounded as there. About 10
    minutes on 2 CPU cores (bfloat16 and float16 run on emulating CPU kernels here)."""
    from mrcnn.config import Config

    def config(precision):
        settings = dict(
            NAME="r50",
            NUM_CLASSES=12,
            BACKBONE="resnet50",
            IMAGE_MIN_DIM=512,
            IMAGE_MAX_DIM=512,
            RPN_ANCHOR_SCALES=(16, 32, 64, 128, 256),
            IMAGES_PER_GPU=1,
            DETECTION_MAX_INSTANCES=100,
            DETECTION_MIN_CONFIDENCE=0.0,
            MIXED_PRECISION=precision,
        )
        return type("R50Config", (Config,), settings)()

    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", config("float32"), str(tmp_path))
    photos = real_photos(folder=SAMPLE_PHOTOS, limit=4)
    calibrate_random_weights(model, photos, residual_gamma=0.1)
    path = str(tmp_path / "r50.h5")
    model.save_weights(path)
    reference = [model.detect([photo])[0] for photo in photos]
    assert sum(len(r["scores"]) for r in reference) == 400
    agreements = {}
    for precision in ("float16", "bfloat16"):
        other = modellib.MaskRCNN("inference", config(precision), str(tmp_path))
        other.load_weights(path)
        agreements[precision] = compare_detections(reference, [other.detect([photo])[0] for photo in photos])
        print(precision, agreements[precision].summary())
    assert agreements["float16"].meets(0.95, 0.9)
    assert agreements["bfloat16"].matched_share >= 0.75 and agreements["bfloat16"].mask_iou >= 0.65
