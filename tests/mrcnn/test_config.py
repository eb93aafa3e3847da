import json

import numpy as np
import pytest

from mrcnn.config import Config, ConfigError


class ShapesConfig(Config):
    NAME = "shapes"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 3
    GPU_COUNT = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128


def test_derived_values():
    config = ShapesConfig()
    assert config.BATCH_SIZE == 6
    assert config.IMAGE_SHAPE.tolist() == [128, 128, 3]
    assert config.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 4


def test_matterport_defaults():
    config = ShapesConfig()
    assert config.BACKBONE == "resnet101"
    assert config.BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    assert config.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert config.POST_NMS_ROIS_TRAINING == 2000 and config.POST_NMS_ROIS_INFERENCE == 1000
    assert config.MINI_MASK_SHAPE == (56, 56) and config.MASK_SHAPE == [28, 28]
    assert config.DETECTION_MIN_CONFIDENCE == 0.7 and config.GRADIENT_CLIP_NORM == 5.0
    np.testing.assert_allclose(config.MEAN_PIXEL, [123.7, 116.8, 103.9])
    assert set(config.LOSS_WEIGHTS) == {
        "rpn_class_loss",
        "rpn_bbox_loss",
        "mrcnn_class_loss",
        "mrcnn_bbox_loss",
        "mrcnn_mask_loss",
    }


def test_crop_mode_uses_min_dim():
    class CropConfig(ShapesConfig):
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 64

    assert CropConfig().IMAGE_SHAPE.tolist() == [64, 64, 3]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"NUM_CLASSES": 1}, "NUM_CLASSES"),
        ({"IMAGE_MIN_DIM": 100, "IMAGE_MAX_DIM": 100}, "divisible by 64"),
        ({"BACKBONE": "vgg16"}, "BACKBONE"),
        ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE"),
        ({"RPN_ANCHOR_SCALES": (32, 64)}, "RPN_ANCHOR_SCALES"),
        ({"LOSS_WEIGHTS": {"rpn_class_loss": 1.0}}, "LOSS_WEIGHTS"),
        ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE"),
        ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU"),
        ({"DETECTION_MIN_CONFIDENCE": 1.5}, "DETECTION_MIN_CONFIDENCE"),
    ],
)
def test_validation_names_the_setting(override, message):
    bad = type("BadConfig", (ShapesConfig,), override)
    with pytest.raises(ConfigError, match=message):
        bad()


def test_callable_backbone_needs_shape_function():
    bad = type(
        "BadConfig", (ShapesConfig,), {"BACKBONE": staticmethod(lambda x, stage5=True, train_bn=False: x)}
    )
    with pytest.raises(ConfigError, match="COMPUTE_BACKBONE_SHAPE"):
        bad()


def test_json_round_trip(tmp_path):
    config = ShapesConfig()
    path = tmp_path / "config.json"
    text = config.to_json(str(path))
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert data["NAME"] == "shapes" and data["BATCH_SIZE"] == 6

    restored = Config.from_json(str(path))
    assert restored.to_dict() == config.to_dict()
    assert isinstance(restored.MEAN_PIXEL, np.ndarray)
    assert restored.RPN_ANCHOR_SCALES == config.RPN_ANCHOR_SCALES
    # JSON text works as well as a path
    assert Config.from_json(text).to_dict() == config.to_dict()


def test_from_dict_rejects_unknown_setting():
    data = ShapesConfig().to_dict()
    data["NOT_A_SETTING"] = 3
    with pytest.raises(ConfigError, match="NOT_A_SETTING"):
        Config.from_dict(data)


def test_display_prints_every_setting(capsys):
    ShapesConfig().display()
    out = capsys.readouterr().out
    for name in ("BATCH_SIZE", "IMAGE_SHAPE", "LOSS_WEIGHTS", "WEIGHT_DECAY"):
        assert name in out


def test_callable_backbone_stays_unbound():
    def backbone(input_image, stage5=True, train_bn=False):
        return input_image

    def shapes(image_shape):
        return [[1, 1]]

    class CallableConfig(ShapesConfig):
        BACKBONE = backbone
        COMPUTE_BACKBONE_SHAPE = shapes

    config = CallableConfig()
    assert config.BACKBONE("x") == "x"
    assert config.COMPUTE_BACKBONE_SHAPE((64, 64)) == [[1, 1]]
    assert config.to_dict()["BACKBONE"].endswith("backbone")


def test_build_config_applies_sources_in_order_and_records_origins():
    from mrcnn.config import build_config

    config = build_config(
        ShapesConfig,
        ("preset x", {"NAME": "preset_name", "STEPS_PER_EPOCH": 5}),
        ("--name", {"NAME": "run1"}),
    )
    assert type(config) is ShapesConfig  # no class made at run time
    assert config.NAME == "run1" and config.STEPS_PER_EPOCH == 5 and config.BATCH_SIZE == 6
    assert config.origin("NAME") == "--name" and config.origin("STEPS_PER_EPOCH") == "preset x"
    assert config.origin("NUM_CLASSES") == "class ShapesConfig"
    assert config.origin("LEARNING_RATE") == "class Config" and config.origin("BATCH_SIZE") == "derived"
    assert "run1" in config.describe() and "[--name]" in config.describe()
    assert ShapesConfig.NAME == "shapes"  # the class is untouched
    with pytest.raises(ConfigError, match="NOPE.*from typo"):
        build_config(ShapesConfig, ("typo", {"NOPE": 1}))
    with pytest.raises(ConfigError, match="BATCH_SIZE is derived"):
        build_config(ShapesConfig, ("x", {"BATCH_SIZE": 3}))
    with pytest.raises(ConfigError, match="IMAGES_PER_GPU"):
        build_config(ShapesConfig, ("x", {"IMAGES_PER_GPU": 0}))


def test_settings_as_arguments_and_from_dict_origin():
    config = ShapesConfig(NUM_CLASSES=7)
    assert config.NUM_CLASSES == 7 and config.origin("NUM_CLASSES") == "argument"
    assert config.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 7
    restored = Config.from_dict(config.to_dict(), source="checkpoint a.h5")
    assert restored.to_dict() == config.to_dict() and restored.origin("NUM_CLASSES") == "checkpoint a.h5"
