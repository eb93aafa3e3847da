"""Feature Pyramid Network top-down pathway (Matterport layer names)."""

from __future__ import annotations

from keras import layers as KL

from mrcnn.modeling.layers import FastConv2D


def fpn_graph(C2, C3, C4, C5, pyramid_size: int = 256) -> list:
    """Top-down FPN over backbone stages C2..C5 ([B, H/4, W/4, *] ... [B, H/32, W/32, *]).

    Returns [P2, P3, P4, P5, P6], each with ``pyramid_size`` channels and strides 4, 8, 16, 32, 64.
    P6 is P5 subsampled by 2 (used by the RPN only).
    """
    P5 = FastConv2D(pyramid_size, (1, 1), name="fpn_c5p5")(C5)
    P4 = KL.Add(name="fpn_p4add")(
        [
            KL.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(P5),
            FastConv2D(pyramid_size, (1, 1), name="fpn_c4p4")(C4),
        ]
    )
    P3 = KL.Add(name="fpn_p3add")(
        [
            KL.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(P4),
            FastConv2D(pyramid_size, (1, 1), name="fpn_c3p3")(C3),
        ]
    )
    P2 = KL.Add(name="fpn_p2add")(
        [
            KL.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(P3),
            FastConv2D(pyramid_size, (1, 1), name="fpn_c2p2")(C2),
        ]
    )
    # 3x3 convs smooth the aliasing of the upsampling.
    P2 = FastConv2D(pyramid_size, (3, 3), padding="same", name="fpn_p2")(P2)
    P3 = FastConv2D(pyramid_size, (3, 3), padding="same", name="fpn_p3")(P3)
    P4 = FastConv2D(pyramid_size, (3, 3), padding="same", name="fpn_p4")(P4)
    P5 = FastConv2D(pyramid_size, (3, 3), padding="same", name="fpn_p5")(P5)
    P6 = KL.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(P5)
    return [P2, P3, P4, P5, P6]
