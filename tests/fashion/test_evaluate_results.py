"""fashion/evaluate.py --results (a results file of any model, no model built) and --report DIR."""

import contextlib
import copy
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fashion import evaluate
from fashion.datasets import load_dataset
from fashion.make_sample import DEFAULT_OUT as SAMPLE

H, W = 48, 64
CATEGORIES = [{"id": c, "name": n, "supercategory": ""} for c, n in ((3, "coat"), (7, "hat"), (12, "shoe"))]


def rle(box, h=H, w=W):
    m = np.zeros([h, w], np.uint8)
    y1, x1, y2, x2 = box
    m[y1:y2, x1:x2] = 1
    encoded = mask_utils.encode(np.asfortranarray(m))
    return {"size": [h, w], "counts": encoded["counts"].decode("ascii")}, float(m.sum())


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = evaluate.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def coco_case(tmp_path, write):
    """Four images with coats, hats and shoes (category ids 3, 7, 12) and a results file of shifted,
    missed, duplicated and false detections with distinct scores."""
    rng = np.random.default_rng(3)
    images, results = [], []
    for i in range(4):
        anns = []
        for _ in range(int(rng.integers(1, 5))):
            y1, x1 = int(rng.integers(0, 30)), int(rng.integers(0, 44))
            box = (y1, x1, y1 + int(rng.integers(8, 18)), x1 + int(rng.integers(8, 20)))
            seg, area = rle(box)
            category = int(rng.choice([3, 7, 12]))
            anns.append({"category_id": category, "segmentation": seg, "area": area, "bbox": [0, 0, 1, 1]})
            for _ in range(int(rng.integers(0, 3))):
                dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
                moved = (max(0, box[0] + dy), max(0, box[1] + dx), box[2] + dy, box[3] + dx)
                det_category = category if rng.random() < 0.8 else int(rng.choice([3, 7, 12]))
                results.append(
                    {"image_id": i + 1, "category_id": det_category, "segmentation": rle(moved)[0]}
                )
        y1, x1 = int(rng.integers(0, 40)), int(rng.integers(0, 50))
        results.append(
            {"image_id": i + 1, "category_id": 7, "segmentation": rle((y1, x1, y1 + 6, x1 + 9))[0]}
        )
        images.append((f"img{i}.png", H, W, anns))
    for k, r in enumerate(results):
        r["score"] = float(0.99 - 0.013 * k)
    ann_path = write.coco(str(tmp_path / "ann.json"), str(tmp_path / "images"), images, CATEGORIES)
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    return ann_path, str(results_path), results


def pycocotools_stats(ann_path, results):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_path)
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_results_file_mask_ap_equals_pycocotools(coco_case, tmp_path):
    ann_path, results_path, results = coco_case
    out = tmp_path / "eval.json"
    rc, stdout, err = run(
        ["--results", results_path, "--dataset", ann_path, "--format", "coco", "--classes", "all"]
        + ["--out", str(out)]
    )
    assert rc == 0, err
    result = json.loads(out.read_text())
    expected = pycocotools_stats(ann_path, results)
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
    for name, value in zip(names, expected):
        assert result["coco"]["segm"][name] == pytest.approx(float(value), abs=1e-12), name
    assert 0.1 < result["summary"]["mask_AP"] < 0.9  # neither trivial case
    assert result["run"]["category_ids"] == "source" and result["run"]["detections"] == len(results)
    assert "COCO (pycocotools)" in stdout and f"Wrote {out}" in stdout


def _sample_results(dataset, wrong_attribute=False):
    """Perfect detections of the sample's first images, in fashion/infer.py's style: file_name, model class
    ids, attribute_ids of each garment."""
    entries = []
    for image_id in dataset.image_ids:
        masks, class_ids, records = dataset.load_mask_and_attributes(image_id)
        name = os.path.basename(dataset.image_info[image_id]["path"])
        for k in range(class_ids.size):
            seg = mask_utils.encode(np.asfortranarray(masks[:, :, k].astype(np.uint8)))
            attrs = list(records[k])
            if wrong_attribute and image_id == 0 and attrs:
                attrs[0] = (attrs[0] + 1) % 3  # another pattern
            entries.append(
                {
                    "image_id": 1000 + int(image_id),  # ignored: file_name decides
                    "file_name": name,
                    "category_id": int(class_ids[k]),
                    "segmentation": {"size": seg["size"], "counts": seg["counts"].decode("ascii")},
                    "score": 0.9 - 0.01 * k,
                    "attribute_ids": attrs,
                }
            )
    return entries


