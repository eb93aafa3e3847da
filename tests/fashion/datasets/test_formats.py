"""fashion.datasets.formats: load_dataset dispatches through the format registry."""

import pytest

from fashion.categories import DEEPFASHION2_CATEGORIES, IMATERIALIST_CATEGORIES
from fashion.cli_common import category_table
from fashion.datasets import DATASET_FORMATS, FORMATS, FashionDataset, load_dataset, register_format
from fashion.make_sample import DEFAULT_OUT as SAMPLE
from mrcnn.registry import UnknownNameError


def test_builtin_formats_and_their_categories():
    assert FORMATS == ("imaterialist", "fashionpedia", "coco", "deepfashion2")
    assert tuple(DATASET_FORMATS.get("deepfashion2").categories) == tuple(DEEPFASHION2_CATEGORIES)
    assert category_table("fashionpedia") == tuple(IMATERIALIST_CATEGORIES)
    assert category_table("deepfashion2") == tuple(DEEPFASHION2_CATEGORIES)


def test_load_dataset_uses_the_registered_loader():
    ds = load_dataset("imaterialist", SAMPLE, limit=3)
    assert isinstance(ds, FashionDataset) and len(ds.image_info) == 3


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as info:
        load_dataset("voc", SAMPLE)
    assert "unknown dataset format 'voc'" in str(info.value)
    assert all(name in str(info.value) for name in FORMATS)


def test_a_registered_format_loads_by_name():
    seen = {}

    @register_format("test_sample_copy", description="the sample read as iMaterialist")
    def load(path, classes=None, image_dir=None, limit=None, max_dim=None, skip_unreadable=False):
        seen.update(path=path, limit=limit, max_dim=max_dim)
        return load_dataset("imaterialist", path, classes=classes, limit=limit, max_dim=max_dim)

    try:
        ds = load_dataset("test_sample_copy", SAMPLE, limit=2, max_dim=64)
        assert seen == {"path": SAMPLE, "limit": 2, "max_dim": 64} and len(ds.image_info) == 2
        assert DATASET_FORMATS.get("test_sample_copy").description == "the sample read as iMaterialist"
    finally:
        DATASET_FORMATS.unregister("test_sample_copy")
