# isort: off
import mrcnn  # noqa: F401  (patches numpy for imgaug; must precede the imgaug import)

# isort: on

import logging
import threading

import imgaug.augmenters as iaa
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.data.dataset import ImageLoadError
from mrcnn.data.loader import DataLoader, data_generator
from mrcnn.data.synthetic import ShapesDataset


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MINI_MASK_SHAPE = (16, 16)
    MAX_GT_INSTANCES = 6
    TRAIN_ROIS_PER_IMAGE = 16


ANCHORS_64 = 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1)
AUG = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-15, 15))])


@pytest.fixture(scope="module")
def shapes():
    return ShapesDataset.build(8, 64, 64, seed=0)


def test_batch_keys_shapes_and_dtypes(shapes):
    config = TinyConfig()
    loader = DataLoader(shapes, config, augmentation=AUG)
    assert len(loader) == 4
    batch = loader[0]
    expected = {
        "input_image": ((2, 64, 64, 3), np.float32),
        "input_image_meta": ((2, config.IMAGE_META_SIZE), np.float32),
        "input_rpn_match": ((2, ANCHORS_64, 1), np.int32),
        "input_rpn_bbox": ((2, 64, 4), np.float32),
        "input_gt_class_ids": ((2, 6), np.int32),
        "input_gt_boxes": ((2, 6, 4), np.float32),
        "input_gt_masks": ((2, 16, 16, 6), bool),
    }
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape, key
        assert batch[key].dtype == dtype, key
    for i in range(2):
        n = int((batch["input_gt_class_ids"][i] > 0).sum())
        assert n >= 1
        assert not batch["input_gt_boxes"][i, n:].any() and not batch["input_gt_masks"][i, :, :, n:].any()
        assert batch["input_gt_masks"][i, :, :, :n].any(axis=(0, 1)).all()
        assert ((batch["input_rpn_match"][i] == 1).sum()) >= 1
        assert (batch["input_rpn_match"][i] != 0).sum() <= 64


def test_images_are_molded_and_full_masks_without_mini_masks(shapes):
    class FullMasks(TinyConfig):
        USE_MINI_MASK = False

    config = FullMasks()
    loader = DataLoader(shapes, config, shuffle=False)
    batch = loader[0]
    assert batch["input_gt_masks"].shape == (2, 64, 64, 6)
    np.testing.assert_allclose(
        batch["input_image"][0], shapes.load_image(0).astype(np.float32) - config.MEAN_PIXEL, atol=1e-4
    )
    assert int(batch["input_image_meta"][1, 0]) == 1


def test_shuffle_is_reproducible_from_the_seed(shapes):
    config = TinyConfig()
    a, b, c = (DataLoader(shapes, config, seed=s, augmentation=AUG) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.image_order(), b.image_order())
    assert not np.array_equal(a.image_order(), c.image_order())
    assert sorted(a.image_order()) == list(range(8))
    for key, value in a[1].items():
        np.testing.assert_array_equal(value, b[1][key])
    first = a.image_order()
    a.on_epoch_end()
    assert a.epoch == 1
    np.testing.assert_array_equal(a.image_order(), a.image_order(1))
    assert not np.array_equal(first, a.image_order())
    np.testing.assert_array_equal(a.image_order(), DataLoader(shapes, config, seed=6).image_order(0))
    assert list(DataLoader(shapes, config, shuffle=False).image_order()) == list(range(8))
    resumed = DataLoader(shapes, config, seed=5, initial_epoch=1)
    np.testing.assert_array_equal(resumed.image_order(), a.image_order())


def test_images_without_instances_are_skipped_and_counted(caplog):
    ds = ShapesDataset.build(6, 64, 64, seed=0)
    for i in (1, 2):  # images 1 and 2 have no shapes
        ds.image_info[i]["shapes"] = []
    loader = DataLoader(ds, TinyConfig(), shuffle=False)
    batch0, batch1 = loader[0], loader[1]
    # Batch 0 takes images 0 and (1, 2 skipped) 3; batch 1 starts at position 2 -> (2 skipped) 3, 4.
    np.testing.assert_array_equal(batch0["input_image_meta"][:, 0], [0, 3])
    np.testing.assert_array_equal(batch1["input_image_meta"][:, 0], [3, 4])
    assert loader.skipped == 3
    assert loader.skipped_image_ids == {1, 2}
    with caplog.at_level(logging.WARNING):
        loader.on_epoch_end()
    assert "skipped 3 image loads without instances" in caplog.text


def test_dataset_without_any_instance_raises():
    ds = ShapesDataset.build(3, 64, 64, seed=0, empty_fraction=1.0)
    with pytest.raises(RuntimeError, match="no usable image"):
        DataLoader(ds, TinyConfig())[0]


