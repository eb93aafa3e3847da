"""fashion/evaluate.py end to end on 4 images of the shipped sample, with a tiny model's random weights."""

import contextlib
import io
import json
import math
import shutil

import numpy as np
import pytest

from fashion import evaluate
from fashion import postprocess as pp
from fashion.datasets import load_dataset
from fashion.evaluation import evaluate_predictions
from fashion.make_sample import DEFAULT_OUT as SAMPLE

SUMMARY_KEYS = {
    *(f"{kind}_{key}" for kind in ("box", "mask") for key in ("AP", "AP50", "AP75", "APs", "APm", "APl")),
    "mAP50",
    "F1",
    "exact_match_ratio",
    "overall_accuracy",
    "jaccard_similarity",
    "classification_score",
    "segmentation_score",
    "speed_score",
    "trade_off_score",
    "kaggle_score",
    "pixel_accuracy",
    "pixel_precision",
    "pixel_recall",
    "pixel_f1",
    "mean_inference_seconds",
}


SEED = 1


@pytest.fixture(scope="module")
def weights(tiny_random_weights):
    return tiny_random_weights(SEED)


@pytest.fixture(scope="module")
def run(weights, tmp_path_factory):
    """evaluate.main --weights last (a checkpoint in a training run's folder) --limit 4 without --out;
    returns (json path, rc, stdout, detections evaluate.py scored)."""
    logs = tmp_path_factory.mktemp("logs")
    run_dir = logs / "fashion20240101T1200"
    run_dir.mkdir()
    shutil.copy(weights, run_dir / "mask_rcnn_fashion_0003.h5")
    out = run_dir / "evaluation_mask_rcnn_fashion_0003.json"  # the default: next to the checkpoint
    argv = ["--weights", "last", "--logs", str(logs), "--dataset", SAMPLE, "--preset", "tiny", "--limit", "4"]
    argv += ["--min-confidence", "0", "--max-per-class", "shoe=2"]
    recorded = []
    original = pp.postprocess

    def recording_postprocess(detections, options=None):
        result = original(detections, options)
        recorded.append(result)
        return result

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate.pp, "postprocess", recording_postprocess)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            rc = evaluate.main(argv)
    return out, rc, stdout.getvalue(), recorded


def test_writes_json_with_every_metric(run):
    out, rc, stdout, _ = run
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result["summary"]) == SUMMARY_KEYS
    for key, value in result["summary"].items():
        assert isinstance(value, float) and math.isfinite(value), key
    assert result["num_images"] == 4 and len(result["per_image"]) == 4
    assert result["summary"]["mean_inference_seconds"] > 0
    assert result["summary"]["speed_score"] == pytest.approx(result["summary"]["mean_inference_seconds"] / 10)
    names = result["class_names"][1:]
    assert len(names) == 11 and "shoe" in names
    for iou_type in ("bbox", "segm"):
        assert set(result["coco"][iou_type]["per_class_AP"]) == set(names)
    assert {"accuracy", "precision", "recall", "f1"} <= set(result["pixel"])
    assert result["run"]["postprocess"]["max_per_class"] == {"shoe": 2}
    assert result["run"]["weights"].endswith("mask_rcnn_fashion_0003.h5")
    for line in (
        "Exact match ratio",
        "mAP@50",
        "Kaggle score",
        "COCO (pycocotools)",
        "Mean inference seconds",
    ):
        assert line in stdout
    assert f"Wrote {out}" in stdout


def test_scores_the_post_processed_detections_against_the_dataset(run):
    out, _, _, recorded = run
    result = json.loads(out.read_text())
    assert len(recorded) == 4  # the untimed first call is not post-processed
    detections = recorded
    assert sum(pp.num_detections(d) for d in detections) > 0, "random weights detected nothing"
    assert all(np.sum(d["class_ids"] == 9) <= 2 for d in detections)
    dataset = load_dataset("imaterialist", SAMPLE, classes="thesis11", max_dim=128, limit=4)
    dataset.prepare()
    gts = []
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        gts.append({"class_ids": class_ids, "masks": masks})
    again = evaluate_predictions(gts, detections, dataset.class_names)
    expected = evaluate.summary(again)
    for key in SUMMARY_KEYS - {"mean_inference_seconds", "speed_score", "trade_off_score"}:
        assert result["summary"][key] == pytest.approx(expected[key], abs=1e-9), key


def test_usage_errors_exit_2_with_a_message(tmp_path, capsys, weights):
    base = ["--dataset", SAMPLE, "--preset", "tiny"]
    assert evaluate.main([*base, "--weights", str(tmp_path / "nope.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert evaluate.main([*base, "--weights", "last", "--logs", str(tmp_path)]) == 2
    assert "no training run" in capsys.readouterr().err
    assert evaluate.main(["--dataset", str(tmp_path), "--preset", "tiny", "--weights", weights]) == 2
    assert "train.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_trained_on_some_attributes_is_scored_on_those(tmp_path):
    """A checkpoint whose head predicts the sample's attributes 1 and 2 (stripe, dot): evaluate selects those
    in the dataset and reports their per-attribute AP."""
    import keras

    from fashion.config import make_config
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(SEED)
    model = MaskRCNN("inference", make_config("tiny", inference=True, NUM_ATTRIBUTES=2), str(tmp_path))
    model.checkpoint_fields.update(attribute_names=["stripe", "dot"], attribute_source_ids=[1, 2])
    weights = str(tmp_path / "attributes.h5")
    model.save_weights(weights)
    out = tmp_path / "evaluation.json"
    argv = ["--weights", weights, "--dataset", SAMPLE, "--preset", "tiny", "--limit", "4", "--out", str(out)]
    argv += ["--min-confidence", "0"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert evaluate.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["attributes"]["per_attribute"]) == {"stripe", "dot"}
    assert "attribute_mAP" in result["summary"]
