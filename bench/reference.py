"""The speed reference shared by the benches: a bare ``keras.applications`` ResNet forward pass.

Issue #3 set its targets on a machine where a bare Keras ResNet101 forward at 512 took 0.25 s, and issue #7
quotes the Matterport TF2 port's times on that same machine. Timing that pass here, in the same run as our
figures, turns those numbers into this machine's terms: multiply them by :func:`machine_factor`.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

ISSUE_BARE_R101_512 = 0.25  # s, issue #3's machine


def time_backbone(backbone: str, size: int, repeats: int) -> float:
    """Median seconds of a bare keras.applications ResNet forward pass (batch 1) in a compiled tf.function."""
    build = {"resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101}[backbone]
    model = build(weights=None, include_top=False, input_shape=(size, size, 3))
    forward = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    forward(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_factor(repeats: int = 3, seconds: float | None = None) -> float:
    """(bare ResNet101 at 512 here) / issue #3's 0.25 s; ``seconds`` when already timed, else timed now."""
    if seconds is None:
        seconds = time_backbone("resnet101", 512, repeats)
    return seconds / ISSUE_BARE_R101_512
