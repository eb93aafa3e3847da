import numpy as np
import pytest

import mrcnn  # noqa: F401  (patches numpy before imgaug is imported)
from mrcnn.compat import patch_numpy_for_imgaug


def test_restores_missing_attributes(monkeypatch):
    monkeypatch.delattr(np, "sctypes", raising=False)
    monkeypatch.delattr(np, "complex", raising=False)
    assert not hasattr(np, "sctypes")
    added = patch_numpy_for_imgaug()
    assert {"sctypes", "complex"} <= set(added)
    assert np.uint8 in np.sctypes["uint"] and np.float64 in np.sctypes["float"]
    assert set(np.sctypes) == {"int", "uint", "float", "complex", "others"}
    assert np.complex is complex
    assert patch_numpy_for_imgaug() == []  # idempotent


def test_existing_attributes_are_left_alone(monkeypatch):
    sentinel = {"int": []}
    monkeypatch.setattr(np, "sctypes", sentinel, raising=False)
    patch_numpy_for_imgaug()
    assert np.sctypes is sentinel
    assert np.bool is np.bool_


def test_imgaug_augmenters_work_on_images_and_masks():
    iaa = pytest.importorskip("imgaug.augmenters")
    from imgaug.augmentables.heatmaps import HeatmapsOnImage
    from imgaug.augmentables.segmaps import SegmentationMapsOnImage

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3)).astype(np.uint8)
    segmap = np.zeros((32, 48), dtype=np.int32)
    segmap[4:12, 6:20] = 1
    heatmap = rng.random((32, 48, 1)).astype(np.float32)
    augmenters = [
        iaa.Fliplr(1.0),
        iaa.Affine(rotate=30),
        iaa.GaussianBlur(sigma=1.0),
        iaa.AdditiveGaussianNoise(scale=10),
        iaa.Add(10),
        iaa.Multiply(1.2),
        iaa.Clouds(),  # uses np.complex
        iaa.SomeOf((0, 2), [iaa.Flipud(1.0), iaa.Fliplr(1.0)]),
    ]
    for aug in augmenters:
        det = aug.to_deterministic()
        out = det.augment_image(image)
        assert out.shape == image.shape and out.dtype == np.uint8
        seg = det.augment_segmentation_maps(SegmentationMapsOnImage(segmap, shape=image.shape))
        assert seg.get_arr().shape == segmap.shape
        heat = det.augment_heatmaps(HeatmapsOnImage(heatmap, shape=image.shape))
        assert heat.get_arr().shape == heatmap.shape
    flipped = iaa.Fliplr(1.0).augment_segmentation_maps(SegmentationMapsOnImage(segmap, shape=image.shape))
    np.testing.assert_array_equal(flipped.get_arr(), segmap[:, ::-1])


# Matterport-compatibility of the ``mrcnn.utils`` namespace and ``log`` (no test files of their own).


def test_utils_exposes_matterport_names():
    from mrcnn import utils

    for name in (
        "extract_bboxes compute_iou compute_overlaps compute_overlaps_masks non_max_suppression "
        "apply_box_deltas box_refinement norm_boxes denorm_boxes resize resize_image resize_mask "
        "minimize_mask expand_mask unmold_mask unmold_masks generate_anchors generate_pyramid_anchors "
        "compute_backbone_shapes trim_zeros compute_matches compute_ap compute_ap_range compute_recall "
        "mold_image unmold_image log download_trained_weights COCO_MODEL_URL Dataset"
    ).split():
        assert getattr(utils, name) is not None, name
    assert utils.compute_iou(np.array([0, 0, 2, 2]), np.array([[0, 0, 2, 2]]), 4, np.array([4]))[0] == 1.0
    with pytest.raises(AttributeError):
        utils.no_such_function  # noqa: B018


def test_log_prints_shape_range_and_dtype(capsys):
    from mrcnn.log import log

    log("image", np.array([[0, 255]], dtype=np.uint8))
    log("empty", np.zeros((0, 3)))
    log("just text")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "image".ljust(25) + f"shape: {'(1, 2)':20}  min:    0.00000  max:  255.00000  uint8"
    assert lines[1].startswith("empty".ljust(25) + "shape: (0, 3)") and lines[1].endswith("float64")
    assert lines[2] == "just text"
