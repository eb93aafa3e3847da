"""fashion/infer.py end to end on three images of the shipped sample, with a tiny model's random weights.

Random weights still detect (the tiny preset's heads are confident about nonsense), and --min-confidence 0
makes sure of it; what is checked is that every output is written and agrees with the model's detections.
"""

import contextlib
import csv
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fashion import infer
from fashion import postprocess as pp
from fashion.categories import IMATERIALIST_CATEGORIES, resolve_classes
from fashion.cli_common import read_image
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from fashion.rle import rle_decode

SHOE, SHOE_SOURCE_ID = 9, 23  # thesis11 (the tiny preset's classes): class 9 is iMaterialist's 'shoe' (23)
OPTIONS = pp.PostprocessOptions(max_per_class={SHOE: 1}, max_default=2)


SEED = 2  # random heads that detect several classes, with overlapping masks


@pytest.fixture(scope="module")
def weights(tiny_random_weights):
    return tiny_random_weights(SEED)


@pytest.fixture(scope="module")
def run(weights, tmp_path_factory):
    """infer.main on a folder of 3 sample images and one corrupt file.

    Returns (images, out, rc, stdout, stderr, detections): ``detections`` maps each image's file name to the
    (raw, post-processed) detections infer.py computed, recorded on their way through postprocess()."""
    images = tmp_path_factory.mktemp("images")
    for name in sorted(n for n in os.listdir(os.path.join(SAMPLE, "train")) if n.endswith(".jpg"))[:3]:
        shutil.copy(os.path.join(SAMPLE, "train", name), images / name)
    (images / "zz_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path_factory.mktemp("out")
    argv = [str(images), "--out", str(out), "--weights", weights, "--preset", "tiny", "--min-confidence", "0"]
    argv += ["--max-per-class", "2;shoe=1", "--kaggle"]

    recorded = []
    original = pp.postprocess

    def recording_postprocess(detections, options=None):
        result = original(detections, options)
        recorded.append((detections, result))
        return result

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(infer.pp, "postprocess", recording_postprocess)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = infer.main(argv)
    names = sorted(n for n in os.listdir(images) if n != "zz_broken.jpg")
    assert len(recorded) == len(names)
    return images, out, rc, stdout.getvalue(), stderr.getvalue(), dict(zip(names, recorded))


@pytest.fixture(scope="module")
def expected(run):
    """The post-processed detections of each good image."""
    return {name: result for name, (_, result) in run[5].items()}


def test_writes_every_output_and_skips_the_corrupt_image_with_a_counted_warning(run, expected):
    images, out, rc, stdout, stderr, _ = run
    assert rc == 0
    stems = sorted(os.path.splitext(n)[0] for n in expected)
    assert sorted(os.listdir(out)) == [
        "classes.json",
        "coco_results.json",
        "label_maps",
        "overlays",
        "submission.csv",
    ]
    for sub in ("overlays", "label_maps"):
        assert sorted(os.listdir(out / sub)) == [s + ".png" for s in stems]
    assert "skipped unreadable image" in stderr and "zz_broken.jpg" in stderr
    assert "1 unreadable image(s) skipped" in stderr
    assert "Done: 3 images" in stdout
    with Image.open(out / "overlays" / (stems[0] + ".png")) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert classes[SHOE - 1] == {"class_id": SHOE, "name": "shoe", "source_category_id": SHOE_SOURCE_ID}


def test_detections_are_post_processed_at_the_original_size(run):
    images, detections = run[0], run[5]
    assert sum(pp.num_detections(raw) for raw, _ in detections.values()) > 0, (
        "random weights detected nothing"
    )
    most = max(np.bincount(raw["class_ids"]).max(initial=0) for raw, _ in detections.values())
    assert most > 2, "nothing to cap"
    overlaps = [result["masks"].sum(axis=-1).max(initial=0) > 1 for _, result in detections.values()]
    assert any(overlaps), "no overlapping masks: the non-overlap checks would check nothing"
    for name, (raw, result) in detections.items():
        assert result["masks"].shape[:2] == read_image(str(images / name)).shape[:2]
        assert (
            np.sum(result["class_ids"] == SHOE) <= 1 and np.bincount(result["class_ids"]).max(initial=0) <= 2
        )
        np.testing.assert_array_equal(result["scores"], pp.postprocess(raw, OPTIONS)["scores"])


def test_coco_results_hold_every_detection(run, expected):
    out = run[1]
    records = json.loads((out / "coco_results.json").read_text())
    names = sorted(expected)
    assert len(records) == sum(pp.num_detections(d) for d in expected.values())
    for image_id, name in enumerate(names, start=1):
        mine = [r for r in records if r["image_id"] == image_id]
        assert all(r["file_name"] == name for r in mine)
        assert sorted(r["score"] for r in mine) == pytest.approx(
            sorted(expected[name]["scores"].tolist()), abs=1e-6
        )
        assert {"bbox", "segmentation", "category_id", "category_name"} <= set(mine[0]) if mine else True


def test_label_maps_are_painted_by_confidence(run, expected):
    out = run[1]
    for name, d in expected.items():
        with Image.open(out / "label_maps" / (os.path.splitext(name)[0] + ".png")) as im:
            assert im.mode == "P"
            label = np.asarray(im)
        np.testing.assert_array_equal(label, pp.semantic_label_map(d))
        disjoint = pp.make_non_overlapping(d)
        from_disjoint = (disjoint["masks"] * disjoint["class_ids"]).sum(axis=-1)
        np.testing.assert_array_equal(label, from_disjoint)


def test_kaggle_csv_decodes_to_the_non_overlapping_masks(run, expected):
    out = run[1]
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "EncodedPixels", "ClassId"]
    source = [0] + [c.id for c in resolve_classes("thesis11", IMATERIALIST_CATEGORIES)]
    for name, d in expected.items():
        mine = [r for r in rows[1:] if r[0] == name]
        h, w = d["masks"].shape[:2]
        disjoint = pp.make_non_overlapping(d)
        assert len(mine) == max(1, pp.num_detections(disjoint))
        if not pp.num_detections(disjoint):
            assert mine == [[name, "", ""]]
            continue
        decoded = np.stack([rle_decode(r[1], h, w) for r in mine], axis=-1)
        assert decoded.sum(axis=-1).max() == 1, "masks in the CSV overlap"
        order = pp.confidence_order(disjoint["scores"])
        np.testing.assert_array_equal(decoded, disjoint["masks"][:, :, order])
        assert [int(r[2]) for r in mine] == [source[c] for c in disjoint["class_ids"][order]]
    assert not [r for r in rows[1:] if r[0] == "zz_broken.jpg"]


def test_usage_errors_exit_2_with_a_message(tmp_path, capsys, tiny_random_weights):
    base = [str(tmp_path), "--out", str(tmp_path / "o"), "--preset", "tiny"]
    assert infer.main([*base, "--weights", str(tmp_path / "nope.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert infer.main([*base, "--weights", str(empty)]) == 2
    assert "not HDF5 or corrupt" in capsys.readouterr().err
    weights = tiny_random_weights(0)
    assert infer.main([*base, "--weights", str(weights), "--max-per-class", "cape=1"]) == 2
    assert "unknown class 'cape'" in capsys.readouterr().err
    assert infer.main([*base, "--weights", str(weights)]) == 2
    assert "no images found" in capsys.readouterr().err


def test_find_images_and_output_names(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.jpg", "y.PNG", "notes.txt"):
        (tmp_path / "a" / name).write_bytes(b"")
    (tmp_path / "x.jpg").write_bytes(b"")
    paths = infer.find_images([str(tmp_path / "a"), str(tmp_path / "x.jpg")])
    assert [os.path.basename(p) for p in paths] == ["x.jpg", "y.PNG", "x.jpg"]
    assert infer.output_names(paths) == ["x", "y", "x_2"]
