import numpy as np
import pytest

from fashion.datasets import DeepFashion2Dataset, load_dataset


def item(category, polygons, **extra):
    return {"category_id": category, "segmentation": polygons, "bounding_box": [0, 0, 1, 1], **extra}


@pytest.fixture
def df2(tmp_path, write):
    return write.deepfashion2(
        str(tmp_path),
        {
            "000001": (
                20,
                20,
                {
                    "item1": item(1, [[2, 2, 10, 2, 10, 10, 2, 10]], style=1, occlusion=2, viewpoint=2),
                    "item2": item(8, [[0, 12, 20, 12, 20, 20, 0, 20]], style=0),
                },
            ),
            "000002": (10, 10, {"item1": item(13, [[1, 1, 3, 3]])}),  # 2-point polygon only
            "000003": (10, 10, ""),  # empty annotation file
            "000004": (
                10,
                10,
                {"item1": item(42, [[0, 0, 5, 0, 5, 5]]), "item2": item(9, [[0, 0, 6, 0, 6, 6, 0, 6]])},
            ),
        },
    )


def test_items_categories_masks_and_attributes(df2):
    ds = DeepFashion2Dataset()
    ds.load_deepfashion2(df2)
    ds.prepare()
    assert ds.num_classes == 14 and ds.class_names[1] == "short sleeve top"
    assert [info["id"] for info in ds.image_info] == ["000001", "000004"]
    mask, class_ids = ds.load_mask(0)
    assert class_ids.tolist() == [1, 8] and mask.shape == (20, 20, 2)
    ys, xs = np.nonzero(mask[:, :, 0])
    assert (
        abs(ys.min() - 2) <= 1
        and abs(ys.max() - 10) <= 1
        and abs(xs.min() - 2) <= 1
        and abs(xs.max() - 10) <= 1
    )
    assert mask[15, 5, 1] and not mask[5, 5, 1]
    attrs = ds.load_attributes(0)
    assert attrs[0] == {"style": 1, "occlusion": 2, "viewpoint": 2, "source": "shop", "pair_id": 7}
    assert ds.image_info[0]["height"] is None or ds.image_info[0]["height"] == 20  # read lazily
    assert ds.load_image(0).shape == (20, 20, 3)


def test_bad_files_and_items_are_counted_by_file(df2):
    ds = DeepFashion2Dataset()
    ds.load_deepfashion2(df2)
    w = ds.warnings
    assert w.counts["empty_annotation"] == 1 and "000003.json" in w.messages["empty_annotation"][0]
    assert w.counts["unknown_class"] == 1 and "000004.json: item1" in w.messages["unknown_class"][0]
    assert any("000002.json: item1: polygon 0 has 2 points" in m for m in w.messages["bad_polygon"])
    ds.prepare()
    assert ds.load_mask(1)[1].tolist() == [9]


def test_class_subset(df2):
    ds = load_dataset("deepfashion2", df2, classes="trousers;skirt")
    ds.prepare()
    assert ds.class_names == ["BG", "trousers", "skirt"]
    assert [ds.load_mask(i)[1].tolist() for i in range(ds.num_images)] == [[1], [2]]


def test_folder_without_annotations_raises(tmp_path):
    with pytest.raises(ValueError, match="no annotation files"):
        DeepFashion2Dataset().load_deepfashion2(str(tmp_path))
