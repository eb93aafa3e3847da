"""Attribute index spaces: per-dataset space, the annotated rule, multi-hot rows aligned with load_mask, the
``--attributes`` selection."""

import numpy as np
import pytest

from fashion.config import PRESETS
from fashion.datasets import AttributeSelectionError, AttributeSpace, load_dataset, resolve_attributes
from fashion.datasets.attributes import build_attribute_space

CATEGORIES = [
    {"id": 0, "name": "shirt, blouse", "supercategory": "upperbody"},
    {"id": 6, "name": "pants", "supercategory": "lowerbody"},
    {"id": 23, "name": "shoe", "supercategory": "legs and feet"},
    {"id": 31, "name": "sleeve", "supercategory": "garment parts"},
]
ATTRIBUTES = [
    {"id": 10, "name": "wrist-length", "supercategory": "length"},
    {"id": 11, "name": "mini (length)", "supercategory": "length"},
    {"id": 20, "name": "stripe", "supercategory": "textile pattern"},
    {"id": 21, "name": "dot", "supercategory": "textile pattern"},
    {"id": 30, "name": "v-neck", "supercategory": "neckline type"},
]


@pytest.fixture
def fashionpedia(tmp_path, write, box):
    def ann(category, y1, attrs, **extra):
        x1 = y1
        poly = [x1, y1, x1 + 6, y1, x1 + 6, y1 + 6, x1, y1 + 6]
        return {"category_id": category, "segmentation": [poly], "attribute_ids": attrs, **extra}

    images = [
        ("a.jpg", 40, 40, [ann(0, 1, [20]), ann(31, 10, [10]), ann(23, 20, []), ann(6, 30, [], iscrowd=1)]),
        ("b.jpg", 40, 40, [ann(6, 1, [21]), ann(0, 10, [])]),
        ("c.jpg", 40, 40, [ann(31, 1, [])]),
    ]
    return write.coco(str(tmp_path / "ann.json"), str(tmp_path / "images"), images, CATEGORIES, ATTRIBUTES)


def test_fashionpedia_space_annotated_rule_and_targets(fashionpedia):
    ds = load_dataset("fashionpedia", fashionpedia)
    ds.prepare()
    space = ds.attribute_space
    assert space.source_ids == (10, 11, 20, 21, 30) and len(space) == space.num_attributes == 5
    assert space.names[2] == "stripe" and space.supercategories[0] == "length"
    assert space.index_of(21) == 3 and not space.empty_is_unlabelled
    with pytest.raises(KeyError, match="attribute id 99"):
        space.index_of(99)
    shirt, pants, shoe, sleeve = (ds.map_source_class_id(f"fashionpedia.{c}") for c in (0, 6, 23, 31))
    # A supercategory is annotated for a class when the file uses one of its attributes on that class.
    assert space.annotated[shirt].tolist() == [False, False, True, True, False]
    assert space.annotated[pants].tolist() == [False, False, True, True, False]
    assert space.annotated[sleeve].tolist() == [True, True, False, False, False]
    assert not space.annotated[shoe].any() and not space.annotated[0].any()
    assert space.annotated_classes() == sorted([shirt, pants, sleeve])

    # Rows aligned with load_mask (a.jpg: shirt, sleeve, shoe, crowd pants); empty list = "none of them".
    masks, class_ids = ds.load_mask(0)
    multi_hot, weights = ds.load_attribute_targets(0)
    assert multi_hot.shape == weights.shape == (4, 5) and multi_hot.dtype == np.float32
    assert class_ids.tolist() == [shirt, sleeve, shoe, -pants]
    np.testing.assert_array_equal(multi_hot, [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0] * 5, [0] * 5])
    np.testing.assert_array_equal(
        weights, [[0, 0, 1, 1, 0], [1, 1, 0, 0, 0], [0] * 5, [0] * 5]
    )  # crowd: weight 0
    np.testing.assert_array_equal(ds.load_attributes_multi_hot(1), [[0, 0, 0, 1, 0], [0] * 5])
    assert ds.attribute_targets(np.array([shirt]), [()])[1].tolist() == [[0, 0, 1, 1, 0]]


