"""fashion/postprocess.py on hand-built masks with known answers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fashion import postprocess as pp
from fashion.rle import rle_decode
from mrcnn.boxes import extract_bboxes

SHOE, BAG, TOP = 9, 10, 2
NAMES = ["BG", "shirt, blouse", "top, t-shirt, sweatshirt", "sweater", "jacket", "pants", "skirt", "dress"]
NAMES += ["tie", "shoe", "bag, wallet", "umbrella"]


def rect(h, w, y1, x1, y2, x2):
    m = np.zeros([h, w], bool)
    m[y1:y2, x1:x2] = True
    return m


def detections(masks, class_ids, scores):
    masks = np.stack(masks, axis=-1) if len(masks) else np.zeros([8, 8, 0], bool)
    return {
        "rois": extract_bboxes(masks),
        "class_ids": np.asarray(class_ids, np.int32),
        "scores": np.asarray(scores, np.float32),
        "masks": masks,
    }


def shoes_and_bag():
    masks = [
        rect(20, 20, 0, 0, 4, 4),
        rect(20, 20, 5, 5, 9, 9),
        rect(20, 20, 10, 10, 14, 14),
        rect(20, 20, 0, 10, 6, 16),
    ]
    return detections(masks, [SHOE, SHOE, SHOE, BAG], [0.5, 0.9, 0.7, 0.3])


def test_cap_per_class_keeps_the_most_confident_in_their_order():
    d = shoes_and_bag()
    out = pp.cap_instances_per_class(d, {SHOE: 2})
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7, 0.3])
    assert out["class_ids"].tolist() == [SHOE, SHOE, BAG]
    np.testing.assert_array_equal(out["masks"], d["masks"][:, :, [1, 2, 3]])
    np.testing.assert_array_equal(out["rois"], d["rois"][[1, 2, 3]])
    # A default cap applies to the classes not named; the input is untouched.
    out = pp.cap_instances_per_class(d, {BAG: 0}, default=1)
    assert out["scores"].tolist() == pytest.approx([0.9]) and d["masks"].shape[-1] == 4


def test_min_score_and_min_area_filters():
    d = shoes_and_bag()
    assert pp.filter_min_score(d, 0.5)["scores"].tolist() == pytest.approx([0.5, 0.9, 0.7])
    d["masks"][:, :, 1] = rect(20, 20, 5, 5, 6, 7)  # 2 pixels
    assert pp.mask_areas(d).tolist() == [16, 2, 16, 36]
    assert pp.filter_min_area(d, 3)["scores"].tolist() == pytest.approx([0.5, 0.7, 0.3])
    assert pp.num_detections(pp.filter_min_area(d, None)) == 4


def test_postprocess_drops_small_and_unsure_instances_before_capping():
    d = shoes_and_bag()
    d["masks"][:, :, 1] = rect(20, 20, 5, 5, 6, 7)  # the most confident shoe is a 2-pixel speck
    options = pp.PostprocessOptions(min_score=0.4, min_area=3, max_per_class={SHOE: 2})
    out = pp.postprocess(d, options)
    # Speck gone, bag below 0.4 gone, so the two other shoes both keep a place.
    assert out["scores"].tolist() == pytest.approx([0.5, 0.7]) and options.active
    assert not pp.PostprocessOptions().active


def overlapping():
    a = rect(10, 10, 0, 0, 6, 6)  # top, 0.6
    b = rect(10, 10, 3, 3, 9, 9)  # shoe, 0.9
    c = rect(10, 10, 4, 4, 6, 6)  # bag, 0.8, wholly inside b
    return detections([a, b, c], [TOP, SHOE, BAG], [0.6, 0.9, 0.8])


def test_non_overlapping_gives_each_pixel_to_the_most_confident_instance():
    d = overlapping()
    out = pp.make_non_overlapping(d)
    assert out["class_ids"].tolist() == [TOP, SHOE]  # the bag is covered by the more confident shoe
    assert out["masks"].sum(axis=-1).max() == 1
    np.testing.assert_array_equal(out["masks"].any(axis=-1), d["masks"].any(axis=-1))
    np.testing.assert_array_equal(out["masks"][:, :, 1], d["masks"][:, :, 1])
    np.testing.assert_array_equal(out["masks"][:, :, 0], d["masks"][:, :, 0] & ~d["masks"][:, :, 1])
    np.testing.assert_array_equal(out["rois"], extract_bboxes(out["masks"]))
    kept = pp.make_non_overlapping(d, drop_empty=False)
    assert kept["masks"].shape[-1] == 3 and not kept["masks"][:, :, 2].any()


def test_label_map_paints_in_increasing_confidence():
    d = overlapping()
    label = pp.semantic_label_map(d)
    assert label[4, 4] == SHOE and label[1, 1] == TOP and label[8, 8] == SHOE and label[9, 9] == 0
    assert set(np.unique(label).tolist()) == {0, TOP, SHOE}
    # Make the bag the most confident: it now wins inside the shoe, whatever the list order.
    d["scores"] = np.array([0.6, 0.9, 0.95], np.float32)
    label = pp.semantic_label_map(pp.select(d, [2, 0, 1]))
    assert label[4, 4] == BAG and label[3, 3] == SHOE and label[2, 2] == TOP
    # One value per class: two shoes share the value.
    two = detections([rect(6, 6, 0, 0, 2, 2), rect(6, 6, 3, 3, 5, 5)], [SHOE, SHOE], [0.5, 0.6])
    assert set(np.unique(pp.semantic_label_map(two)).tolist()) == {0, SHOE}


def test_equal_scores_the_first_instance_wins_everywhere():
    d = detections([rect(6, 6, 0, 0, 4, 4), rect(6, 6, 2, 2, 6, 6)], [TOP, SHOE], [0.5, 0.5])
    assert pp.semantic_label_map(d)[3, 3] == TOP
    assert pp.make_non_overlapping(d)["masks"][3, 3].tolist() == [True, False]
    assert pp.cap_instances_per_class(d, default=1)["class_ids"].tolist() == [TOP, SHOE]


def test_kaggle_rows_decode_to_the_non_overlapping_masks():
    d = overlapping()
    source = [0, 0, 1, 2, 3, 4, 5, 6, 7, 23, 24, 25]  # thesis11 class id -> iMaterialist id
    rows = pp.kaggle_rows("x.jpg", d, source)
    assert [r[2] for r in rows] == ["23", "1"]  # by decreasing score, competition ids
    disjoint = pp.make_non_overlapping(d)
    np.testing.assert_array_equal(rle_decode(rows[0][1], 10, 10), disjoint["masks"][:, :, 1])
    np.testing.assert_array_equal(rle_decode(rows[1][1], 10, 10), disjoint["masks"][:, :, 0])
    assert pp.kaggle_rows("y.jpg", pp.empty_detections(5, 5)) == [("y.jpg", "", "")]


@given(
    masks=st.integers(1, 5).flatmap(
        lambda n: st.lists(st.lists(st.booleans(), min_size=36, max_size=36), min_size=n, max_size=n)
    ),
    data=st.data(),
)
def test_non_overlap_and_label_map_agree_on_random_masks(masks, data):
    n = len(masks)
    m = np.array(masks).T.reshape(6, 6, n)
    scores = data.draw(st.lists(st.sampled_from([0.1, 0.5, 0.7, 0.9]), min_size=n, max_size=n))
    class_ids = data.draw(st.lists(st.integers(1, 11), min_size=n, max_size=n))
    d = {"rois": extract_bboxes(m), "class_ids": np.array(class_ids), "scores": np.array(scores), "masks": m}
    out = pp.make_non_overlapping(d, drop_empty=False)
    assert out["masks"].sum(axis=-1).max(initial=0) <= 1
    label = pp.semantic_label_map(d)
    order = pp.confidence_order(scores)
    for y in range(6):
        for x in range(6):
            covering = [i for i in order if m[y, x, i]]
            if not covering:
                assert label[y, x] == 0 and not out["masks"][y, x].any()
                continue
            winner = covering[0]  # most confident, first on ties
            assert out["masks"][y, x].tolist() == [i == winner for i in range(n)]
            assert label[y, x] == class_ids[winner]


def test_parse_max_per_class():
    assert pp.parse_max_per_class("shoe=2", NAMES) == (None, {SHOE: 2})
    assert pp.parse_max_per_class(" 3 ; Shoe=2;bag, wallet=1;5=0", NAMES) == (3, {SHOE: 2, BAG: 1, 5: 0})
    assert pp.parse_max_per_class("2", NAMES) == (2, {})
    assert pp.parse_max_per_class("bag=1;top, t-shirt, sweatshirt=4", NAMES) == (None, {BAG: 1, TOP: 4})
    assert pp.parse_max_per_class(None, NAMES) == (None, {})
    with pytest.raises(ValueError, match="unknown class 'cape'"):
        pp.parse_max_per_class("cape=1", NAMES)
    with pytest.raises(ValueError, match="integer"):
        pp.parse_max_per_class("shoe=two", NAMES)
    with pytest.raises(ValueError, match=">= 0"):
        pp.parse_max_per_class("shoe=-1", NAMES)


def test_label_maps_agree_with_evaluation_on_equal_scores():
    """postprocess and the pixel metrics paint the same map, ties included: the first-listed instance wins."""
    from fashion.evaluation.metrics import label_map

    masks = np.zeros((6, 6, 3), bool)
    masks[0:4, 0:4, 0] = masks[2:6, 2:6, 1] = masks[1:5, 1:5, 2] = True
    d = {"class_ids": np.array([1, 2, 3]), "scores": np.array([0.5, 0.5, 0.2]), "masks": masks}
    label = pp.semantic_label_map(d)
    assert label[3, 3] == 1  # instances 0 and 1 tie at 0.5 over instance 2: instance 0, listed first, wins
    np.testing.assert_array_equal(label, label_map(d["class_ids"], masks, d["scores"]))


def with_attributes(d, scores):
    return dict(d, attributes=np.asarray(scores, np.float32))


def test_kaggle_class_ids_carry_the_attributes_above_the_threshold():
    # overlapping(): c (bag, 0.8) lies wholly under b (shoe, 0.9) and is dropped with its attribute row.
    d = with_attributes(overlapping(), [[0.9, 0.1, 0.6], [0.2, 0.7, 0.5], [0.9, 0.9, 0.9]])
    rows = pp.kaggle_rows("img.jpg", d, {TOP: 10, SHOE: 23, BAG: 24}, attribute_source_ids=[115, 7, 92])
    assert [r[2] for r in rows] == ["23_7_92", "10_92_115"]  # by score; attribute ids increasing
    assert [r[2] for r in pp.kaggle_rows("img.jpg", d, {TOP: 10, SHOE: 23, BAG: 24})] == ["23", "10"]
    assert pp.predicted_attribute_ids(d, [115, 7, 92], threshold=0.95) == [[], [], []]
    with pytest.raises(ValueError, match="3 attribute scores per instance but 2 attribute ids"):
        pp.predicted_attribute_ids(d, [1, 2])


def test_attribute_rows_follow_their_instances_through_postprocessing():
    d = with_attributes(shoes_and_bag(), np.eye(4, 3))
    result = pp.postprocess(d, pp.PostprocessOptions(max_per_class={SHOE: 1}))
    np.testing.assert_allclose(result["scores"], [0.9, 0.3])
    np.testing.assert_array_equal(result["attributes"], [[0, 1, 0], [0, 0, 0]])
