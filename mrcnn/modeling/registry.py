"""The backbone registry: ``Config.BACKBONE`` names -> builders. Imports no TensorFlow.

A builder is ``f(input_image, stage5=True, train_bn=True) -> [C1, C2, C3, C4, C5]``: ``input_image`` is
``[B, H, W, C]``; C2..C5 must have strides 4, 8, 16, 32 (``Config.BACKBONE_STRIDES`` without P6's 64), C5 may
be None when ``stage5`` is False, C1 is not used by Mask R-CNN. ``train_bn`` is ``Config.TRAIN_BN`` (see
:class:`mrcnn.modeling.layers.BatchNorm`).

The built-in backbones below are declared by name and imported from :mod:`mrcnn.modeling.backbone` on first
use, so ``Config`` validates ``BACKBONE`` against this table without loading Keras. Register your own::

    from mrcnn.modeling.registry import register_backbone

    @register_backbone("my_net")
    def my_net(input_image, stage5=True, train_bn=True):
        ...
        return [c1, c2, c3, c4, c5]

    class MyConfig(Config):
        BACKBONE = "my_net"        # a name: recorded in checkpoints and config.json like the built-ins

The module that registers it must be imported before a config naming it is made (and in any process that
rebuilds such a model from a checkpoint). A model saves to ``.keras`` when the layers the builder creates are
Keras' own or registered serialisable classes. Matterport's way, a callable ``BACKBONE`` with
``COMPUTE_BACKBONE_SHAPE``, works too.
"""

from __future__ import annotations

from collections.abc import Callable

from mrcnn.registry import Registry

__all__ = ["BACKBONES", "BUILTIN_BACKBONES", "register_backbone"]

BACKBONES: Registry[Callable] = Registry(
    "backbone", hint="or register one with mrcnn.modeling.registry.register_backbone(name)"
)

# The built-in backbones, the one list of them: name -> what it is. Each builder is the function of the same
# name in mrcnn.modeling.backbone.
BUILTIN_BACKBONES = {
    "resnet50": "ResNet-50 in Matterport's layer names (COCO and ImageNet weights load)",
    "resnet101": "ResNet-101 in Matterport's layer names (COCO and ImageNet weights load)",
    "se_resnet50": "ResNet-50 with squeeze-and-excitation blocks (the non-SE layers load from ResNet-50 files)",
    "se_resnet101": "ResNet-101 with squeeze-and-excitation blocks (the non-SE layers load from ResNet-101 files)",
    "small": "a five-stage CNN for CPUs, tests and the shipped sample (no pretrained weights)",
}
for _name in BUILTIN_BACKBONES:
    BACKBONES.declare(_name, f"mrcnn.modeling.backbone:{_name}")


def register_backbone(name: str, builder: Callable | None = None, *, replace: bool = False):
    """Register ``builder`` as the backbone ``name`` (``Config.BACKBONE = name``); a decorator without it."""
    return BACKBONES.register(name, builder, replace=replace)
