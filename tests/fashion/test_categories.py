import pytest

from fashion.categories import (
    DEEPFASHION2_CATEGORIES,
    IMATERIALIST_CATEGORIES,
    SUBSETS,
    UnknownClassError,
    resolve_classes,
)


def test_imaterialist_table():
    assert len(IMATERIALIST_CATEGORIES) == 46
    assert [c.id for c in IMATERIALIST_CATEGORIES] == list(range(46))
    names = {c.id: c.name for c in IMATERIALIST_CATEGORIES}
    assert names[0] == "shirt, blouse" and names[23] == "shoe" and names[45] == "tassel"
    supers = {c.supercategory for c in IMATERIALIST_CATEGORIES}
    assert len(supers) == 12 and "garment parts" in supers


def test_main_is_the_27_complete_items():
    main = resolve_classes("main", IMATERIALIST_CATEGORIES)
    assert [c.id for c in main] == list(range(27))
    assert len(SUBSETS["main"]) == 27 and "sleeve" not in SUBSETS["main"] and "umbrella" in SUBSETS["main"]


def test_thesis_sets_follow_table5_order():
    full = resolve_classes("thesis11", IMATERIALIST_CATEGORIES)
    # Table 5 annotation k is the model's class k + 1.
    assert [c.name for c in full] == [
        "shirt, blouse",
        "top, t-shirt, sweatshirt",
        "sweater",
        "jacket",
        "pants",
        "skirt",
        "dress",
        "tie",
        "shoe",
        "bag, wallet",
        "umbrella",
    ]
    assert [c.id for c in resolve_classes("base", IMATERIALIST_CATEGORIES)] == [1, 4, 6, 10, 23]
    assert resolve_classes("full", IMATERIALIST_CATEGORIES) == full


def test_deepfashion2_and_explicit_lists():
    assert [c.name for c in resolve_classes("df2", DEEPFASHION2_CATEGORIES)][:2] == [
        "short sleeve top",
        "long sleeve top",
    ]
    assert len(resolve_classes("all", DEEPFASHION2_CATEGORIES)) == 13
    picked = resolve_classes("shoe; bag, wallet ;0", IMATERIALIST_CATEGORIES)
    assert [c.id for c in picked] == [0, 23, 24]
    assert [c.id for c in resolve_classes([23, "pants"], IMATERIALIST_CATEGORIES)] == [6, 23]
    assert len(resolve_classes(None, IMATERIALIST_CATEGORIES)) == 46


def test_unknown_names_are_listed():
    with pytest.raises(UnknownClassError, match=r"\['hoodie', '99'\]"):
        resolve_classes("shoe;hoodie;99", IMATERIALIST_CATEGORIES)
    with pytest.raises(UnknownClassError):
        resolve_classes("thesis11", DEEPFASHION2_CATEGORIES)