def test_selection_restricts_the_space_and_the_rows(fashionpedia):
    ds = load_dataset("fashionpedia", fashionpedia)
    ds.prepare()
    full = ds.attribute_space
    space = ds.select_attributes("DOT; 10")
    assert space.source_ids == (10, 21) and ds.attribute_space is space
    assert ds.full_attribute_space is full
    np.testing.assert_array_equal(ds.load_attributes_multi_hot(0), [[0, 0], [1, 0], [0, 0], [0, 0]])
    assert resolve_attributes("none", full).num_attributes == 0
    assert resolve_attributes(None, full) is full and resolve_attributes("all", full) is full
    assert resolve_attributes(["stripe", 30], full).names == ("stripe", "v-neck")
    with pytest.raises(AttributeSelectionError, match=r"--attributes: 'strip' is not an attribute.*'stripe'"):
        ds.select_attributes("strip")
    with pytest.raises(AttributeSelectionError, match="--attributes: empty list"):
        resolve_attributes(" ; ", full)
    with pytest.raises(AttributeSelectionError, match="--my-option: '99'"):
        resolve_attributes("99", full, argument="--my-option")
    assert ds.attribute_space is space  # a failed selection changes nothing


def test_imaterialist_reads_supercategories_and_treats_bare_rows_as_unlabelled(tmp_path, write, box):
    root = write.imaterialist(
        str(tmp_path),
        {
            "a.jpg": (20, 20, [("1_1_4", box(20, 20, 0, 0, 8, 8)), ("1", box(20, 20, 10, 10, 18, 18))]),
            "b.jpg": (20, 20, [("6_2", box(20, 20, 0, 0, 8, 8)), ("23", box(20, 20, 10, 10, 18, 18))]),
        },
    )
    ds = load_dataset("imaterialist", root, classes="thesis11", limit=1)
    ds.prepare()
    space = ds.attribute_space
    assert space.names == ("plain (pattern)", "stripe", "dot", "short sleeve", "long sleeve")
    assert space.supercategories == ("textile pattern",) * 3 + ("sleeve length",) * 2
    assert space.empty_is_unlabelled
    top, pants = ds.image_class_ids(0)[0], ds.map_source_class_id("imaterialist.6")
    # b.jpg is beyond --limit 1 and pants are in the class subset: the rule still sees the whole file.
    assert space.annotated[top].all() and space.annotated[pants].tolist() == [True] * 3 + [False] * 2
    multi_hot, weights = ds.load_attribute_targets(0)
    np.testing.assert_array_equal(multi_hot, [[0, 1, 0, 0, 1], [0] * 5])
    np.testing.assert_array_equal(weights, [[1] * 5, [0] * 5])  # the bare "1" row is unlabelled


def test_deepfashion2_has_no_garment_attributes(tmp_path, write):
    root = write.deepfashion2(
        str(tmp_path),
        {"000001": (20, 20, {"item1": {"category_id": 1, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}})},
    )
    ds = load_dataset("deepfashion2", root)
    ds.prepare()
    assert ds.attribute_space.num_attributes == 0
    multi_hot, weights = ds.load_attribute_targets(0)
    assert multi_hot.shape == weights.shape == (1, 0)


def test_space_without_an_attribute_list_uses_the_ids_in_use():
    space = build_attribute_space([], [None, 5], {})
    assert space.num_attributes == 0
    space = build_attribute_space([(7, "7", ""), (3, "3", "")], [None, 5, 6], {(5, 7): 2, (6, 3): 1})
    assert space.source_ids == (3, 7)
    assert space.annotated.tolist() == [[False, False], [False, True], [True, False]]  # no supercategory:
    with pytest.raises(ValueError, match="annotated must be"):  # each attribute is its own group
        AttributeSpace((1,), ("a",), ("",), np.zeros([2, 2], bool))


def test_presets_choose_the_default_selection():
    assert PRESETS["sample"].attributes == "all" and PRESETS["tiny"].attributes == "all"
    assert PRESETS["thesis000"].attributes == "none"  # DeepFashion2: no garment attributes
    assert PRESETS["thesis001"].attributes == PRESETS["deck002"].attributes == "none"  # seeds without them
