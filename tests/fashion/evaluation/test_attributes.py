"""Attribute metrics: AP and F1 against scikit-learn, hand-made cases with known answers, and Fashionpedia's
AP against the official FPEval (fashionpedia 1.1) on hand-made and random cases."""

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fashion.evaluation import attributes as am
from fashion.evaluation.coco_eval import _quiet_coco, results_to_coco

# ------------------------------------------------------------------------------------------ AP and F1


def test_average_precision_known_values_and_ties():
    assert am.average_precision([0.9, 0.8, 0.7], [1, 1, 0]) == 1.0
    # Ranking 1, 0, 1: P@1 = 1 at R = 1/2, P@3 = 2/3 at R = 1 -> (1 + 2/3) / 2.
    assert am.average_precision([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx(5 / 6)
    # A tie is one step: both at once, precision 1/2 at recall 1.
    assert am.average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert am.average_precision([0.5, 0.1], [0, 0]) is None


def test_average_precision_and_binary_macro_f1_equal_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 30))
        labels = rng.random(n) < 0.4
        scores = np.round(rng.random(n), 1)  # many ties
        if labels.any():
            expected = metrics.average_precision_score(labels, scores)
            assert am.average_precision(scores, labels) == pytest.approx(expected, abs=1e-12)
        k = int(rng.integers(1, 12))
        truth = rng.random(k) < 0.3
        predicted = rng.random(k) < 0.3
        expected = metrics.f1_score(truth.astype(int), predicted.astype(int), average="macro")
        f1 = am.binary_macro_f1(np.flatnonzero(truth), np.flatnonzero(predicted), k)
        assert f1 == pytest.approx(expected, abs=1e-12)


def test_attribute_metrics_perfect_and_one_attribute_wrong():
    names = ["stripe", "dot", "long sleeve"]
    gt = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool)
    weights = np.ones(gt.shape)
    weights[1:, 2] = [1, 1, 0]  # the last instance's class is not annotated for sleeves
    perfect = am.attribute_metrics(gt * 0.9 + 0.05, gt, gt, weights, names, 0.5)
    assert perfect["mAP"] == perfect["micro_f1"] == perfect["macro_f1"] == 1.0
    assert perfect["per_attribute"]["long sleeve"]["samples"] == 3

    wrong = gt.copy()
    wrong[1, 1] = False  # instance 1's dot missed: 1 FN
    wrong[2, 0] = True  # instance 2 called striped: 1 FP
    scores = np.where(wrong, 0.9, 0.1)
    r = am.attribute_metrics(scores, wrong, gt, weights, names, 0.5)
    stripe, dot = r["per_attribute"]["stripe"], r["per_attribute"]["dot"]
    assert (stripe["tp"], stripe["fp"], stripe["fn"]) == (2, 1, 0) and stripe["f1"] == pytest.approx(0.8)
    # stripe: positives 0 and 3 and negative 2 score 0.9 (a 3-way tie), 1 scores 0.1 -> AP = 2/3.
    assert stripe["AP"] == pytest.approx(2 / 3)
    assert (dot["tp"], dot["fn"], dot["f1"]) == (0, 1, 0.0)
    # dot's one positive scores 0.1 like every other instance: a 4-way tie, AP = 1/4.
    assert dot["AP"] == pytest.approx(0.25)
    assert r["mAP"] == pytest.approx((2 / 3 + 0.25 + 1.0) / 3)
    # micro: TP 2 + 0 + 2, FP 1, FN 1 -> 8 / 10.
    assert r["micro_f1"] == pytest.approx(0.8) and r["macro_f1"] == pytest.approx((0.8 + 0.0 + 1.0) / 3)


def test_matching_pairs_detections_with_ground_truth_by_class_and_iou():
    h = w = 20
    gt = np.zeros([h, w, 2], bool)
    gt[0:10, 0:10, 0] = True
    gt[10:20, 10:20, 1] = True
    pred = np.zeros([h, w, 3], bool)
    pred[0:10, 0:9, 0] = True  # IoU 0.9 with gt 0
    pred[10:20, 10:20, 1] = True  # exact on gt 1, wrong class
    pred[10:20, 10:20, 2] = True  # exact on gt 1
    pairs = am.match_instances(np.array([1, 2]), gt, np.array([1, 1, 2]), np.array([0.5, 0.9, 0.8]), pred)
    assert sorted(pairs) == [(0, 0), (2, 1)]


