import keras
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.modeling.build import detection_target_args
from mrcnn.modeling.targets import DetectionTargetLayer


class TargetConfig(Config):
    NAME = "targets"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    TRAIN_ROIS_PER_IMAGE = 6
    ROI_POSITIVE_RATIO = 0.5
    MASK_POOL_SIZE = 2
    MASK_SHAPE = [4, 4]
    MAX_GT_INSTANCES = 4
    USE_MINI_MASK = False
    MINI_MASK_SHAPE = (7, 7)


def make_config(**overrides) -> TargetConfig:
    config = TargetConfig()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


GT_BOXES = np.array(
    [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0], [0, 0, 0, 0]], np.float32
)
GT_CLASS_IDS = np.array([1, 2, -1, 0], np.int32)  # third box is a crowd
PROPOSALS = np.array(
    [
        [0.0, 0.0, 0.5, 0.5],  # 0: == A -> positive, class 1, zero deltas
        [0.05, 0.0, 0.55, 0.5],  # 1: IoU 0.82 with A -> positive, dy = -0.05/0.5/0.1 = -1
        [0.55, 0.55, 1.0, 1.0],  # 2: IoU 0.81 with B -> positive, class 2
        [0.6, 0.0, 0.9, 0.3],  # 3: no overlap -> negative
        [0.1, 0.6, 0.3, 0.8],  # 4: inside the crowd box -> neither
        [0.3, 0.0, 0.6, 0.3],  # 5: IoU 0.21 with A -> negative
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    np.float32,
)


def full_masks() -> np.ndarray:
    """13x13 image masks; normalized box A covers pixels 0..6. Inside A only columns x < 3 are set."""
    masks = np.zeros((13, 13, 4), bool)
    masks[0:7, 0:3, 0] = True
    masks[6:13, 6:13, 1] = True
    masks[0:7, 6:13, 2] = True
    return masks


def mini_masks() -> np.ndarray:
    """The same instances as 7x7 mini masks covering their boxes."""
    masks = np.zeros((7, 7, 4), bool)
    masks[:, 0:3, 0] = True
    masks[:, :, 1] = True
    masks[:, :, 2] = True
    return masks


def run(config, proposals, class_ids, boxes, masks):
    layer = DetectionTargetLayer(**detection_target_args(config))
    outputs = layer([proposals[None], class_ids[None], boxes[None], masks[None]])
    return [np.asarray(o)[0] for o in outputs]


def source_index(rois, proposals):
    """Index into ``proposals`` of each non-zero output ROI."""
    return [int(np.argmin(np.abs(proposals - r).sum(axis=1))) for r in rois if np.any(r)]


def test_hand_case_positives_negatives_and_targets():
    rois, class_ids, deltas, masks = run(make_config(), PROPOSALS, GT_CLASS_IDS, GT_BOXES, full_masks())
    assert class_ids.dtype == np.int32
    order = source_index(rois, PROPOSALS)
    assert sorted(order[:3]) == [0, 1, 2]
    assert sorted(order[3:]) == [3, 5]
    np.testing.assert_array_equal(rois[5], 0.0)
    by_source = {src: k for k, src in enumerate(order)}

    expected_class = {0: 1, 1: 1, 2: 2, 3: 0, 5: 0}
    expected_deltas = {
        0: [0, 0, 0, 0],
        1: [-1.0, 0, 0, 0],
        2: [-0.025 / 0.45 / 0.1, -0.025 / 0.45 / 0.1, np.log(0.5 / 0.45) / 0.2, np.log(0.5 / 0.45) / 0.2],
        3: [0, 0, 0, 0],
        5: [0, 0, 0, 0],
    }
    for src, k in by_source.items():
        assert class_ids[k] == expected_class[src]
        np.testing.assert_allclose(deltas[k], expected_deltas[src], atol=1e-5)
    assert class_ids[5] == 0

    # Box A spans pixels 0..6: a 4x4 crop samples columns 0, 2, 4, 6, of which 0 and 2 are set.
    np.testing.assert_array_equal(masks[by_source[0]], [[1, 1, 0, 0]] * 4)
    np.testing.assert_array_equal(masks[by_source[2]], np.ones((4, 4)))
    for src in (3, 5):
        np.testing.assert_array_equal(masks[by_source[src]], 0.0)
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_mini_masks_give_the_same_targets_as_full_masks():
    proposals = np.array([[0.0, 0.0, 0.5, 0.25], [0.0, 0.0, 0.5, 0.5], [0, 0, 0, 0]], np.float32)
    full = run(make_config(), proposals, GT_CLASS_IDS, GT_BOXES, full_masks())
    mini = run(make_config(USE_MINI_MASK=True), proposals, GT_CLASS_IDS, GT_BOXES, mini_masks())
    for outputs in (full, mini):
        order = source_index(outputs[0], proposals)
        assert sorted(order) == [0, 1]
    # Sort both by source so the random positive order does not matter.
    full_masks_sorted = full[3][np.argsort(source_index(full[0], proposals))]
    mini_masks_sorted = mini[3][np.argsort(source_index(mini[0], proposals))]
    np.testing.assert_array_equal(full_masks_sorted, mini_masks_sorted)
    # The left half of box A (pixel columns 0..3) samples columns 0, 1, 2, 3.
    np.testing.assert_array_equal(mini_masks_sorted[0], [[1, 1, 1, 0]] * 4)


def test_sampling_respects_positive_ratio():
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.02, 0.02, (10, 4))
    positives = GT_BOXES[0] + jitter
    negatives = np.array([[0.6, 0.0, 0.9, 0.1 + 0.02 * i] for i in range(10)])
    proposals = np.concatenate([positives, negatives]).astype(np.float32)
    config = make_config(TRAIN_ROIS_PER_IMAGE=8, ROI_POSITIVE_RATIO=0.25)
    rois, class_ids, _, _ = run(config, proposals, GT_CLASS_IDS, GT_BOXES, full_masks())
    order = source_index(rois, proposals)
    # 2 positives (8 * 0.25), then int(2 / 0.25) - 2 = 6 negatives.
    assert len(order) == 8
    assert all(i < 10 for i in order[:2]) and all(i >= 10 for i in order[2:])
    np.testing.assert_array_equal(class_ids, [1, 1, 0, 0, 0, 0, 0, 0])


