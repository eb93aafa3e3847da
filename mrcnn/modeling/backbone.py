"""ResNet backbones (Matterport layout) with optional squeeze-and-excitation blocks, and a small CPU CNN.

Layer names follow Matterport / the original Caffe ResNet: ``conv1``, ``bn_conv1``,
``res{stage}{block}_branch2a|2b|2c``, ``res{stage}{block}_branch1`` (projection shortcut) and ``bn...`` for
their batch norms, so COCO/ImageNet weights load by name. SE variants add ``res{stage}{block}_se_*`` layers
that no Matterport file contains.

Each backbone is a builder ``f(input_image, stage5=True, train_bn=True) -> [C1, C2, C3, C4, C5]`` named as in
the backbone registry (:mod:`mrcnn.modeling.registry`, which lists them); :func:`build_backbone` looks
``Config.BACKBONE`` up there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keras import layers as KL

from mrcnn.modeling.layers import BatchNorm, FastConv2D
from mrcnn.modeling.registry import BACKBONES, register_backbone

__all__ = [
    "build_backbone",
    "conv_block",
    "identity_block",
    "register_backbone",
    "resnet101",
    "resnet50",
    "resnet_graph",
    "se_resnet101",
    "se_resnet50",
    "small",
    "small_cnn_graph",
]

SE_REDUCTION = 16


def _se_block(x, prefix: str):
    """Squeeze-and-excitation: x * sigmoid(W2 relu(W1 avgpool(x))), channels reduced by SE_REDUCTION."""
    channels = x.shape[-1]
    s = KL.GlobalAveragePooling2D(keepdims=True, name=prefix + "_se_pool")(x)
    s = KL.Dense(max(channels // SE_REDUCTION, 1), activation="relu", name=prefix + "_se_squeeze")(s)
    s = KL.Dense(channels, activation="sigmoid", name=prefix + "_se_excite")(s)
    return KL.Multiply(name=prefix + "_se_scale")([x, s])


def _residual_branch(
    x, kernel_size: int, filters: Sequence[int], prefix: str, strides, train_bn: bool, use_bias: bool = True
):
    """1x1 (strided) -> kxk -> 1x1 bottleneck; returns the branch before the add."""
    nb_filter1, nb_filter2, nb_filter3 = filters
    conv_name, bn_name = "res" + prefix + "_branch", "bn" + prefix + "_branch"
    x = FastConv2D(nb_filter1, (1, 1), strides=strides, name=conv_name + "2a", use_bias=use_bias)(x)
    x = BatchNorm(name=bn_name + "2a", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    x = FastConv2D(
        nb_filter2, (kernel_size, kernel_size), padding="same", name=conv_name + "2b", use_bias=use_bias
    )(x)
    x = BatchNorm(name=bn_name + "2b", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    x = FastConv2D(nb_filter3, (1, 1), name=conv_name + "2c", use_bias=use_bias)(x)
    return BatchNorm(name=bn_name + "2c", train_bn=train_bn)(x)


def identity_block(
    input_tensor,
    kernel_size: int,
    filters: Sequence[int],
    stage: int,
    block: str,
    train_bn=True,
    se=False,
    use_bias: bool = True,
):
    """Residual block whose shortcut is the identity. input_tensor: [B, H, W, filters[2]].

    use_bias: whether the convolutions have biases (Matterport's ResNet and its weights do).
    """
    prefix = str(stage) + block
    x = _residual_branch(input_tensor, kernel_size, filters, prefix, (1, 1), train_bn, use_bias)
    if se:
        x = _se_block(x, "res" + prefix)
    x = KL.Add()([x, input_tensor])
    return KL.Activation("relu", name="res" + prefix + "_out")(x)


def conv_block(
    input_tensor,
    kernel_size: int,
    filters: Sequence[int],
    stage: int,
    block: str,
    strides=(2, 2),
    train_bn=True,
    se=False,
    use_bias: bool = True,
):
    """Residual block with a strided 1x1 projection shortcut. Output: [B, H/s, W/s, filters[2]].

    use_bias: whether the convolutions have biases (Matterport's ResNet and its weights do).
    """
    prefix = str(stage) + block
    x = _residual_branch(input_tensor, kernel_size, filters, prefix, strides, train_bn, use_bias)
    shortcut = FastConv2D(
        filters[2], (1, 1), strides=strides, name="res" + prefix + "_branch1", use_bias=use_bias
    )(input_tensor)
    shortcut = BatchNorm(name="bn" + prefix + "_branch1", train_bn=train_bn)(shortcut)
    if se:
        x = _se_block(x, "res" + prefix)
    x = KL.Add()([x, shortcut])
    return KL.Activation("relu", name="res" + prefix + "_out")(x)


def _resnet(input_image, stage4_blocks: int, se: bool, stage5: bool, train_bn: bool) -> list:
    """A ResNet of 3, 4, ``stage4_blocks``, 3 bottleneck blocks (50 layers: 6, 101 layers: 23) on
    ``input_image`` [B, H, W, C], squeeze-and-excitation blocks when ``se``.

    Returns [C1, C2, C3, C4, C5] with strides 4, 4, 8, 16, 32 and 64, 256, 512, 1024, 2048 channels;
    C5 is None when ``stage5`` is False.
    """
    # Stage 1
    x = KL.ZeroPadding2D((3, 3))(input_image)
    x = FastConv2D(64, (7, 7), strides=(2, 2), name="conv1", use_bias=True)(x)
    x = BatchNorm(name="bn_conv1", train_bn=train_bn)(x)
    x = KL.Activation("relu")(x)
    C1 = x = KL.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
    # Stage 2
    x = conv_block(x, 3, [64, 64, 256], stage=2, block="a", strides=(1, 1), train_bn=train_bn, se=se)
    x = identity_block(x, 3, [64, 64, 256], stage=2, block="b", train_bn=train_bn, se=se)
    C2 = x = identity_block(x, 3, [64, 64, 256], stage=2, block="c", train_bn=train_bn, se=se)
    # Stage 3
    x = conv_block(x, 3, [128, 128, 512], stage=3, block="a", train_bn=train_bn, se=se)
    for block in "bcd":
        x = identity_block(x, 3, [128, 128, 512], stage=3, block=block, train_bn=train_bn, se=se)
    C3 = x
    # Stage 4: blocks a, b, c, ... (resnet101: a..w)
    x = conv_block(x, 3, [256, 256, 1024], stage=4, block="a", train_bn=train_bn, se=se)
    for i in range(stage4_blocks - 1):
        x = identity_block(x, 3, [256, 256, 1024], stage=4, block=chr(98 + i), train_bn=train_bn, se=se)
    C4 = x
    # Stage 5
    C5 = None
    if stage5:
        x = conv_block(x, 3, [512, 512, 2048], stage=5, block="a", train_bn=train_bn, se=se)
        x = identity_block(x, 3, [512, 512, 2048], stage=5, block="b", train_bn=train_bn, se=se)
        C5 = identity_block(x, 3, [512, 512, 2048], stage=5, block="c", train_bn=train_bn, se=se)
    return [C1, C2, C3, C4, C5]


def resnet50(input_image, stage5: bool = True, train_bn: bool = True) -> list:
    """ResNet-50 (3, 4, 6, 3 blocks); see :func:`_resnet` for the outputs."""
    return _resnet(input_image, 6, False, stage5, train_bn)


def resnet101(input_image, stage5: bool = True, train_bn: bool = True) -> list:
    """ResNet-101 (3, 4, 23, 3 blocks); see :func:`_resnet` for the outputs."""
    return _resnet(input_image, 23, False, stage5, train_bn)


def se_resnet50(input_image, stage5: bool = True, train_bn: bool = True) -> list:
    """ResNet-50 with a squeeze-and-excitation block in every residual block."""
    return _resnet(input_image, 6, True, stage5, train_bn)


def se_resnet101(input_image, stage5: bool = True, train_bn: bool = True) -> list:
    """ResNet-101 with a squeeze-and-excitation block in every residual block."""
    return _resnet(input_image, 23, True, stage5, train_bn)


def resnet_graph(input_image, architecture: str, stage5: bool = True, train_bn: bool = True) -> list:
    """Build the registered backbone ``architecture`` ("resnet50", "resnet101", "se_resnet50",
    "se_resnet101", or any other name in :data:`mrcnn.modeling.registry.BACKBONES`) on ``input_image``.

    Returns [C1, C2, C3, C4, C5]; C5 is None when ``stage5`` is False. An unknown name raises
    :class:`mrcnn.registry.UnknownNameError` (a ValueError) listing the known ones.
    """
    return list(BACKBONES.get(architecture)(input_image, stage5=stage5, train_bn=train_bn))


SMALL_WIDTHS = (16, 32, 64, 96, 128)


def small_cnn_graph(input_image, stage5: bool = True, train_bn: bool = True, widths=SMALL_WIDTHS) -> list:
    """A small CNN that stands in for ResNet where there is no GPU and no pretrained weights (``BACKBONE="small"``).

    Five stages of two 3x3 convolutions (the first strided), BatchNorm and ReLU, layer names ``small{i}_*``.
    Returns [C1..C5] at strides 2, 4, 8, 16, 32 with ``widths`` channels: the FPN strides of ResNet, so the
    rest of the network is unchanged. It trains from scratch in minutes on a CPU; use it for tests, demos and
    the shipped sample, not for real data.
    """
    outputs = []
    x = input_image
    for i, filters in enumerate(widths, start=1):
        x = FastConv2D(filters, 3, strides=2, padding="same", name=f"small{i}_conv")(x)
        x = BatchNorm(name=f"small{i}_bn", train_bn=train_bn)(x)
        x = KL.Activation("relu")(x)
        x = FastConv2D(filters, 3, padding="same", name=f"small{i}_conv2")(x)
        x = BatchNorm(name=f"small{i}_bn2", train_bn=train_bn)(x)
        x = KL.Activation("relu")(x)
        outputs.append(x)
    return outputs


def small(input_image, stage5: bool = True, train_bn: bool = True) -> list:
    """The ``"small"`` backbone: :func:`small_cnn_graph` at its default widths."""
    return small_cnn_graph(input_image, stage5=stage5, train_bn=train_bn)


def build_backbone(
    input_image, backbone: str | Callable = "resnet101", stage5: bool = True, train_bn: bool = True
) -> list:
    """[C1..C5] of ``backbone`` (Config.BACKBONE) on ``input_image`` [B, H, W, C].

    backbone: a registered name (see :mod:`mrcnn.modeling.registry`: "resnet50", "resnet101", "se_resnet50",
        "se_resnet101", "small" and any registered with ``register_backbone``), or a callable
        ``f(input_image, stage5=..., train_bn=...) -> [C1, C2, C3, C4, C5]``. A model built with a callable
        saves to ``.keras`` when the layers it creates are Keras' own or registered serialisable classes.
    stage5: build the last stage (C5 is None otherwise). train_bn: see :class:`BatchNorm` (Config.TRAIN_BN).
    """
    builder = backbone if callable(backbone) else BACKBONES.get(backbone)
    return list(builder(input_image, stage5=stage5, train_bn=train_bn))