# ------------------------------------------------------------------------------------------ Fashionpedia AP

H = W = 80
NUM_ATTRIBUTES = 8
ATTRIBUTE_IDS = [100 + 3 * i for i in range(NUM_ATTRIBUTES)]  # not contiguous, not from 0


def rle(y1, x1, y2, x2):
    mask = np.zeros([H, W], np.uint8)
    mask[y1:y2, x1:x2] = 1
    encoded = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [H, W], "counts": encoded["counts"].decode("ascii")}, float(mask.sum())


def dataset(gt_per_image):
    """gt_per_image: [[(category, box, attribute ids, iscrowd), ...], ...] -> a Fashionpedia-style dict
    with FPEval's 46 categories 0..45."""
    images, annotations = [], []
    for i, instances in enumerate(gt_per_image, 1):
        images.append({"id": i, "height": H, "width": W, "file_name": f"{i}.jpg"})
        for category, box, attrs, crowd in instances:
            seg, area = rle(*box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": category,
                    "segmentation": seg,
                    "area": area,
                    "bbox": [box[1], box[0], box[3] - box[1], box[2] - box[0]],
                    "iscrowd": int(crowd),
                    "attribute_ids": list(attrs),
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}", "supercategory": ""} for c in range(46)],
        "attributes": [{"id": a, "name": f"a{a}", "supercategory": ""} for a in ATTRIBUTE_IDS],
    }


def results(detections):
    """detections: [(image id, category, box, score, attribute ids)] -> COCO results."""
    return [
        {"image_id": i, "category_id": c, "segmentation": rle(*box)[0], "score": s, "attribute_ids": list(a)}
        for i, c, box, s, a in detections
    ]


def ours(data, dets):
    coco_gt = _quiet_coco(copy.deepcopy(data))
    coco_dt = results_to_coco(coco_gt, copy.deepcopy(dets), "segm")
    from_fpeval = [10, 7, 0, 6, 5, 4, 9, 31, 33, 3, 12, 11, 1, 2, 8, 32, 29, 28]
    return am.fashionpedia_eval(coco_gt, coco_dt, from_fpeval, NUM_ATTRIBUTES)


