"""Tests of fashion/evaluation/coco_eval.py against COCOeval runs set up independently here."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fashion.evaluation import coco_eval

H = W = 64
CLASS_NAMES = ["BG", "shirt", "pants", "shoe"]


def masks_of(*boxes):
    out = np.zeros((H, W, len(boxes)), dtype=bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        out[y1:y2, x1:x2, k] = True
    return out


def detection(boxes, class_ids, scores, masks=None):
    boxes = np.array(boxes, dtype=np.int32).reshape(-1, 4)
    return {
        "rois": boxes,
        "class_ids": np.array(class_ids, dtype=np.int32),
        "scores": np.array(scores, dtype=np.float32),
        "masks": masks_of(*boxes) if masks is None else masks,
    }


def ground_truth(boxes, class_ids):
    return {"class_ids": np.array(class_ids, dtype=np.int32), "masks": masks_of(*boxes)}


def dataset():
    """Three 64x64 images: a medium object (40x40 = 1600 px >= 32^2), small ones, a class swap, an FP, a miss,
    and an image without ground truth but with a detection."""
    gts = [
        ground_truth([(4, 4, 44, 44), (50, 50, 60, 62)], [1, 3]),
        ground_truth([(10, 10, 30, 20), (30, 40, 50, 60)], [2, 2]),
        ground_truth([], []),
    ]
    preds = [
        # shirt slightly too small (IoU 1296/1600 = 0.81), shoe right, one low-score FP
        detection([(6, 6, 42, 42), (50, 50, 60, 62), (0, 50, 8, 60)], [1, 3, 3], [0.95, 0.9, 0.3]),
        # first pants right, second labelled shoe (class swap), plus a half-overlapping pants
        detection([(10, 10, 30, 20), (30, 40, 50, 60), (40, 40, 50, 60)], [2, 3, 2], [0.8, 0.85, 0.6]),
        detection([(20, 20, 30, 30)], [1], [0.7]),
    ]
    return gts, preds


def direct_cocoeval(gts, preds, iou_type, cat_ids=None):
    """COCOeval on a COCO dataset built here from scratch (COCO ids: image i + 1, annotations from 1)."""
    images, annotations, results = [], [], []
    for i, (gt, pred) in enumerate(zip(gts, preds)):
        images.append({"id": i + 1, "height": H, "width": W})
        for k in range(gt["masks"].shape[-1]):
            rle = mask_utils.encode(np.asfortranarray(gt["masks"][..., k].astype(np.uint8)))
            ys, xs = np.nonzero(gt["masks"][..., k])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(gt["class_ids"][k]),
                    "segmentation": rle,
                    "area": float(gt["masks"][..., k].sum()),
                    "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
                    "iscrowd": 0,
                }
            )
        for k in range(len(pred["class_ids"])):
            entry = {
                "image_id": i + 1,
                "category_id": int(pred["class_ids"][k]),
                "score": float(pred["scores"][k]),
            }
            if iou_type == "bbox":
                y1, x1, y2, x2 = (float(v) for v in pred["rois"][k])
                entry["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:
                entry["segmentation"] = mask_utils.encode(
                    np.asfortranarray(pred["masks"][..., k].astype(np.uint8))
                )
            results.append(entry)
    categories = [{"id": c, "name": n} for c, n in enumerate(CLASS_NAMES) if c > 0]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        if cat_ids is not None:
            evaluator.params.catIds = cat_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_box_conversion_and_rle_round_trip():
    np.testing.assert_array_equal(coco_eval.to_coco_boxes([[1, 2, 5, 10]]), [[2, 1, 8, 4]])
    masks = masks_of((1, 2, 5, 10), (0, 0, 64, 1))
    rles = coco_eval.encode_masks(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in rles)
    decoded = mask_utils.decode([{**r, "counts": r["counts"].encode()} for r in rles])
    np.testing.assert_array_equal(decoded.astype(bool), masks)
    assert coco_eval.encode_masks(np.zeros((H, W, 0), bool)) == []
    # Without rois the ground-truth boxes are the masks' tight boxes.
    np.testing.assert_array_equal(coco_eval.gt_boxes({"masks": masks}), [[1, 2, 5, 10], [0, 0, 64, 1]])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_equals_direct_cocoeval(iou_type):
    gts, preds = dataset()
    ours = coco_eval.coco_evaluate(gts, preds, CLASS_NAMES, iou_types=(iou_type,))[iou_type]
    direct = direct_cocoeval(gts, preds, iou_type)
    np.testing.assert_allclose([ours[name] for name in coco_eval.STAT_NAMES], direct.stats, atol=1e-12)
    # Some stats are strictly between 0 and 1, so the comparison is not vacuous.
    assert 0 < ours["AP"] < 1 and ours["APm"] > -1 and ours["APs"] > -1
    # Per-class AP equals COCOeval restricted to that category.
    for c, name in enumerate(CLASS_NAMES[1:], start=1):
        single = direct_cocoeval(gts, preds, iou_type, cat_ids=[c])
        assert ours["per_class_AP"][name] == pytest.approx(single.stats[0], abs=1e-12)
        assert ours["per_class_AP50"][name] == pytest.approx(single.stats[1], abs=1e-12)


def test_perfect_prediction_scores_one():
    gts, _ = dataset()
    gts = gts[:2]
    preds = [
        detection(
            coco_eval.gt_boxes(g), g["class_ids"], np.linspace(0.9, 0.5, len(g["class_ids"])), g["masks"]
        )
        for g in gts
    ]
    result = coco_eval.coco_evaluate(gts, preds, CLASS_NAMES)
    for iou_type in ("bbox", "segm"):
        r = result[iou_type]
        for name in ("AP", "AP50", "AP75", "APs", "APm", "AR100"):
            assert r[name] == pytest.approx(1.0, abs=1e-12)
        assert r["APl"] == -1.0  # no large object (area >= 96^2) in a 64x64 image: pycocotools gives -1
        assert r["per_class_AP"] == pytest.approx({"shirt": 1.0, "pants": 1.0, "shoe": 1.0}, abs=1e-12)


def test_empty_predictions_score_zero_and_no_ground_truth_minus_one():
    gts, _ = dataset()
    empty = {
        "rois": np.zeros((0, 4)),
        "class_ids": np.zeros(0, int),
        "scores": np.zeros(0),
        "masks": np.zeros((H, W, 0), bool),
    }
    # No detections at all: pycocotools reports AP 0 (categories with ground truth), not -1.
    result = coco_eval.coco_evaluate(gts, [empty] * 3, CLASS_NAMES)
    for iou_type in ("bbox", "segm"):
        assert result[iou_type]["AP"] == 0.0 and result[iou_type]["AR100"] == 0.0
        assert result[iou_type]["per_class_AP"] == {"shirt": 0.0, "pants": 0.0, "shoe": 0.0}
    # A category without ground truth gets -1 per class; no ground truth at all gives -1 everywhere.
    only_shirt = [ground_truth([(4, 4, 44, 44)], [1])]
    r = coco_eval.coco_evaluate(only_shirt, [empty], CLASS_NAMES)["segm"]
    assert r["per_class_AP"] == {"shirt": 0.0, "pants": -1.0, "shoe": -1.0}
    r = coco_eval.coco_evaluate([gts[2]], [empty], CLASS_NAMES)["segm"]
    assert all(r[name] == -1.0 for name in coco_eval.STAT_NAMES)


def test_bad_input():
    gts, preds = dataset()
    with pytest.raises(ValueError):
        coco_eval.coco_evaluate(gts, preds[:2], CLASS_NAMES)
    with pytest.raises(ValueError):
        coco_eval.build_coco_results(preds, "keypoints")
    with pytest.raises(ValueError):
        coco_eval.build_coco_gt(
            [{"class_ids": np.array([1, 2]), "masks": masks_of((0, 0, 4, 4))}], CLASS_NAMES
        )