def _dataset_with_a_corrupt_file(tmp_path):
    ds = ShapesDataset.build(4, 64, 64, seed=0)
    bad = tmp_path / "corrupt_0003.png"
    bad.write_bytes(b"not a png at all")

    class PartlyOnDisk(ShapesDataset):
        def load_image(self, image_id):
            if self.image_info[image_id]["path"]:
                return super(ShapesDataset, self).load_image(image_id)
            return super().load_image(image_id)

    on_disk = PartlyOnDisk()
    on_disk.class_info, on_disk.image_info = ds.class_info, [dict(info) for info in ds.image_info]
    on_disk.image_info[3]["path"] = str(bad)
    on_disk.prepare()
    return on_disk


def test_corrupt_image_error_names_the_file(tmp_path):
    ds = _dataset_with_a_corrupt_file(tmp_path)
    loader = DataLoader(ds, TinyConfig(), shuffle=False)
    loader[0]
    with pytest.raises(ImageLoadError, match="corrupt_0003.png"):
        loader[1]


def test_skip_errors_counts_failures(tmp_path):
    ds = _dataset_with_a_corrupt_file(tmp_path)
    loader = DataLoader(ds, TinyConfig(), shuffle=False, skip_errors=True)
    batch = loader[1]
    np.testing.assert_array_equal(batch["input_image_meta"][:, 0], [2, 0])  # 3 fails, wraps to 0
    assert loader.errors == 1 and loader.failed_image_ids == {3}


def test_max_gt_instances_is_enforced():
    class TwoInstances(TinyConfig):
        MAX_GT_INSTANCES = 2

    ds = ShapesDataset.build(6, 64, 64, seed=2, min_shapes=4, max_shapes=4)
    batch = DataLoader(ds, TwoInstances())[0]
    assert batch["input_gt_class_ids"].shape == (2, 2)
    assert (batch["input_gt_class_ids"] > 0).all()


def test_no_augmentation_sources_are_honoured():
    ds = ShapesDataset.build(4, 64, 64, seed=0)
    seen = []

    def recording_aug(image, masks, seed):
        seen.append(True)
        return image, masks

    DataLoader(ds, TinyConfig(), augmentation=recording_aug, no_augmentation_sources=["shapes"])[0]
    assert not seen
    DataLoader(ds, TinyConfig(), augmentation=recording_aug)[0]
    assert len(seen) == 2
    seen.clear()
    gen = data_generator(ds, TinyConfig(), augmentation=recording_aug, no_augmentation_sources=["shapes"])
    next(gen)
    assert not seen


def _iterate_with_keras(loader, epochs):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(loader, shuffle=False)
    batches = []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        batches.extend(adapter.get_numpy_iterator())
        adapter.on_epoch_end()
    return batches


def test_two_worker_threads_finish_an_epoch_with_the_same_batches(shapes):
    config = TinyConfig()
    loader = DataLoader(shapes, config, augmentation=AUG, seed=3, workers=2)
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(batches=_iterate_with_keras(loader, 2)), daemon=True
    )
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "iteration with workers=2 did not finish"
    batches = result["batches"]
    assert len(batches) == 2 * len(loader)
    assert loader.epoch == 2
    reference = DataLoader(shapes, config, augmentation=AUG, seed=3)
    for i in range(len(loader)):
        np.testing.assert_array_equal(batches[i]["input_image"], reference[i]["input_image"])
        np.testing.assert_array_equal(batches[i]["input_rpn_match"], reference[i]["input_rpn_match"])


def test_data_generator_matches_matterports_layout(shapes):
    config = TinyConfig()
    np.random.seed(0)
    inputs, outputs = next(data_generator(shapes, config, batch_size=2, augmentation=AUG))
    assert outputs == []
    shapes_dtypes = [(x.shape, x.dtype) for x in inputs]
    assert shapes_dtypes == [
        ((2, 64, 64, 3), np.float32),
        ((2, config.IMAGE_META_SIZE), np.float32),
        ((2, ANCHORS_64, 1), np.int32),
        ((2, 64, 4), np.float32),
        ((2, 6), np.int32),
        ((2, 6, 4), np.int32),
        ((2, 16, 16, 6), bool),
    ]
    inputs, outputs = next(
        data_generator(shapes, config, batch_size=2, random_rois=40, detection_targets=True, shuffle=False)
    )
    assert inputs[7].shape == (2, 40, 4) and inputs[8].shape == (2, 16, 4)
    assert [o.shape for o in outputs] == [(2, 16, 1), (2, 16, 4, 4), (2, 16, 28, 28, 4)]


def test_data_generator_raises_after_repeated_errors(tmp_path):
    ds = ShapesDataset.build(2, 64, 64, seed=0)
    for info in ds.image_info:
        info["shapes"] = [("hexagon", (1, 2, 3), (30.0, 30.0), 5.0)]
    with pytest.raises(ValueError, match="hexagon"):
        next(data_generator(ds, TinyConfig()))