def official(data, dets, monkeypatch):
    """FPEval's results (iou + f1) and its IoU-only AP, with numpy 2's missing np.float put back locally."""
    fp = pytest.importorskip("fashionpedia.fp")
    fp_eval = pytest.importorskip("fashionpedia.fp_eval")
    monkeypatch.setattr(np, "float", float, raising=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = fp.Fashionpedia()
        gt.dataset = copy.deepcopy(data)
        gt.createIndex()
        evaluator = fp_eval.FPEval(gt, gt.loadRes(copy.deepcopy(dets)), "segm")
        evaluator.run()
    return evaluator.results, evaluator.resultDet["AP"]


KEYS = ["AP", "AP_IOU50", "AP_IOU75", "AP_F150", "AP_F175", "AP_IOU50_F150", "AP_IOU50_F175"]
KEYS += ["AP_IOU75_F150", "AP_IOU75_F175", "APs", "APm", "APl"]


def assert_same_as_fpeval(data, dets, monkeypatch):
    expected, expected_iou_only = official(data, dets, monkeypatch)
    got = ours(data, dets)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["AP_IoU_only"] == pytest.approx(expected_iou_only, abs=1e-12)
    return got


A = ATTRIBUTE_IDS


def test_fashionpedia_ap_perfect_one_attribute_wrong_one_mask_shifted(monkeypatch):
    # A dress (0..12 carry attributes) and a shoe (23: no attributes) per image.
    gts = [[(10, (2, 2, 30, 20), [A[0], A[1]], 0), (23, (32, 25, 38, 38), [], 0)]]
    data = dataset(gts)
    perfect = results([(1, 10, (2, 2, 30, 20), 0.9, [A[0], A[1]]), (1, 23, (32, 25, 38, 38), 0.8, [])])
    got = assert_same_as_fpeval(data, perfect, monkeypatch)
    for key in ("AP", "AP_IOU75_F175", "AP_IoU_only"):
        assert got[key] == pytest.approx(1.0), key

    # One attribute missed: F1 = mean(2*1/3 on label 1, 2*6/13 ... ) over 8 attributes.
    f1 = am.binary_macro_f1([A[0], A[1]], [A[0]], NUM_ATTRIBUTES)
    assert f1 == pytest.approx((2 / 3 + 12 / 13) / 2)  # ~0.795: passes F1 thresholds 0.50..0.75
    one_wrong = results([(1, 10, (2, 2, 30, 20), 0.9, [A[0]]), (1, 23, (32, 25, 38, 38), 0.8, [])])
    got = assert_same_as_fpeval(data, one_wrong, monkeypatch)
    passed = np.sum(am.F1_THRESHOLDS <= f1)  # 6 of the 10 F1 thresholds
    # The dress counts 10 times (once per F1 threshold) next to the shoe's once.
    assert got["AP"] == pytest.approx((passed + 1) / 11)
    for key in ("AP_F175", "AP_IOU50_F150", "AP_IoU_only"):
        assert got[key] == pytest.approx(1.0), key

    # The dress mask shifted down by 7 rows: IoU 21/35 = 0.6, true positive at IoU 0.50, 0.55, 0.60 only.
    shifted = results([(1, 10, (9, 2, 37, 20), 0.9, [A[0], A[1]]), (1, 23, (32, 25, 38, 38), 0.8, [])])
    got = assert_same_as_fpeval(data, shifted, monkeypatch)
    assert got["AP_IOU50"] == pytest.approx(1.0) and got["AP_IOU75"] == pytest.approx(
        1 / 11
    )  # the shoe alone is right
    assert got["AP_IoU_only"] == pytest.approx((3 / 10 + 1) / 2)


def _random_case(rng, n_images=6):
    categories = [0, 1, 6, 10, 31, 23, 24]  # the first five carry attributes in FPEval
    gts, dets = [], []
    for image in range(1, n_images + 1):
        instances = []
        for _ in range(int(rng.integers(0, 5))):
            y1, x1 = (int(v) for v in rng.integers(0, 40, 2))
            box = (y1, x1, y1 + int(rng.integers(4, 40)), x1 + int(rng.integers(4, 40)))  # small and medium
            category = int(rng.choice(categories))
            attrs = sorted({int(a) for a in rng.choice(A, size=int(rng.integers(0, 4)))})
            crowd = category in (23, 24) and rng.random() < 0.15
            instances.append((category, box, attrs, crowd))
            if crowd:
                continue
            for _ in range(
                int(rng.integers(0, 3))
            ):  # near-duplicates with shifted masks and edited attributes
                dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
                shifted = (max(0, box[0] + dy), max(0, box[1] + dx), box[2] + dy, box[3] + dx)
                edited = set(attrs) ^ {int(a) for a in rng.choice(A, size=int(rng.integers(0, 2)))}
                det_category = category if rng.random() < 0.85 else int(rng.choice(categories))
                dets.append((image, det_category, shifted, float(rng.random()), sorted(edited)))
        for _ in range(int(rng.integers(0, 2))):  # false positives
            y1, x1 = (int(v) for v in rng.integers(0, 70, 2))
            dets.append(
                (image, int(rng.choice(categories)), (y1, x1, y1 + 6, x1 + 6), float(rng.random()), [])
            )
        gts.append(instances)
    return dataset(gts), results(dets)


@pytest.mark.parametrize("seed", range(6))
def test_fashionpedia_ap_equals_fpeval_on_random_cases(seed, monkeypatch):
    data, dets = _random_case(np.random.default_rng(seed))
    if not dets:
        pytest.skip("no detections drawn")
    got = assert_same_as_fpeval(data, dets, monkeypatch)
    assert 0 <= got["AP"] <= got["AP_IoU_only"] <= 1 and got["APs"] > -1 and got["APm"] > -1