def test_no_ground_truth_gives_all_zero_outputs():
    outputs = run(make_config(), PROPOSALS, np.zeros(4, np.int32), np.zeros((4, 4), np.float32), full_masks())
    for output in outputs:
        np.testing.assert_array_equal(output, 0)


def test_batched_functional_layer():
    config = make_config()
    inputs = [
        keras.Input((None, 4)),
        keras.Input((4,), dtype="int32"),
        keras.Input((4, 4)),
        keras.Input((13, 13, 4), dtype="bool"),
    ]
    outputs = DetectionTargetLayer(**detection_target_args(config), name="proposal_targets")(inputs)
    assert [tuple(o.shape) for o in outputs] == [(None, 6, 4), (None, 6), (None, 6, 4), (None, 6, 4, 4)]
    assert outputs[1].dtype == "int32"
    model = keras.Model(inputs, outputs)
    # Image 1 has B as its only instance (class 3) and no crowd.
    class_ids = np.stack([GT_CLASS_IDS, np.array([0, 3, 0, 0], np.int32)])
    boxes = np.stack([GT_BOXES, GT_BOXES])
    masks = np.stack([full_masks(), full_masks()])
    rois, target_ids, _, _ = (
        np.asarray(o) for o in model([np.stack([PROPOSALS, PROPOSALS]), class_ids, boxes, masks])
    )
    assert sorted(source_index(rois[0], PROPOSALS)) == [0, 1, 2, 3, 5]
    order = source_index(rois[1], PROPOSALS)
    assert order[0] == 2 and target_ids[1, 0] == 3 and np.all(target_ids[1, 1:] == 0)
    # One positive -> int(1 / 0.5) - 1 = 1 negative, drawn from proposals 0, 1, 3, 4, 5.
    assert len(order) == 2 and order[1] in (0, 1, 3, 4, 5)


