import os

from fashion.datasets import load_dataset
from fashion.make_sample import DEFAULT_OUT, make_sample


def test_script_regenerates_the_shipped_sample_exactly(tmp_path):
    names = make_sample(str(tmp_path))
    assert len(names) == 36
    for name in ("train.csv", "label_descriptions.json"):
        with open(os.path.join(DEFAULT_OUT, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), name
    assert sorted(os.listdir(os.path.join(DEFAULT_OUT, "train"))) == names


def test_shipped_sample_is_small_and_loads_with_the_11_class_set():
    total = sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(DEFAULT_OUT) for f in files
    )
    assert total < 2_000_000
    ds = load_dataset("imaterialist", DEFAULT_OUT, classes="thesis11")
    ds.prepare()
    assert ds.num_images == 36 and ds.num_classes == 12 and ds.warnings.total == 0
    counts = ds.class_instance_counts()
    used = {ds.class_info[c]["name"] for c, n in counts.items() if n}
    assert used == {"top, t-shirt, sweatshirt", "jacket", "pants", "skirt", "dress", "shoe", "bag, wallet"}
    for image_id in (0, 17, 35):
        image = ds.load_image(image_id)
        mask, class_ids = ds.load_mask(image_id)
        assert 200 <= max(image.shape[:2]) <= 320 and mask.shape[:2] == image.shape[:2]
        assert class_ids.size >= 3 and mask.any(axis=(0, 1)).all()
    assert any(attrs for i in range(ds.num_images) for attrs in ds.image_info[i]["attributes"])
