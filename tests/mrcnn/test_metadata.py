"""Self-describing checkpoints (mrcnn.metadata): what every .h5 we write says about itself."""

import h5py
import numpy as np
import pytest

import mrcnn
from mrcnn import model as modellib
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.metadata import CheckpointMetadata, read_metadata
from mrcnn.testing import tiny_config
from mrcnn.weights import read_layout, save_weights_h5

NAMES = ["BG", "square, box", "circle", "triangle"]


@pytest.fixture(scope="module")
def inference_model(tmp_path_factory):
    model = modellib.MaskRCNN(
        "inference",
        tiny_config(IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0),
        str(tmp_path_factory.mktemp("m")),
    )
    model.class_names = list(NAMES)
    model.class_source_ids = [0, 11, 12, 13]
    model.checkpoint_fields = {"preset": "tiny", "dataset_format": "coco"}
    return model


def test_saved_file_carries_metadata_as_root_attributes(tmp_path, inference_model):
    path = str(tmp_path / "w.h5")
    inference_model.save_weights(path)
    with h5py.File(path, "r") as f:  # readable by any HDF5 tool, Keras-2's attributes untouched
        assert [n.decode() for n in f.attrs["class_names"]] == NAMES
        assert int(f.attrs["num_classes"]) == 4
        assert f.attrs["backbone"] == "small"
        assert f.attrs["image_resize_mode"] == "square" and int(f.attrs["image_max_dim"]) == 64
        assert f.attrs["preset"] == "tiny" and f.attrs["package_version"] == mrcnn.__version__
        assert "layer_names" in f.attrs and f.attrs["backend"] in ("tensorflow", b"tensorflow")
    meta = read_metadata(path)
    assert meta.class_names == NAMES and meta.class_source_ids == [0, 11, 12, 13]
    assert meta.num_classes == 4 and meta.backbone == "small" and meta.dataset_format == "coco"
    assert meta.config["NUM_CLASSES"] == 4 and meta.config["BACKBONE"] == "small"
    # The weight groups are exactly those of a file written without metadata.
    plain = str(tmp_path / "plain.h5")
    save_weights_h5(inference_model.keras_model, plain)
    assert read_metadata(plain) is None
    assert read_layout(path) == read_layout(plain)


def test_load_weights_exposes_class_names_and_from_checkpoint_rebuilds(tmp_path, inference_model):
    path = str(tmp_path / "w.h5")
    inference_model.save_weights(path)
    other = modellib.MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=1), str(tmp_path))
    assert other.class_names is None
    other.load_weights(path, by_name=True)
    assert other.class_names == NAMES and other.checkpoint_metadata.preset == "tiny"

    rebuilt = modellib.MaskRCNN.from_checkpoint(path, model_dir=str(tmp_path))
    assert rebuilt.class_names == NAMES and rebuilt.config.BACKBONE == "small"
    assert rebuilt.config.DETECTION_MIN_CONFIDENCE == 0.0  # the recorded settings, not the defaults
    image = ShapesDataset.build(1, 64, 64, seed=2).load_image(0)
    a, b = inference_model.detect([image])[0], rebuilt.detect([image])[0]
    np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-6)


def test_file_without_metadata(tmp_path, inference_model):
    plain = str(tmp_path / "plain.h5")
    save_weights_h5(inference_model.keras_model, plain)
    model = modellib.MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=1), str(tmp_path))
    model.load_weights(plain, by_name=True)
    assert model.class_names is None and model.checkpoint_metadata is None
    with pytest.raises(ValueError, match="does not record its config"):
        modellib.MaskRCNN.from_checkpoint(plain)


def test_long_name_lists_round_trip(tmp_path, inference_model):
    names = ["BG"] + [f"attribute number {i} with a long descriptive name" for i in range(3000)]
    meta = CheckpointMetadata.from_config(inference_model.config, attribute_names=names)
    path = str(tmp_path / "long.h5")
    save_weights_h5(inference_model.keras_model, path, metadata=meta)
    assert read_metadata(path).attribute_names == names


def test_training_checkpoints_record_the_dataset_classes_and_epoch(tmp_path):
    config = tiny_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    dataset = ShapesDataset.build(2, 64, 64, seed=1)
    model.train(dataset, None, learning_rate=0.001, epochs=1, layers="heads", workers=1, verbose=0)
    meta = read_metadata(model.find_last())
    assert meta.class_names == [c["name"] for c in dataset.class_info]
    assert meta.epoch == 1 and meta.num_classes == config.NUM_CLASSES


def test_a_folder_is_not_a_weights_file(tmp_path, inference_model):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        inference_model.load_weights(str(tmp_path))
