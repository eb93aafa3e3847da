"""Exported models (SavedModel, TFLite, ONNX) against MaskRCNN.detect, and the in-graph resize and paste."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.config import Config
from mrcnn.export import export_model, paste_masks_graph, resize_square_graph
from mrcnn.images import resize_image
from mrcnn.masks import unmold_masks
from mrcnn.testing import TINY_SETTINGS

# POST_NMS_ROIS_INFERENCE = PRE_NMS_LIMIT: every proposal that survives NMS is kept. With a cut, the ONNX
# network (whose RPN scores differ from TensorFlow's in the last bits) can keep another proposal than
# TensorFlow's at a near tie on the cut, and so make other detections from the same input.
ExportConfig = type(
    "ExportConfig",
    (Config,),
    {
        **TINY_SETTINGS,
        "NAME": "export",
        "IMAGES_PER_GPU": 1,
        "DETECTION_MIN_CONFIDENCE": 0.0,
        "POST_NMS_ROIS_INFERENCE": TINY_SETTINGS["PRE_NMS_LIMIT"],
    },
)


def favour_class(model, class_id=1, logit=4.0):
    """Bias the random classifier towards ``class_id`` so that there are detections, with distinct scores."""
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = layer.get_weights()
    kernel *= 0.1
    bias[:] = 0
    bias[class_id] = logit
    layer.set_weights([kernel, bias])


def make_images():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)  # scaled down to 38x64, padded top and bottom
    small = rng.integers(0, 256, (30, 24, 3), dtype=np.uint8)  # scaled up to 64x51, padded left and right
    return [wide, small]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = modellib.MaskRCNN("inference", ExportConfig(), str(tmp_path_factory.mktemp("logs")))
    favour_class(model)
    images = make_images()
    return model, images, [model.detect([image])[0] for image in images]


def assert_matches_detect(out, expected, image):
    """Exported outputs ``out`` (dict of numpy arrays) agree with ``detect()``'s ``expected`` for ``image``:
    the same detections (class id, score within 1e-3, box within 2 px), masks with IoU >= 0.95 (or at most
    2 pixels apart, for masks of a few pixels), and attribute scores within 1e-3 where ``detect()`` has them
    (no "attributes" output where it has not). Detections whose scores are within 1e-3 of each other may
    come out in either order, so each one is matched to its nearest counterpart."""
    n = len(expected["class_ids"])
    assert n > 0
    h, w = image.shape[:2]
    outputs = {"boxes", "class_ids", "scores", "masks"} | ({"attributes"} & set(expected))
    assert set(out) == outputs
    if "attributes" in expected:
        assert out["attributes"].shape == expected["attributes"].shape
        assert out["attributes"].dtype == np.float32
    assert out["boxes"].shape == (n, 4) and out["boxes"].dtype == np.int32
    assert out["class_ids"].shape == (n,) and out["scores"].shape == (n,)
    assert out["masks"].shape == (n, h, w) and out["masks"].dtype == bool
    assert np.all(np.diff(out["scores"]) <= 0)
    unused = set(range(n))
    for i in range(n):
        candidates = [
            j
            for j in unused
            if out["class_ids"][j] == expected["class_ids"][i]
            and abs(out["scores"][j] - expected["scores"][i]) <= 1e-3
            and np.abs(out["boxes"][j] - expected["rois"][i]).max() <= 2
        ]
        assert candidates, f"no exported detection matches detection {i} of detect()"
        j = min(candidates, key=lambda j: np.abs(out["boxes"][j] - expected["rois"][i]).sum())
        unused.remove(j)
        ours, theirs = out["masks"][j], expected["masks"][:, :, i]
        union = np.logical_or(ours, theirs).sum()
        differing = np.logical_xor(ours, theirs).sum()
        assert union == 0 or differing <= 2 or differing / union <= 0.05, (i, differing, union)
        if "attributes" in expected:
            np.testing.assert_allclose(out["attributes"][j], expected["attributes"][i], atol=1e-3)


# -- in-graph pieces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(48, 80), (30, 24), (64, 64), (100, 7), (64, 200)])
def test_resize_square_graph_matches_resize_image(shape):
    config = ExportConfig()
    image = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected, window, scale, _, _ = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM, mode="square"
    )
    resized, graph_window, graph_scale = resize_square_graph(tf.constant(image), config)
    assert tuple(graph_window.numpy()) == tuple(window)
    assert graph_scale.numpy() == pytest.approx(scale, rel=1e-6)
    # OpenCV's fixed-point uint8 arithmetic rounds some pixels the other way (about 1 in 10 on noise).
    diff = np.abs(resized.numpy() - expected.astype(np.float32))
    assert diff.max() <= 1
    assert np.mean(diff > 0) < 0.25


def test_paste_masks_graph_matches_unmold_masks():
    rng = np.random.default_rng(5)
    masks = rng.random((6, 28, 28)).astype(np.float32)
    masks[3] = 0.7  # all above the threshold: the whole box
    masks[4] = 0.2  # all below: nothing
    boxes = np.array(
        [
            [2, 3, 30, 41],
            [10, 10, 13, 12],
            [-5, -4, 20, 18],
            [40, 50, 70, 90],
            [0, 0, 50, 60],
            [5, 40, 49, 64],
        ],
        dtype=np.int32,
    )  # the third and fourth stick out of the 50x64 image
    expected = np.moveaxis(unmold_masks(masks, boxes, (50, 64)), -1, 0)
    ours = paste_masks_graph(tf.constant(masks), tf.constant(boxes), tf.constant(50), tf.constant(64)).numpy()
    assert ours.shape == expected.shape == (6, 50, 64)
    assert ours[3].sum() == 10 * 14 and not ours[4].any()
    # Float32 against float64 interpolation: only pixels within rounding of 0.5 may differ.
    assert np.logical_xor(ours, expected).sum() <= 3


def test_export_rejects_unknown_format_and_other_resize_modes(tmp_path):
    with pytest.raises(ValueError, match="format"):
        export_model(None, str(tmp_path / "x"), format="pb")
    fake = types.SimpleNamespace(mode="inference", config=types.SimpleNamespace(IMAGE_RESIZE_MODE="pad64"))
    with pytest.raises(ValueError, match="square"):
        export_model(fake, str(tmp_path / "x"))


# -- formats -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attribute_detector(tmp_path_factory):
    """A tiny model with a 3-attribute head (sharing the classifier's features), its images and detections."""
    keras.utils.set_random_seed(1)
    config = type("AttributeExportConfig", (ExportConfig,), {"NUM_ATTRIBUTES": 3})()
    model = modellib.MaskRCNN("inference", config, str(tmp_path_factory.mktemp("logs")))
    favour_class(model)
    # Spread the random head's logits so that the scores differ between detections and attributes.
    layer = model.keras_model.get_layer("mrcnn_attr_logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 20.0, bias])
    images = make_images()
    return model, images, [model.detect([image])[0] for image in images]


def _check_attribute_spread(expected):
    for reference in expected:
        attributes = reference["attributes"]
        assert attributes.shape[1] == 3 and attributes.max() - attributes.min() > 0.2


def test_saved_model_matches_detect(tmp_path, attribute_detector):
    """With an attribute head (the model without one: the ONNX and TFLite tests, same ServingModule): the
    export's "attributes" [N, 3] are detect()'s, row for row, beside the boxes, classes, scores and masks."""
    model, images, expected = attribute_detector
    _check_attribute_spread(expected)
    path = export_model(model, str(tmp_path / "saved"), format="saved_model")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    for image, reference in zip(images, expected):
        out = {k: v.numpy() for k, v in serve(image=tf.constant(image)).items()}
        assert_matches_detect(out, reference, image)


FLEX_OPS = ["FlexCombinedNonMaxSuppression", "FlexCropAndResize"]


@pytest.mark.slow
def test_tflite_export_converts_with_known_select_tf_ops(tmp_path, detector):
    """The .tflite file is written, and needs exactly these Select TF (Flex) ops, no others."""
    from tensorflow.lite.python import schema_py_generated as schema

    path = export_model(detector[0], str(tmp_path / "model.tflite"), format="tflite")
    with open(path, "rb") as f:
        flatbuffer = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(f.read(), 0))
    custom = sorted({code.customCode.decode() for code in flatbuffer.operatorCodes if code.customCode})
    assert custom == FLEX_OPS


def _tflite_interpreter_has_flex() -> bool:
    """Whether ``tf.lite.Interpreter`` can run Select TF ops (the pip TensorFlow >= 2.20 cannot)."""

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 1], tf.float32)])
    def crop(x):
        return tf.image.crop_and_resize(x, [[0.0, 0.0, 1.0, 1.0]], [0], [2, 2])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([crop.get_concrete_function()], crop)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    try:
        interpreter.allocate_tensors()
        interpreter.invoke()
    except RuntimeError:
        return False
    return True


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_matches_detect(tmp_path, request):
    if not _tflite_interpreter_has_flex():
        pytest.skip(
            "the TFLite export needs the Flex delegate (Select TF ops CombinedNonMaxSuppression, "
            "CropAndResize) which this tf.lite.Interpreter does not link"
        )
    # Requested only now: CI's second pass runs no other test that needs this model.
    model, images, expected = request.getfixturevalue("detector")
    path = export_model(model, str(tmp_path / "model.tflite"), format="tflite")
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
    for image, reference in zip(images, expected):
        assert_matches_detect(runner(image=image), reference, image)


def _onnx_matches_detect(tmp_path, model, images, expected):
    ort = pytest.importorskip("onnxruntime")
    path = export_model(model, str(tmp_path / "model.onnx"), format="onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    names = [o.name for o in session.get_outputs()]
    for image, reference in zip(images, expected):
        out = dict(zip(names, session.run(None, {"image": image})))
        assert_matches_detect(out, reference, image)


def test_onnx_matches_detect(tmp_path, detector):
    """Without an attribute head: exactly the four outputs (boxes, class_ids, scores, masks)."""
    pytest.importorskip("tf2onnx")
    _onnx_matches_detect(tmp_path, *detector)


@pytest.mark.slow
def test_onnx_outputs_the_attribute_scores(tmp_path, attribute_detector):
    pytest.importorskip("tf2onnx")
    _check_attribute_spread(attribute_detector[2])
    _onnx_matches_detect(tmp_path, *attribute_detector)
