import keras
import numpy as np

from mrcnn.config import Config
from mrcnn.modeling.build import detection_layer_args
from mrcnn.modeling.detection import DetectionLayer


class DetConfig(Config):
    NAME = "det"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    DETECTION_MAX_INSTANCES = 4
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3


def make_meta(window=(0, 0, 64, 64), num_classes=3) -> np.ndarray:
    meta = np.zeros(12 + num_classes, np.float32)
    meta[1:4] = meta[4:7] = [64, 64, 3]
    meta[7:11] = window
    meta[11] = 1.0
    meta[12:] = 1
    return meta


def probs_for(class_ids, scores, num_classes=3):
    """Class probabilities with the given argmax class and score; the rest spread over other classes."""
    probs = np.zeros((len(class_ids), num_classes), np.float32)
    for i, (c, s) in enumerate(zip(class_ids, scores)):
        probs[i] = (1 - s) / (num_classes - 1)
        probs[i, c] = s
    return probs


def detect(config, rois, probs, deltas=None, meta=None):
    if deltas is None:
        deltas = np.zeros((*probs.shape, 4), np.float32)
    if meta is None:
        meta = make_meta()
    out = DetectionLayer(**detection_layer_args(config))([rois[None], probs[None], deltas[None], meta[None]])
    return np.asarray(out)[0]


def numpy_iou(box, boxes):
    y1 = np.maximum(box[0], boxes[:, 0])
    x1 = np.maximum(box[1], boxes[:, 1])
    y2 = np.minimum(box[2], boxes[:, 2])
    x2 = np.minimum(box[3], boxes[:, 3])
    inter = np.maximum(y2 - y1, 0) * np.maximum(x2 - x1, 0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def numpy_detections(config, rois, probs, deltas, window):
    """Reference: one image, Matterport's refine_detections semantics."""
    class_ids = probs.argmax(axis=1)
    scores = probs[np.arange(len(probs)), class_ids]
    d = deltas[np.arange(len(probs)), class_ids] * config.BBOX_STD_DEV
    h, w = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    cy, cx = rois[:, 0] + 0.5 * h + d[:, 0] * h, rois[:, 1] + 0.5 * w + d[:, 1] * w
    h, w = h * np.exp(d[:, 2]), w * np.exp(d[:, 3])
    boxes = np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=1)
    boxes = np.clip(boxes, np.tile(window[:2], 2), np.tile(window[2:], 2))
    keep = np.where((class_ids > 0) & (scores >= config.DETECTION_MIN_CONFIDENCE))[0]
    kept = []
    for c in np.unique(class_ids[keep]):
        ix = keep[class_ids[keep] == c]
        ix = ix[np.argsort(-scores[ix], kind="stable")]
        while len(ix):
            kept.append(ix[0])
            ix = ix[1:][numpy_iou(boxes[ix[0]], boxes[ix[1:]]) <= config.DETECTION_NMS_THRESHOLD]
    kept = np.array(sorted(kept, key=lambda i: -scores[i])[: config.DETECTION_MAX_INSTANCES], int)
    out = np.zeros((config.DETECTION_MAX_INSTANCES, 6), np.float32)
    if len(kept):
        out[: len(kept)] = np.concatenate([boxes[kept], class_ids[kept, None], scores[kept, None]], axis=1)
    return out


ROIS = np.array(
    [
        [0.1, 0.1, 0.4, 0.4],  # 0
        [0.12, 0.1, 0.42, 0.4],  # 1: overlaps 0 heavily
        [0.5, 0.5, 0.9, 0.9],  # 2
        [0.5, 0.1, 0.9, 0.4],  # 3
        [0.1, 0.5, 0.4, 0.9],  # 4
    ],
    np.float32,
)


def test_nms_within_a_class_only():
    config = DetConfig()
    same = detect(config, ROIS[:2], probs_for([1, 1], [0.9, 0.8]))
    np.testing.assert_allclose(same[0], [*ROIS[0], 1, 0.9], atol=1e-6)
    np.testing.assert_array_equal(same[1:], 0)
    different = detect(config, ROIS[:2], probs_for([1, 2], [0.9, 0.8]))
    np.testing.assert_allclose(different[:2], [[*ROIS[0], 1, 0.9], [*ROIS[1], 2, 0.8]], atol=1e-6)
    np.testing.assert_array_equal(different[2:], 0)


