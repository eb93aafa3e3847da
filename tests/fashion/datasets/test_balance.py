import numpy as np
import pytest

from fashion.categories import Category
from fashion.datasets import FashionDataset, cap_per_class, oversample, split

CATS = [Category(0, "common", "x"), Category(1, "rare", "x"), Category(2, "other", "x")]


def make(groups):
    """groups: [(count, [source category ids per image])] -> a prepared FashionDataset (no files needed)."""
    ds = FashionDataset()
    ds.register_classes(CATS)
    n = 0
    for count, cats in groups:
        for _ in range(count):
            ds.add_image("fashion", image_id=f"img{n}", path=None, categories=np.array(cats, np.int32))
            n += 1
    ds.prepare()
    return ds


def test_cap_without_co_occurrence_is_exact():
    ds = make([(30, [0]), (5, [1]), (12, [2, 2])])
    capped = cap_per_class(ds, 10, seed=3)
    assert capped.class_image_counts() == {1: 10, 2: 5, 3: 10}
    assert capped.num_images == 25 and ds.num_images == 47  # input unchanged
    assert capped.class_instance_counts()[3] == 20  # instances of kept images are all kept


def test_cap_keeps_every_image_of_rare_classes_even_when_shared():
    ds = make([(30, [0]), (5, [1]), (5, [0, 1])])
    for seed in range(5):
        counts = cap_per_class(ds, 8, seed=seed).class_image_counts()
        assert counts[2] == 8  # the rare class reaches the cap (it has 10)
        assert 8 <= counts[1] <= 8 + 5  # the common one only exceeds it through shared images


def test_oversample_rare_classes_to_a_minimum():
    ds = make([(30, [0]), (3, [1])])
    out = oversample(ds, min_images=12, seed=0)
    assert out.class_image_counts() == {1: 30, 2: 12, 3: 0}
    ids = [info["id"] for info in out.image_info]
    assert len(set(ids)) == len(ids) == 42
    repeats = [info for info in out.image_info if "duplicate_of" in info]
    assert len(repeats) == 9 and all(info["id"].startswith(info["duplicate_of"] + "#") for info in repeats)
    assert out.stats["images_added_by_oversampling"] == 9


def test_oversample_chosen_classes_by_factor():
    ds = make([(10, [0]), (4, [1])])
    assert oversample(ds, classes=["rare"], factor=3).class_image_counts()[2] == 12
    assert oversample(ds, classes=[2], factor=2.5, seed=1).class_image_counts()[2] == 10
    with pytest.raises(ValueError, match="unknown class"):
        oversample(ds, classes=["nope"], factor=2)


def test_split_is_disjoint_and_seeded():
    ds = make([(10, [0])])
    train, val = split(ds, 0.2, seed=1)
    train_ids = {i["id"] for i in train.image_info}
    val_ids = {i["id"] for i in val.image_info}
    assert len(val_ids) == 2 and len(train_ids) == 8 and not train_ids & val_ids
    assert {i["id"] for i in split(ds, 0.2, seed=1)[1].image_info} == val_ids
    assert train.num_images == 8 and val.num_classes == ds.num_classes
    with pytest.raises(ValueError):
        split(make([(1, [0])]), 0.5)