def test_results_with_attributes_and_the_visual_report(tmp_path):
    dataset = load_dataset("imaterialist", SAMPLE, classes="thesis11", limit=3)
    dataset.prepare()
    path = tmp_path / "infer_results.json"
    path.write_text(json.dumps(_sample_results(dataset)))
    report_dir = tmp_path / "report"
    argv = ["--results", str(path), "--dataset", SAMPLE, "--preset", "sample", "--limit", "3"]
    rc, stdout, err = run(argv + ["--report", str(report_dir)])
    assert rc == 0, err
    result = json.loads((tmp_path / "evaluation_infer_results.json").read_text())
    assert result["run"]["category_ids"] == "model"
    summary = result["summary"]
    assert summary["mask_AP"] == pytest.approx(1.0)
    assert summary["attribute_mAP"] == summary["attribute_micro_f1"] == summary["attribute_macro_f1"] == 1.0
    assert summary["fashionpedia_AP"] == pytest.approx(1.0)
    assert "Attribute mAP" in stdout and "Fashionpedia" in stdout

    index = (report_dir / "index.html").read_text()
    for figure in ("pr_curves_mask.png", "confusion_matrix.png", "attribute_ap.png"):
        assert (report_dir / figure).stat().st_size > 1000 and f"src='{figure}'" in index
    assert "http" not in index  # no external resources
    assert not os.listdir(report_dir / "worst")  # perfect: no image has a missed or false garment

    # One pattern wrong on image 0: its F1 drops, the masks stay perfect.
    path.write_text(json.dumps(_sample_results(dataset, wrong_attribute=True)))
    rc, _, err = run(argv)
    assert rc == 0, err
    summary = json.loads((tmp_path / "evaluation_infer_results.json").read_text())["summary"]
    assert summary["mask_AP"] == pytest.approx(1.0) and summary["attribute_micro_f1"] < 1.0
    assert summary["fashionpedia_AP"] < summary["fashionpedia_AP_IoU_only"] == pytest.approx(1.0)


def test_report_draws_the_worst_images(tmp_path):
    dataset = load_dataset("imaterialist", SAMPLE, classes="thesis11", limit=3)
    dataset.prepare()
    entries = [
        e
        for e in _sample_results(dataset)
        if not e["file_name"].startswith(os.path.basename(dataset.image_info[1]["path"]))
    ]  # image 1: every garment missed
    entries.append({**entries[0], "category_id": 2})  # a false shirt on image 0
    path = tmp_path / "r.json"
    path.write_text(json.dumps(entries))
    rc, _, err = run(
        ["--results", str(path), "--dataset", SAMPLE, "--preset", "sample", "--limit", "3"]
        + ["--report", str(tmp_path / "rep")]
    )
    assert rc == 0, err
    worst = sorted(os.listdir(tmp_path / "rep" / "worst"))
    assert len(worst) == 2 and worst[0].startswith("01_" + dataset.image_info[1]["id"].split(".")[0])
    index = (tmp_path / "rep" / "index.html").read_text()
    assert all(f"src='worst/{name}'" in index for name in worst)


def test_bad_results_files_exit_2_naming_the_file_and_entry(coco_case, tmp_path):
    ann_path, _, results = coco_case
    base = ["--dataset", ann_path, "--format", "coco", "--classes", "all", "--out", str(tmp_path / "o.json")]
    cases = [
        ("not json", "not valid JSON"),
        (json.dumps({"a": 1}), "JSON list"),
        (json.dumps([{**results[0], "score": "high"}]), "entry 0: score 'high'"),
        (json.dumps([results[0], {**results[1], "category_id": 99}]), "entry 1: category_id 99"),
        (json.dumps([{**results[0], "image_id": 77}]), "no entry names an image"),
        (json.dumps([{**results[0], "segmentation": {"size": [5, 5], "counts": "xx"}}]), "RLE size [5, 5]"),
    ]
    for text, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(text)
        rc, _, err = run(["--results", str(path)] + base)
        assert rc == 2 and str(path) in err and message in err, (text, err)
    rc, _, err = run(["--dataset", ann_path])
    assert rc == 2 and "--weights is required" in err


def test_results_scoring_imports_no_tensorflow(coco_case, tmp_path):
    ann_path, results_path, _ = coco_case
    code = (
        "import sys; from fashion import evaluate; "
        f"rc = evaluate.main(['--results', {results_path!r}, '--dataset', {ann_path!r}, '--format', 'coco', "
        f"'--classes', 'all', '--out', {str(tmp_path / 'o.json')!r}]); "
        "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules, rc)"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert "TF False False 0" in done.stdout, done.stderr
