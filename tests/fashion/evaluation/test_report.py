"""Tests of fashion/evaluation/report.py: aggregation over images, the text table and the JSON file."""

import json

import numpy as np
import pytest

from fashion.evaluation import coco_eval
from fashion.evaluation import metrics as m
from fashion.evaluation.report import EvaluationReport, evaluate_predictions, format_table, write_json

H = W = 32
CLASS_NAMES = ["BG", "top", "pants"]


def masks_of(*boxes):
    out = np.zeros((H, W, len(boxes)), dtype=bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        out[y1:y2, x1:x2, k] = True
    return out


def pred(boxes, class_ids, scores):
    boxes = np.array(boxes, dtype=np.int32).reshape(-1, 4)
    return {
        "rois": boxes,
        "class_ids": np.array(class_ids, dtype=np.int32),
        "scores": np.array(scores, dtype=np.float32),
        "masks": masks_of(*boxes),
    }


def images():
    """Image 0 perfect; image 1 the worked example of test_metrics (mAP@50 2/3, F1 4/7, Kaggle 0.19333,
    predicted labels {1, 2} = true labels); image 2 no ground truth, no detection; image 3 a missed pants
    (true {1, 2}, predicted {1}: not exact, JSS 1/2)."""
    a, b, c = (0, 0, 10, 10), (20, 20, 30, 30), (0, 20, 10, 30)
    gts = [
        {"class_ids": np.array([1, 2]), "masks": masks_of(a, b)},
        {"class_ids": np.array([1, 2, 1]), "masks": masks_of(a, b, c)},
        {"class_ids": np.array([], dtype=int), "masks": masks_of()},
        {"class_ids": np.array([1, 2]), "masks": masks_of(a, b)},
    ]
    preds = [
        pred([a, b], [1, 2], [0.9, 0.8]),
        pred([(0, 0, 10, 8), (20, 23, 30, 30), c, (12, 0, 18, 6)], [1, 2, 2, 1], [0.9, 0.8, 0.7, 0.6]),
        pred([], [], []),
        pred([a], [1], [0.9]),
    ]
    return gts, preds


def test_aggregates_per_image_metrics():
    gts, preds = images()
    timings = [1.0, 2.0, 1.5, 1.5]
    result = evaluate_predictions(gts, preds, CLASS_NAMES, timings=timings)
    assert result["num_images"] == result["num_images_with_masks"] == 4

    c = result["classification"]
    assert c["exact_match_ratio"] == pytest.approx(3 / 4)
    assert c["overall_accuracy"] == pytest.approx(7 / 8)  # 8 (image, class) entries, one wrong
    assert c["jaccard_similarity"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert c["classification_score"] == pytest.approx((3 * 0.75 + 7 / 8 + 2 * 0.875) / 6)

    s = result["segmentation"]
    assert s["map50"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)  # image 2 has no ground truth: left out
    assert s["f1"] == pytest.approx((1 + 4 / 7 + 1 + 2 / 3) / 4)
    assert (s["tp"], s["fp"], s["fn"]) == (2 + 2 + 0 + 1, 0 + 2 + 0 + 0, 0 + 1 + 0 + 1)
    assert s["precision_pooled"] == pytest.approx(5 / 7) and s["recall_pooled"] == pytest.approx(5 / 7)
    assert s["kaggle_score"] == pytest.approx((1 + (4 * 0.4 + 2 / 6) / 10 + 1 + 0.5) / 4)
    assert s["segmentation_score"] == pytest.approx((s["map50"] + s["f1"]) / 2)

    assert result["speed"]["mean_inference_seconds"] == pytest.approx(1.5)
    assert result["speed"]["speed_score"] == pytest.approx(0.15)
    assert result["trade_off_score"] == pytest.approx(
        c["classification_score"] + s["segmentation_score"] - 0.15
    )

    records = result["per_image"]
    assert [r["ap50"] for r in records][2] is None
    assert records[1]["kaggle"] == pytest.approx((4 * 0.4 + 2 / 6) / 10)
    assert records[3]["seconds"] == 1.5 and records[3]["exact_match"] is False


def test_coco_and_pixel_sections_match_the_building_blocks():
    gts, preds = images()
    result = evaluate_predictions(gts, preds, CLASS_NAMES)
    direct = coco_eval.coco_evaluate(gts, preds, CLASS_NAMES)
    assert result["coco"] == direct
    confusion = sum(
        m.pixel_confusion_matrix(
            m.label_map(g["class_ids"], g["masks"]), m.label_map(p["class_ids"], p["masks"], p["scores"]), 3
        )
        for g, p in zip(gts, preds)
    )
    assert result["pixel"]["confusion_matrix"] == confusion.tolist()
    expected = m.pixel_metrics(confusion)
    for key in ("accuracy", "foreground_accuracy", "precision", "recall", "f1"):
        assert result["pixel"][key] == pytest.approx(expected[key])
    assert set(result["pixel"]["per_class"]) == {"top", "pants"}
    # Without timings there is no speed score and no trade-off score.
    assert result["speed"] is None and result["trade_off_score"] is None


def test_perfect_predictions():
    gts, _ = images()
    gts = [gts[0], gts[1]]
    preds = [
        {**g, "rois": coco_eval.gt_boxes(g), "scores": np.linspace(0.9, 0.6, len(g["class_ids"]))}
        for g in gts
    ]
    result = evaluate_predictions(gts, preds, CLASS_NAMES, timings=[0.0, 0.0])
    assert result["classification"]["classification_score"] == 1.0
    s = result["segmentation"]
    assert s["map50"] == s["f1"] == s["kaggle_score"] == s["segmentation_score"] == 1.0
    assert result["pixel"]["accuracy"] == result["pixel"]["f1"] == 1.0
    assert result["coco"]["segm"]["AP"] == pytest.approx(1.0)
    assert result["trade_off_score"] == 2.0


def test_incremental_report_and_image_level_ground_truth():
    # Image-level ground truth (no masks, like thesis 001's client set): multi-label metrics only.
    report = EvaluationReport(CLASS_NAMES)
    record = report.add(
        {"class_ids": [1, 2], "image_id": "img-a"}, pred([(0, 0, 4, 4)], [1], [0.9]), seconds=0.5
    )
    assert record["image_id"] == "img-a" and record["jaccard"] == 0.5
    report.add({"class_ids": [2]}, pred([(0, 0, 4, 4)], [2], [0.9]), image_id="img-b")
    assert len(report) == 2
    result = report.compute()
    assert result["classification"]["exact_match_ratio"] == 0.5
    assert result["segmentation"] is None and result["coco"] is None and result["pixel"] is None
    assert result["speed"]["num_timed"] == 1 and result["trade_off_score"] is None
    assert "n/a" in format_table(result)
    with pytest.raises(ValueError):
        EvaluationReport(CLASS_NAMES).compute()


def test_bad_input():
    gts, preds = images()
    with pytest.raises(ValueError):
        evaluate_predictions(gts, preds[:3], CLASS_NAMES)
    with pytest.raises(ValueError):
        evaluate_predictions(gts, preds, CLASS_NAMES, timings=[1.0])
    with pytest.raises(ValueError):
        EvaluationReport(["BG"])


def test_format_table_and_write_json(tmp_path):
    gts, preds = images()
    result = evaluate_predictions(gts, preds, CLASS_NAMES, timings=[1.0, 2.0, 1.5, 1.5])
    table = format_table(result)
    for text in (
        "Exact match ratio",
        "75.0%",
        "mAP@50",
        "Kaggle score",
        "segm",
        "Trade-off score TO",
        "pants",
    ):
        assert text in table
    assert f"{result['segmentation']['kaggle_score']:.4f}" in table

    path = write_json(
        {**result, "nan": float("nan"), "array": np.arange(3)}, tmp_path / "out" / "metrics.json"
    )
    loaded = json.loads(path.read_text())
    assert loaded["nan"] is None and loaded["array"] == [0, 1, 2]
    assert loaded["classification"] == pytest.approx(result["classification"])
    assert loaded["coco"]["segm"]["per_class_AP"] == pytest.approx(result["coco"]["segm"]["per_class_AP"])
    assert loaded["per_image"][2]["ap50"] is None


# ---------------------------------------------------------------------------------------------- attributes
def attribute_space():
    """3 attributes (source ids 7, 8, 9); class 1 (top) is annotated for all, class 2 (pants) for none."""
    from fashion.datasets.attributes import AttributeSpace

    annotated = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    return AttributeSpace((7, 8, 9), ("stripe", "dot", "long sleeve"), ("p", "p", "s"), annotated)


def attribute_images():
    """Two images, each with a top (attributes) and pants (not annotated for attributes)."""
    a, b = (0, 0, 16, 16), (16, 16, 32, 32)
    gts = [
        {"class_ids": np.array([1, 2]), "masks": masks_of(a, b), "attribute_ids": [(7, 9), ()]},
        {"class_ids": np.array([1, 2]), "masks": masks_of(a, b), "attribute_ids": [(8,), ()]},
    ]
    preds = []
    for scores in ([0.9, 0.1, 0.8], [0.2, 0.7, 0.3]):
        p = pred([a, b], [1, 2], [0.9, 0.8])
        p["attributes"] = np.array([scores, [0.6, 0.6, 0.6]])  # the pants' scores are never counted
        preds.append(p)
    return gts, preds


def test_attribute_metrics_in_the_report_perfect():
    gts, preds = attribute_images()
    result = evaluate_predictions(gts, preds, CLASS_NAMES, attribute_space=attribute_space())
    attrs = result["attributes"]
    assert attrs["num_matched"] == 4 and attrs["num_images"] == 2
    assert attrs["mAP"] == attrs["micro_f1"] == attrs["macro_f1"] == 1.0
    assert attrs["per_attribute"]["stripe"]["samples"] == 2  # the two tops; pants are not annotated
    fp = result["fashionpedia"]
    for key in ("AP", "AP_IOU75_F175", "AP_IoU_only"):
        assert fp[key] == pytest.approx(1.0), key
    table = format_table(result)
    assert "Attribute mAP" in table and "Fashionpedia" in table and "long sleeve" in table


def test_attribute_metrics_in_the_report_one_attribute_wrong_and_one_mask_shifted():
    gts, preds = attribute_images()
    preds[1]["attributes"][0] = [0.2, 0.4, 0.3]  # the second top's dot missed (score 0.4 < 0.5)
    result = evaluate_predictions(gts, preds, CLASS_NAMES, attribute_space=attribute_space())
    attrs = result["attributes"]
    dot = attrs["per_attribute"]["dot"]
    assert (dot["tp"], dot["fn"], dot["f1"]) == (0, 1, 0.0)
    assert dot["AP"] == 1.0  # 0.4 still ranks the positive first
    assert attrs["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert attrs["macro_f1"] == pytest.approx((1 + 0 + 1) / 3)
    # Fashionpedia: the top of image 2 now has F1 over 3 attributes of mean(0 for label 1, 2*2/(2+3)) = 0.4,
    # below every F1 threshold: half the tops are found at F1 >= 0.5; the pants have no attributes.
    fp = result["fashionpedia"]
    assert fp["AP_IoU_only"] == pytest.approx(1.0)
    assert fp["AP_IOU50_F150"] == pytest.approx((51 / 101 + 1.0) / 2)  # TP then FP: precision 1 to recall 0.5

    gts, preds = attribute_images()
    shifted = (4, 0, 20, 16)  # IoU 12/20 = 0.6 with the top of image 2
    preds[1]["masks"][:, :, 0] = masks_of(shifted)[:, :, 0]
    preds[1]["rois"][0] = shifted
    result = evaluate_predictions(gts, preds, CLASS_NAMES, attribute_space=attribute_space())
    assert result["attributes"]["num_matched"] == 4 and result["attributes"]["mAP"] == 1.0
    fp = result["fashionpedia"]
    assert fp["AP_IOU50"] == pytest.approx(1.0) and fp["AP_IOU75"] < 1.0
    strict = evaluate_predictions(
        gts, preds, CLASS_NAMES, attribute_space=attribute_space(), iou_threshold=0.7
    )["attributes"]
    assert strict["num_matched"] == 3  # the shifted top is no longer a matched instance


def test_no_attribute_section_without_predicted_attributes():
    gts, preds = attribute_images()
    for p in preds:
        del p["attributes"]
    result = evaluate_predictions(gts, preds, CLASS_NAMES, attribute_space=attribute_space())
    assert result["attributes"] is None and result["fashionpedia"] is None
    assert "Attribute mAP" not in format_table(result)
