"""fashion/train.py: argument handling and failures (fast), and a real run plus resume (slow)."""

import json
import os
import shutil

import pytest

from fashion import evaluate as evaluate_cli
from fashion import train as train_cli
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from mrcnn.metadata import read_metadata


def test_coco_download_failure_says_so_and_suggests_alternatives(tmp_path, monkeypatch, capsys):
    from mrcnn import download

    def offline(path, *args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(download, "download_trained_weights", offline)
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    argv = ["--dataset", SAMPLE, "--preset", "tiny", "--weights", "coco", "--weights-dir", str(tmp_path)]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "could not download Matterport's COCO-trained Mask R-CNN" in err and "network is unreachable" in err
    )
    assert "--weights none" in err and "--weights PATH" in err
    assert not os.listdir(tmp_path)


def test_usage_errors_name_the_problem(tmp_path, capsys):
    base = ["--preset", "tiny", "--logs", str(tmp_path / "logs")]
    assert train_cli.main(["--dataset", str(tmp_path), "--weights", "none", *base]) == 2
    assert "train.csv" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", str(tmp_path / "x.h5"), *base]) == 2
    assert "no such file" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--epochs", "5,2", *base]) == 2
    assert "--epochs 5,2" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--classes", "cape", *base]) == 2
    assert "no usable images" in capsys.readouterr().err
    assert train_cli.main(["--dataset", SAMPLE, "--weights", "none", "--attributes", "zigzag", *base]) == 2
    err = capsys.readouterr().err
    assert "--attributes 'zigzag'" in err and "Traceback" not in err


def test_resume_without_a_previous_run_is_an_error(tmp_path, capsys):
    argv = ["--dataset", SAMPLE, "--preset", "tiny", "--weights", "last", "--logs", str(tmp_path)]
    assert train_cli.main(argv) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_trains_on_the_sample_then_resumes_with_weights_last(tmp_path, capsys):
    """Real training, 2 + 1 epochs of 2 steps at 128x128 with the small backbone (1-2 minutes on 2 CPU cores)."""
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE, data)
    logs = tmp_path / "logs"
    common = [
        "--dataset",
        str(data),
        "--preset",
        "tiny",
        "--logs",
        str(logs),
        "--val-split",
        "0.2",
        "--eval-limit",
        "2",
        "--verbose",
        "2",
    ]

    assert train_cli.main([*common, "--weights", "none", "--epochs", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "Plan: preset tiny" in out and "stage 2 all" in out and "29 train" in out
    assert "mAP@50 =" in out and "Evaluating the trained weights (epoch 2)" in out
    # The tiny preset learns the sample's attributes by default: a sixth loss and named attributes.
    assert "attributes 5: plain (pattern), stripe, dot, short sleeve, long sleeve" in out
    (run,) = os.listdir(logs)
    files = set(os.listdir(logs / run))
    assert {"mask_rcnn_fashion_0001.h5", "mask_rcnn_fashion_0002.h5", "plan.json", "metrics.json"} <= files
    meta = read_metadata(str(logs / run / "mask_rcnn_fashion_0002.h5"))
    assert meta.config["NUM_ATTRIBUTES"] == 5 and meta.attribute_source_ids == [0, 1, 2, 3, 4]
    assert meta.attribute_names == ["plain (pattern)", "stripe", "dot", "short sleeve", "long sleeve"]
    with open(logs / run / "history.csv") as f:
        assert "mrcnn_attr_loss" in f.readline()
    # fashion/evaluate.py's metrics (one evaluation path): the same summary keys, on the 2 --eval-limit images.
    metrics = json.loads((logs / run / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["checkpoint"].endswith("mask_rcnn_fashion_0002.h5")
    assert set(evaluate_cli.summary(metrics)) == set(metrics["summary"])
    assert metrics["summary"]["mAP50"] is None or 0.0 <= metrics["summary"]["mAP50"] <= 1.0

    # Resume: same folder, stage 1 skipped, stage 2 continued from epoch 2 to 3.
    assert train_cli.main([*common, "--weights", "last", "--epochs", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 2" in out
    assert "Stage 1/2 'heads': already done" in out and "epochs 3-3" in out
    assert "different stages" in out  # the plan changed (3 epochs instead of 2) and is reported
    assert os.listdir(logs) == [run]
    assert "mask_rcnn_fashion_0003.h5" in os.listdir(logs / run)


def test_weights_imagenet_is_the_resnet_of_the_presets_depth(tmp_path, monkeypatch):
    from mrcnn import download

    def offline(path, *args, **kwargs):
        raise ConnectionError(f"offline: {os.path.basename(path)}")

    monkeypatch.setattr(download, "download_trained_weights", offline)
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "cache"))
    for backbone, file in (("se_resnet101", "resnet101_weights"), ("resnet50", "resnet50_weights")):
        with pytest.raises(train_cli.TrainError, match=file) as info:
            train_cli.resolve_weights("imagenet", str(tmp_path), backbone)
        assert "--weights none" in str(info.value)