def test_positives_never_exceed_the_quota_and_come_first():
    """The training graph runs the mask head on the first int(T * ROI_POSITIVE_RATIO) ROIs only: every
    positive must be there, however many proposals overlap the ground truth."""
    config = make_config(TRAIN_ROIS_PER_IMAGE=10, ROI_POSITIVE_RATIO=0.33)
    rng = np.random.default_rng(0)
    gt_boxes = np.array(
        [[[0.1, 0.1, 0.6, 0.6], [0.4, 0.4, 0.9, 0.9], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32
    )
    gt_ids = np.array([[1, 2, 0, 0]], np.int32)
    # 40 proposals jittered around the two boxes: nearly all positive
    centres = np.repeat(gt_boxes[0, :2], 20, axis=0)
    proposals = np.clip(centres + rng.normal(0, 0.01, centres.shape), 0, 1).astype(np.float32)[None]
    gt_masks = np.ones((1, 64, 64, 4), bool)
    layer = DetectionTargetLayer(**detection_target_args(config))
    rois, class_ids, _, _ = layer([proposals, gt_ids, gt_boxes, gt_masks])
    class_ids = np.asarray(class_ids)[0]
    quota = int(10 * 0.33)
    assert (class_ids[:quota] > 0).all()
    assert not (class_ids[quota:] > 0).any()


def test_positive_rows_cut_the_batch_to_its_largest_positive_count():
    from mrcnn.modeling.build import PositiveRows

    rois = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    masks = np.arange(2 * 5 * 3 * 3, dtype=np.float32).reshape(2, 5, 3, 3)
    ids = np.array([[3, 1, 0, 0, 0], [2, 2, 1, 0, 0]], np.int32)  # 2 and 3 positives, first in each row
    cut_rois, cut_ids, cut_masks = (np.asarray(t) for t in PositiveRows()([rois, ids, masks]))
    np.testing.assert_array_equal(cut_rois, rois[:, :3])
    np.testing.assert_array_equal(cut_ids, ids[:, :3])
    np.testing.assert_array_equal(cut_masks, masks[:, :3])
    # no positives anywhere: one row is kept so the mask head's tensors are never empty
    cut_rois, cut_ids, _ = (np.asarray(t) for t in PositiveRows()([rois, np.zeros_like(ids), masks]))
    assert cut_rois.shape == (2, 1, 4) and (cut_ids == 0).all()


def test_attributes_follow_each_positive_roi_to_its_instance():
    """Positive ROIs carry their matched instance's attributes and weights; negatives and padding get zeros
    (weight 0); crowds and zero-padded instances are dropped from the table as from the boxes."""
    config = make_config()
    attributes = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], np.float32)
    weights = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]], np.float32)
    layer = DetectionTargetLayer(**detection_target_args(config), num_attributes=3)
    inputs = [PROPOSALS, GT_CLASS_IDS, GT_BOXES, full_masks(), attributes, weights]
    outputs = [np.asarray(o)[0] for o in layer([x[None] for x in inputs])]
    rois, class_ids, _, _, roi_attributes, roi_weights = outputs
    order = source_index(rois, PROPOSALS)
    assert sorted(order[:3]) == [0, 1, 2] and sorted(order[3:]) == [3, 5]  # as without attributes
    assert [int(class_ids[k]) for k in range(5)] == [{0: 1, 1: 1, 2: 2, 3: 0, 5: 0}[i] for i in order]
    assert roi_attributes.shape == roi_weights.shape == (config.TRAIN_ROIS_PER_IMAGE, 3)
    for k, src in enumerate(source_index(rois, PROPOSALS)):
        instance = {0: 0, 1: 0, 2: 1}.get(src)  # proposals 0, 1 match A; 2 matches B; the rest negatives
        if instance is None:
            assert not roi_attributes[k].any() and not roi_weights[k].any()
        else:
            np.testing.assert_array_equal(roi_attributes[k], attributes[instance])
            np.testing.assert_array_equal(roi_weights[k], weights[instance])
    assert not roi_weights[5].any()  # padding


def test_attribute_target_layer_wants_both_tables():
    layer = DetectionTargetLayer(**detection_target_args(make_config()), num_attributes=3)
    with pytest.raises(ValueError, match="expected 6 inputs"):
        layer([PROPOSALS[None], GT_CLASS_IDS[None], GT_BOXES[None], full_masks()[None]])


def _sampling_case(shift=0.0):
    """12 positive and 12 negative candidates for 2 + 6 ROIs; ``shift`` moves the last negative."""
    rng = np.random.default_rng(3)
    positives = GT_BOXES[0] + rng.uniform(-0.02, 0.02, (12, 4))
    negatives = np.array([[0.6, 0.0, 0.9, 0.1 + 0.02 * i] for i in range(12)])
    negatives[-1, 0] += shift
    return np.concatenate([positives, negatives]).astype(np.float32)


def test_sampling_is_a_function_of_the_inputs():
    """The ROIs drawn depend on the proposals and GT only, not on a random state in the graph: calling again,
    or another layer (a resumed run's new graph), draws the same ROIs; other proposals draw others."""
    config = make_config(TRAIN_ROIS_PER_IMAGE=8, ROI_POSITIVE_RATIO=0.25)
    proposals = _sampling_case()
    first = run(config, proposals, GT_CLASS_IDS, GT_BOXES, full_masks())
    again = run(config, proposals, GT_CLASS_IDS, GT_BOXES, full_masks())
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    drawn = source_index(first[0], proposals)
    others = [
        source_index(
            run(config, _sampling_case(s), GT_CLASS_IDS, GT_BOXES, full_masks())[0], _sampling_case(s)
        )
        for s in (0.001, 0.002, 0.003)
    ]
    assert any(sorted(o) != sorted(drawn) for o in others)
    for o in [drawn, *others]:  # still 2 of the 12 positives and 6 of the 12 negatives
        assert len(o) == 8 and all(i < 12 for i in o[:2]) and all(i >= 12 for i in o[2:])
