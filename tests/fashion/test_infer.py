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


ATTRIBUTE_IDS = [3, 7, 11]  # the checkpoint's dataset ids of the model's 3 attributes
ATTRIBUTE_NAMES = ["stripes", "dots", "long sleeve"]


@pytest.mark.slow
def test_a_model_with_an_attribute_head_writes_attributes_everywhere(tmp_path):
    """Results carry Fashionpedia's attribute_ids / attribute_scores, the Kaggle ClassIds category_attr_attr,
    and the overlays' captions the top attributes, all from the same scores of detect()."""
    import keras

    from fashion.config import make_config
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(SEED)
    config = make_config("tiny", inference=True, NUM_ATTRIBUTES=3)
    model = MaskRCNN(mode="inference", config=config, model_dir=str(tmp_path))
    model.checkpoint_fields.update(attribute_names=ATTRIBUTE_NAMES, attribute_source_ids=ATTRIBUTE_IDS)
    weights = str(tmp_path / "tiny_attributes.h5")
    model.save_weights(weights)
    images = tmp_path / "images"
    images.mkdir()
    name = sorted(n for n in os.listdir(os.path.join(SAMPLE, "train")) if n.endswith(".jpg"))[0]
    shutil.copy(os.path.join(SAMPLE, "train", name), images / name)

    recorded, captions = [], []
    original_postprocess, original_captions = pp.postprocess, infer.overlay_captions
    out = tmp_path / "out"
    argv = [str(images), "--out", str(out), "--weights", weights, "--preset", "tiny", "--min-confidence", "0"]
    argv += ["--kaggle", "--attribute-threshold", "0.5"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            infer.pp,
            "postprocess",
            lambda d, o=None: recorded.append(original_postprocess(d, o)) or recorded[-1],
        )
        mp.setattr(
            infer, "overlay_captions", lambda *a: captions.append(original_captions(*a)) or captions[-1]
        )
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            assert infer.main(argv) == 0
    assert "3 attributes" in stdout.getvalue()
    (result,) = recorded
    scores = result["attributes"]
    assert pp.num_detections(result) > 0 and scores.shape == (pp.num_detections(result), 3)
    above = scores >= 0.5
    assert above.any() and not above.all(), "random scores should fall on both sides of the threshold"

    records = json.loads((out / "coco_results.json").read_text())
    order = np.argsort(-result["scores"], kind="stable")
    by_score = sorted(records, key=lambda r: -r["score"])
    for record, k in zip(by_score, order):
        expected_ids = [a for a, on in zip(ATTRIBUTE_IDS, above[k]) if on]
        assert record["attribute_ids"] == expected_ids
        assert record["attribute_names"] == [ATTRIBUTE_NAMES[ATTRIBUTE_IDS.index(a)] for a in expected_ids]
        assert record["attribute_scores"] == {
            str(a): pytest.approx(float(s), abs=1e-5) for a, s in zip(ATTRIBUTE_IDS, scores[k])
        }

    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    disjoint = pp.make_non_overlapping(result)
    expected_class_ids = []
    for k in pp.confidence_order(disjoint["scores"]):
        ids = [a for a, on in zip(ATTRIBUTE_IDS, disjoint["attributes"][k] >= 0.5) if on]
        category = resolve_classes("thesis11", IMATERIALIST_CATEGORIES)[disjoint["class_ids"][k] - 1].id
        expected_class_ids.append("_".join(str(v) for v in [category, *ids]))
    assert [r["ClassId"] for r in rows] == expected_class_ids
    assert any("_" in c for c in expected_class_ids)

    (lines,) = captions
    assert len(lines) == pp.num_detections(result)
    for caption, row in zip(lines, scores):
        listed = caption.split("\n")[1].split(", ") if "\n" in caption else []
        top = [ATTRIBUTE_NAMES[a] for a in np.argsort(-row, kind="stable") if row[a] >= 0.5][:3]
        assert listed == top
    assert os.path.exists(out / "overlays" / (os.path.splitext(name)[0] + ".png"))


def test_result_records_and_captions_carry_the_attributes():
    masks = np.zeros([6, 6, 2], bool)
    masks[:3, :3, 0] = masks[3:, 3:, 1] = True
    d = {
        "rois": np.array([[0, 0, 3, 3], [3, 3, 6, 6]], np.int32),
        "class_ids": np.array([1, 2], np.int32),
        "scores": np.array([0.9, 0.8], np.float32),
        "masks": masks,
        "attributes": np.array([[0.7, 0.2, 0.95], [0.1, 0.3, 0.4]], np.float32),
    }
    records = infer.coco_result_records(d, 1, "a.jpg", ["BG", "top", "shoe"], ATTRIBUTE_IDS, ATTRIBUTE_NAMES)
    assert [r["attribute_ids"] for r in records] == [[3, 11], []]
    assert records[0]["attribute_names"] == ["stripes", "long sleeve"]
    assert records[1]["attribute_scores"] == {
        "3": pytest.approx(0.1),
        "7": pytest.approx(0.3),
        "11": pytest.approx(0.4),
    }
    assert "attribute_ids" not in infer.coco_result_records(d, 1, "a.jpg", ["BG", "top", "shoe"])[0]
    captions = infer.overlay_captions(d, ["BG", "top", "shoe"], ATTRIBUTE_NAMES, threshold=0.5)
    assert captions == ["top 0.90\nlong sleeve, stripes", "shoe 0.80"]
    assert infer.overlay_captions(d, ["BG", "top", "shoe"], None) is None
