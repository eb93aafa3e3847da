import pytest

from fashion.config import PRESETS, FashionConfig, make_config
from mrcnn.config import Config


def test_thesis001_matches_appendix_b_and_section_4():
    c = make_config("thesis001")
    assert isinstance(c, FashionConfig) and isinstance(c, Config)
    assert c.BACKBONE == "resnet101"
    assert c.IMAGE_SHAPE.tolist() == [512, 512, 3] and c.IMAGE_RESIZE_MODE == "square"
    assert tuple(c.RPN_ANCHOR_SCALES) == (16, 32, 64, 128, 256)
    assert c.IMAGES_PER_GPU == 2 and c.BATCH_SIZE == 2
    assert c.NUM_CLASSES == 12  # 11-class full set + background
    assert c.DETECTION_MAX_INSTANCES == 100
    assert c.LEARNING_MOMENTUM == 0.9 and c.WEIGHT_DECAY == 0.0001 and c.GRADIENT_CLIP_NORM == 5.0
    inference = make_config("thesis001", inference=True)
    assert inference.DETECTION_MAX_INSTANCES == 10 and inference.BATCH_SIZE == 1


def test_thesis000_and_deck002():
    c = make_config("thesis000")
    assert c.BACKBONE == "se_resnet101" and c.NUM_CLASSES == 14 and c.STEPS_PER_EPOCH == 400
    assert PRESETS["thesis000"].cap == 10000 and PRESETS["thesis000"].fmt == "deepfashion2"
    d = make_config("deck002")
    assert d.BACKBONE == "resnet50" and d.NUM_CLASSES == 47 and d.DETECTION_MAX_INSTANCES == 50
    assert d.LOSS_WEIGHTS == {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 0.8,
        "mrcnn_class_loss": 6.0,
        "mrcnn_bbox_loss": 6.0,
        "mrcnn_mask_loss": 6.0,
    }


def test_overrides_and_class_count():
    c = make_config("tiny", num_classes=6, STEPS_PER_EPOCH=7, NAME="x")
    assert (
        c.NUM_CLASSES == 6
        and c.STEPS_PER_EPOCH == 7
        and c.NAME == "x"
        and c.IMAGE_SHAPE.tolist() == [128, 128, 3]
    )
    assert c.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 6
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds(name):
    assert make_config(name).NAME == "fashion"
    assert make_config(name, inference=True).IMAGES_PER_GPU == 1


def test_settings_say_where_they_come_from():
    config = make_config("sample", num_classes=4, inference=True, NAME="run")
    assert config.origin("BACKBONE") == "preset sample"
    assert config.origin("NUM_CLASSES") == "num_classes argument"
    assert config.origin("DETECTION_MIN_CONFIDENCE") == "preset sample inference"
    assert config.origin("IMAGES_PER_GPU") == "inference: one image per batch"
    assert config.origin("NAME") == "override" and config.origin("LEARNING_RATE") == "class Config"
    assert type(config) is FashionConfig
    counted = make_config("thesis001")
    assert counted.origin("NUM_CLASSES").startswith("preset thesis001 classes")


def test_tiny_is_a_test_preset_registered_by_fashion_testing():
    import subprocess
    import sys

    code = (
        "import fashion.config as c, fashion.schedules as s; before = sorted(c.PRESETS), 'tiny' in s.SCHEDULES; "
        "import fashion.testing; print(before, 'tiny' in c.PRESETS, 'tiny' in s.SCHEDULES)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(['deck002', 'sample', 'thesis000', 'thesis001'], False) True True"


def test_register_preset_refuses_to_replace_silently():
    from fashion.config import Preset, register_preset

    other = Preset("sample", "another sample", config={})
    with pytest.raises(ValueError, match="already registered"):
        register_preset(other)
    assert PRESETS["sample"].description != "another sample"
