import os
from collections import Counter

import numpy as np
from scipy import ndimage

from fashion.datasets import load_dataset
from fashion.make_sample import DEFAULT_OUT, DOT, LONG_SLEEVE, PLAIN, SHORT_SLEEVE, STRIPE, make_sample


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


def _sample_128():
    ds = load_dataset("imaterialist", DEFAULT_OUT, classes="thesis11", max_dim=128)
    ds.prepare()
    return ds


def test_every_garment_carries_the_documented_attributes():
    ds = _sample_128()
    space = ds.attribute_space
    assert space.names == ("plain (pattern)", "stripe", "dot", "short sleeve", "long sleeve")
    names = {c: ds.class_names[c] for c in range(ds.num_classes)}
    counts = Counter()
    for image_id in ds.image_ids:
        class_ids = ds.image_class_ids(image_id)
        sleeveless_tops = 0
        for c, attrs in zip(class_ids, ds.image_info[image_id]["attributes"]):
            counts.update(attrs)
            patterns = [a for a in attrs if a in (PLAIN, STRIPE, DOT)]
            sleeves = [a for a in attrs if a in (SHORT_SLEEVE, LONG_SLEEVE)]
            if names[c] in ("shoe", "bag"):
                assert attrs == ()
                continue
            assert len(patterns) == 1, (image_id, names[c], attrs)
            assert len(sleeves) <= (names[c] == "top")
            sleeveless_tops += names[c] == "top" and not sleeves
        # A top has no sleeve label exactly when its figure wears a jacket over it.
        assert sleeveless_tops == sum(names[c] == "jacket" for c in class_ids)
    assert min(counts.values()) >= 9 and set(counts) == {0, 1, 2, 3, 4}
    annotated = {names[c]: space.annotated[c].tolist() for c in range(1, ds.num_classes)}
    assert annotated["top"] == [True] * 5
    for garment in ("jacket", "pants", "skirt", "dress"):
        assert annotated[garment] == [True, True, True, False, False]
    assert annotated["shoe"] == annotated["bag"] == [False] * 5


def test_attributes_are_visible_at_128_pixels():
    """Patterns: the grey-level spread inside a garment (mask eroded by one pixel) separates plain garments
    from striped/dotted ones by a wide margin. Sleeves: 60% of the way down a top's mask, a long-sleeved top
    crosses three runs (arm, body, arm), a short-sleeved one a single run."""
    ds = _sample_128()
    spread = {PLAIN: [], STRIPE: [], DOT: []}
    runs = {SHORT_SLEEVE: set(), LONG_SLEEVE: set()}
    for image_id in ds.image_ids:
        grey = ds.load_image(image_id).astype(float).mean(axis=-1)
        masks, _, records = ds.load_mask_and_attributes(image_id)
        for k, attrs in enumerate(records):
            inner = ndimage.binary_erosion(masks[:, :, k])
            for a in attrs:
                if a in spread:
                    spread[a].append(grey[inner].std())
                if a in runs:
                    ys = np.nonzero(masks[:, :, k])[0]
                    row = masks[int(ys.min() + 0.6 * (ys.max() - ys.min())), :, k].astype(int)
                    runs[a].add(int(np.sum(np.diff(np.r_[0, row, 0]) == 1)))
    assert max(spread[PLAIN]) < 8 and min(spread[STRIPE] + spread[DOT]) > 20
    assert runs == {SHORT_SLEEVE: {1}, LONG_SLEEVE: {3}}
