"""A checkpoint knows its classes: train on a COCO dataset with its own taxonomy, then evaluate and infer with
--weights PATH alone; options that contradict the file are errors naming both."""

import json

import numpy as np
import pytest

from fashion import evaluate, infer
from fashion import train as train_cli
from mrcnn.metadata import read_metadata

# Category names that are in no built-in table, ids that are not 1..K.
CATEGORIES = [
    {"id": 7, "name": "poncho, rain cape", "supercategory": "outer"},
    {"id": 12, "name": "kimono", "supercategory": "whole"},
    {"id": 30, "name": "beret", "supercategory": "head"},
]


def _polygon(y1, x1, y2, x2):
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write):
    """(dataset json, images folder, checkpoint) of a 1-epoch run of the tiny preset on a 6-image COCO dataset."""
    root = tmp_path_factory.mktemp("coco")
    images = []
    for k in range(6):
        anns = []
        for j, cat in enumerate(CATEGORIES[: 1 + k % 3]):
            y, x = 10 + 30 * j, 10 + 20 * (k % 2)
            anns.append(
                {
                    "category_id": cat["id"],
                    "segmentation": _polygon(y, x, y + 25, x + 40),
                    "bbox": [x, y, 40, 25],
                    "area": 1000,
                }
            )
        images.append((f"img{k}.png", 120, 100, anns))
    ann = write.coco(str(root / "ann.json"), str(root / "images"), images, CATEGORIES)
    logs = root / "logs"
    argv = ["--dataset", ann, "--format", "coco", "--preset", "tiny", "--weights", "none", "--classes", "all"]
    argv += [
        "--logs",
        str(logs),
        "--schedule",
        "sample",
        "--epochs",
        "1",
        "--val-split",
        "0",
        "--progress",
        "0",
    ]
    assert train_cli.main(argv) == 0
    checkpoint = next(logs.glob("*/mask_rcnn_*_0001.h5"))
    return ann, str(root / "images"), str(checkpoint), root


def test_checkpoint_records_the_taxonomy(trained):
    _, _, checkpoint, _ = trained
    meta = read_metadata(checkpoint)
    assert meta.class_names == ["BG", "poncho, rain cape", "kimono", "beret"]
    assert meta.class_source_ids == [0, 7, 12, 30]
    assert meta.preset == "tiny" and meta.dataset_format == "coco" and meta.epoch == 1


def test_evaluate_with_weights_path_alone(trained, capsys):
    ann, _, checkpoint, root = trained
    out = root / "eval.json"
    assert evaluate.main(["--weights", checkpoint, "--dataset", ann, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["run"]["preset"] == "tiny" and result["run"]["format"] == "coco"
    per_class = result["coco"]["segm"]["per_class_AP"]
    assert set(per_class) == {"poncho", "kimono", "beret"}, per_class
    assert "Running on CPU" in capsys.readouterr().out


def test_infer_with_weights_path_alone_names_classes(trained, monkeypatch):
    _, images, checkpoint, root = trained
    out = root / "infer"
    # Every detection kept so that the outputs carry the class names whatever the 1-epoch model finds.
    assert infer.main(["--weights", checkpoint, images, "--out", str(out), "--min-confidence", "0"]) == 0
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert [(c["name"], c["source_category_id"]) for c in classes] == [
        ("poncho, rain cape", 7),
        ("kimono", 12),
        ("beret", 30),
    ]
    records = json.loads((out / "coco_results.json").read_text())
    assert records and {r["category_name"] for r in records} <= {"poncho", "kimono", "beret"}
    assert len(list((out / "overlays").glob("*.png"))) == 6


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--preset", "sample", ["--preset sample", "preset tiny"]),
        ("--format", "fashionpedia", ["--format fashionpedia", "dataset format coco"]),
        ("--classes", "thesis11", ["--classes 'thesis11'", "kimono"]),
    ],
)
def test_contradicting_options_are_errors_naming_both(trained, capsys, option, value, words):
    ann, images, checkpoint, root = trained
    assert evaluate.main(["--weights", checkpoint, "--dataset", ann, option, value]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and checkpoint in err, err
    assert infer.main(["--weights", checkpoint, images, "--out", str(root / "x"), option, value]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_agreeing_options_are_accepted(trained, capsys):
    ann, _, checkpoint, root = trained
    argv = [
        "--weights",
        checkpoint,
        "--dataset",
        ann,
        "--preset",
        "tiny",
        "--format",
        "coco",
        "--classes",
        "all",
    ]
    assert evaluate.main([*argv, "--limit", "1", "--out", str(root / "e2.json")]) == 0


def test_dataset_without_the_checkpoint_classes_is_an_error(trained, tmp_path, capsys, write):
    _, _, checkpoint, _ = trained
    other = [{"id": 7, "name": "poncho, rain cape", "supercategory": "outer"}]
    images = [
        (
            "a.png",
            60,
            60,
            [{"category_id": 7, "segmentation": _polygon(5, 5, 40, 40), "bbox": [5, 5, 35, 35], "area": 1}],
        )
    ]
    ann = write.coco(str(tmp_path / "ann.json"), str(tmp_path / "images"), images, other)
    assert evaluate.main(["--weights", checkpoint, "--dataset", ann]) == 2
    err = capsys.readouterr().err
    assert "kimono" in err and ann in err


def test_float_sanity_of_recorded_config(trained):
    _, _, checkpoint, _ = trained
    config = read_metadata(checkpoint).config
    assert config["NUM_CLASSES"] == 4 and np.isclose(config["LEARNING_MOMENTUM"], 0.9)
