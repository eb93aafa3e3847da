import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fashion.datasets import CocoFashionDataset, FashionpediaDataset, find_coco_files, load_dataset

CATEGORIES = [
    {"id": 1, "name": "shirt, blouse", "supercategory": "upperbody"},
    {"id": 2, "name": "pants", "supercategory": "lowerbody"},
    {"id": 3, "name": "sleeve", "supercategory": "garment parts"},
]
ATTRIBUTES = [
    {"id": 3, "name": "plain (pattern)", "supercategory": "textile pattern"},
    {"id": 5, "name": "tight"},
]


def uncompressed_rle(mask):
    """COCO's uncompressed RLE: alternating 0/1 run lengths over the column-major pixels, zeros first."""
    flat = mask.ravel(order="F").astype(np.int8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


@pytest.fixture
def fashionpedia(tmp_path, write, box):
    pants = box(20, 30, 10, 5, 20, 15)
    crowd = box(20, 30, 0, 20, 5, 30)
    images = [
        (
            "one.jpg",
            20,
            30,
            [
                {"category_id": 1, "segmentation": [[2, 2, 12, 2, 12, 8, 2, 8]], "attribute_ids": [3, 5]},
                {"category_id": 2, "segmentation": uncompressed_rle(pants), "attribute_ids": []},
                {"category_id": 3, "segmentation": compressed_rle(crowd), "iscrowd": 1},
            ],
        ),
        ("two.jpg", 10, 10, [{"category_id": 1, "segmentation": [[1, 1, 5, 5]]}]),  # 2 points only
        (
            "three.jpg",
            10,
            10,
            [
                {"category_id": 9, "segmentation": [[0, 0, 5, 0, 5, 5]]},  # unknown category
                {"category_id": 2, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [1, 1, 2, 2]]},  # 1 good, 1 bad
            ],
        ),
    ]
    path = write.coco(str(tmp_path / "ann.json"), str(tmp_path / "images"), images, CATEGORIES, ATTRIBUTES)
    return path, str(tmp_path / "images"), pants, crowd


def test_polygons_rle_crowds_and_attributes(fashionpedia):
    path, images, pants, crowd = fashionpedia
    ds = FashionpediaDataset()
    ds.load_fashionpedia(path, images)
    ds.prepare()
    assert ds.class_names == ["BG", "shirt", "pants", "sleeve"]
    assert [info["id"] for info in ds.image_info] == [1, 3]
    mask, class_ids = ds.load_mask(0)
    assert class_ids.tolist() == [1, 2, -3]  # crowd -> negative id
    ys, xs = np.nonzero(mask[:, :, 0])
    assert (
        abs(ys.min() - 2) <= 1
        and abs(ys.max() - 8) <= 1
        and abs(xs.min() - 2) <= 1
        and abs(xs.max() - 12) <= 1
    )
    np.testing.assert_array_equal(mask[:, :, 1], pants)
    np.testing.assert_array_equal(mask[:, :, 2], crowd)
    assert ds.load_attributes(0) == [(3, 5), (), ()]
    assert ds.attribute_names == {3: "plain (pattern)", 5: "tight"}
    assert ds.load_image(0).shape == (20, 30, 3)


def test_bad_polygons_and_unknown_classes_are_counted_with_annotation_ids(fashionpedia):
    path, images, _, _ = fashionpedia
    ds = FashionpediaDataset()
    ds.load_fashionpedia(path, images)
    w = ds.warnings
    assert w.counts["unknown_class"] == 1 and "annotation 105" in w.messages["unknown_class"][0]
    bad = w.messages["bad_polygon"]
    assert w.counts["bad_polygon"] == 3  # two-point polygon, its annotation, and one of annotation 106's two
    assert any("annotation 104: polygon 0 has 2 points" in m and path in m for m in bad)
    assert any("annotation 106: polygon 1 has 2 points" in m for m in bad)
    assert ds.stats["images_skipped_no_instances"] == 1
    ds.prepare()
    assert ds.load_mask(1)[1].tolist() == [2]


def test_subset_main_drops_parts(fashionpedia):
    path, images, _, _ = fashionpedia
    ds = load_dataset("fashionpedia", path, classes="main", image_dir=images)
    ds.prepare()
    assert ds.class_names == ["BG", "shirt", "pants"]
    assert ds.load_mask(0)[1].tolist() == [1, 2]


def test_plain_coco_folder_layout(tmp_path, write, box):
    root = tmp_path / "coco"
    write.coco(
        str(root / "instances.json"),
        str(root / "images"),
        [("p.png", 12, 12, [{"category_id": 7, "segmentation": compressed_rle(box(12, 12, 1, 1, 6, 6))}])],
        [{"id": 7, "name": "person", "supercategory": "person"}],
    )
    assert find_coco_files(str(root)) == (str(root / "instances.json"), str(root / "images"))
    ds = load_dataset("coco", str(root))
    ds.prepare()
    assert isinstance(ds, CocoFashionDataset) and ds.class_info[1]["source"] == "coco"
    assert ds.load_mask(0)[0][:, :, 0].sum() == 25


def test_empty_or_imageless_annotation_files_raise(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.json: empty annotation file"):
        CocoFashionDataset().load_coco_json(str(empty), str(tmp_path))
    none = tmp_path / "none.json"
    none.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ValueError, match="none.json: no 'images'"):
        CocoFashionDataset().load_coco_json(str(none), str(tmp_path))
    with pytest.raises(ValueError, match="not found"):
        CocoFashionDataset().load_coco_json(os.path.join(str(tmp_path), "missing.json"), str(tmp_path))
