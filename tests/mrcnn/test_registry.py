"""mrcnn.registry.Registry and the backbone registry: register, look up, unknown names listed, lazy entries."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from mrcnn.config import Config, ConfigError
from mrcnn.modeling.backbone import build_backbone
from mrcnn.modeling.registry import BACKBONES, BUILTIN_BACKBONES, register_backbone
from mrcnn.registry import Registry, UnknownNameError


def test_decorator_registers_and_get_returns_the_object():
    things = Registry("thing")

    @things.register("a")
    def a():
        return 1

    assert things.get("a") is a and "a" in things and list(things) == ["a"] and len(things) == 1
    things.register("a", a)  # the same object again (a module reloaded) is fine
    with pytest.raises(ValueError, match="already registered"):
        things.register("a", lambda: 2)
    b = things.register("a", lambda: 2, replace=True)
    assert things.get("a") is b
    things.unregister("a")
    assert "a" not in things


def test_unknown_name_lists_the_known_ones_and_the_hint():
    things = Registry("thing", hint="register one with things.register")
    things.register("alpha", 1)
    things.register("beta", 2)
    with pytest.raises(UnknownNameError) as info:
        things.get("gamma")
    message = str(info.value)
    assert "unknown thing 'gamma'" in message and "alpha, beta" in message and "things.register" in message
    assert isinstance(info.value, ValueError) and info.value.known == ("alpha", "beta")
    with pytest.raises(ValueError, match="non-empty str"):
        things.register("", 3)


def test_declared_entry_is_imported_on_first_use():
    things = Registry("thing")
    things.declare("dumps", "json:dumps")
    assert things.names() == ("dumps",)
    import json

    assert things.get("dumps") is json.dumps
    with pytest.raises(ValueError, match="module:attribute"):
        things.declare("x", "no_colon")


def test_one_list_of_backbones_and_config_checks_it_without_tensorflow():
    assert BACKBONES.names()[: len(BUILTIN_BACKBONES)] == tuple(BUILTIN_BACKBONES)
    code = (
        "import sys; from mrcnn.config import Config; from mrcnn.modeling.registry import BACKBONES\n"
        "Config(BACKBONE='se_resnet50', NUM_CLASSES=2)\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules, list(BACKBONES))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False False ['resnet50', 'resnet101', 'se_resnet50', 'se_resnet101', 'small'")


def test_unknown_backbone_in_config_names_the_known_ones():
    with pytest.raises(ConfigError, match="resnet152") as info:
        Config(BACKBONE="resnet152", NUM_CLASSES=2)
    assert all(name in str(info.value) for name in BUILTIN_BACKBONES)
    assert "register_backbone" in str(info.value)


def test_a_registered_backbone_is_chosen_by_name():
    calls = []

    @register_backbone("test_pool_net")
    def pool_net(input_image, stage5=True, train_bn=True):
        calls.append((stage5, train_bn))
        x = keras.layers.Conv2D(4, 1, name="test_pool_net_conv")(input_image)
        outs = [keras.layers.AveragePooling2D(s)(x) for s in (2, 4, 8, 16, 32)]
        return outs if stage5 else [*outs[:4], None]

    try:
        config = Config(BACKBONE="test_pool_net", NUM_CLASSES=2)  # a name, so it is recorded as text
        assert config.to_dict()["BACKBONE"] == "test_pool_net"
        image = keras.Input((64, 64, 3))
        c1, c2, c3, c4, c5 = build_backbone(image, config.BACKBONE, stage5=True, train_bn=False)
        assert calls == [(True, False)]
        assert [int(t.shape[1]) for t in (c2, c3, c4, c5)] == [16, 8, 4, 2]
        model = keras.Model(image, c5)
        assert model.predict(np.ones((1, 64, 64, 3), np.float32), verbose=0).shape == (1, 2, 2, 4)
    finally:
        BACKBONES.unregister("test_pool_net")