def test_min_confidence_background_and_max_instances():
    config = DetConfig()
    # ROI 2 is below DETECTION_MIN_CONFIDENCE, ROI 3 is background.
    out = detect(config, ROIS[[0, 2, 3, 4]], probs_for([1, 2, 0, 2], [0.95, 0.6, 0.99, 0.8]))
    np.testing.assert_allclose(out[:2], [[*ROIS[0], 1, 0.95], [*ROIS[4], 2, 0.8]], atol=1e-6)
    np.testing.assert_array_equal(out[2:], 0)
    config.DETECTION_MIN_CONFIDENCE = 0
    out = detect(config, ROIS[[0, 2, 3, 4]], probs_for([1, 2, 0, 2], [0.95, 0.6, 0.99, 0.8]))
    np.testing.assert_allclose(out[:3, 5], [0.95, 0.8, 0.6], atol=1e-6)
    # Five separate boxes, DETECTION_MAX_INSTANCES = 4: the four best by score survive, in order.
    config = DetConfig()
    rois = np.array([[0.1 * i, 0, 0.1 * i + 0.08, 0.5] for i in range(5)], np.float32)
    out = detect(config, rois, probs_for([1, 2, 1, 2, 1], [0.71, 0.99, 0.8, 0.9, 0.75]))
    np.testing.assert_allclose(out[:, 5], [0.99, 0.9, 0.8, 0.75], atol=1e-6)
    np.testing.assert_allclose(out[:, :4], rois[[1, 3, 2, 4]], atol=1e-6)


def test_class_specific_deltas_and_window_clip():
    config = DetConfig()
    deltas = np.zeros((2, 3, 4), np.float32)
    deltas[0, 2] = [1.0, 0, 0, 0]  # predicted class: dy = 1 * 0.1 * height 0.3
    deltas[0, 1] = [5.0, 5.0, 5.0, 5.0]  # another class: ignored
    deltas[1, 1] = [0, 0, 0, np.log(3.0) / 0.2]  # width x3, then clipped by the window
    meta = make_meta(window=(0, 0, 64, 43))  # x2 = 42 / 63 = 2 / 3 normalized
    out = detect(config, ROIS[[0, 4]], probs_for([2, 1], [0.9, 0.8]), deltas, meta)
    np.testing.assert_allclose(out[0], [0.13, 0.1, 0.43, 0.4, 2, 0.9], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.1, 0.1, 0.4, 2 / 3, 1, 0.8], atol=1e-6)


def test_batch_of_three_equals_each_image_alone_and_numpy_reference():
    config = DetConfig()
    config.DETECTION_MAX_INSTANCES = 10
    rng = np.random.default_rng(3)
    n = 40
    windows = [(0, 0, 64, 64), (8, 0, 56, 64), (0, 16, 64, 48)]
    images = []
    for k in range(3):
        yx = rng.uniform(0, 0.8, (n, 2))
        rois = np.concatenate([yx, yx + rng.uniform(0.05, 0.3, (n, 2))], axis=1).astype(np.float32)
        logits = rng.normal(0, 2.5, (n, 3))
        probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
        deltas = rng.normal(0, 1, (n, 3, 4)).astype(np.float32)
        images.append((rois, probs, deltas, make_meta(windows[k])))
    layer = DetectionLayer(**detection_layer_args(config))
    batched = layer([np.stack([im[i] for im in images]) for i in range(4)]).numpy()
    assert batched.shape == (3, 10, 6)
    for k, (rois, probs, deltas, meta) in enumerate(images):
        alone = layer([rois[None], probs[None], deltas[None], meta[None]]).numpy()[0]
        np.testing.assert_allclose(batched[k], alone, atol=1e-6)
        window = (np.array(windows[k], np.float32) - [0, 0, 1, 1]) / 63.0
        np.testing.assert_allclose(
            batched[k], numpy_detections(config, rois, probs, deltas, window), atol=1e-5
        )
        assert np.count_nonzero(batched[k, :, 5]) >= 3
    assert not np.allclose(batched[0], batched[1])


def test_functional_graph_shape():
    config = DetConfig()
    inputs = [keras.Input((None, 4)), keras.Input((None, 3)), keras.Input((None, 3, 4)), keras.Input((15,))]
    out = DetectionLayer(**detection_layer_args(config), name="mrcnn_detection")(inputs)
    assert tuple(out.shape) == (None, 4, 6)
    model = keras.Model(inputs, out)
    result = np.asarray(
        model([ROIS[None], probs_for([1] * 5, [0.9] * 5)[None], np.zeros((1, 5, 3, 4)), make_meta()[None]])
    )
    assert result.shape == (1, 4, 6)
