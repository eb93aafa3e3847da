"""Inference speed: median seconds per image of ``MaskRCNN.detect`` (model build and first call excluded).

    python bench/inference.py                 # the full table (several minutes on 2 CPU cores)
    python bench/inference.py --only r50-512  # one row

Weights are random and DETECTION_MIN_CONFIDENCE is 0, so every image yields DETECTION_MAX_INSTANCES real
detections: the worst case for the mask head (which runs on real detections only) and for unmolding.
Absolute seconds depend on the machine; the "x backbone" column divides by a bare forward pass of the same
ResNet (C1..C5, no FPN or heads) at the same size, timed in the same run.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import argparse
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.modeling.backbone import resnet_graph

# name: backbone, image size, anchor scales
SETUPS = {
    "r50-512": ("resnet50", 512, (16, 32, 64, 128, 256)),
    "r101-512": ("resnet101", 512, (16, 32, 64, 128, 256)),
    "r101-1024": ("resnet101", 1024, (32, 64, 128, 256, 512)),
}


def make_config(backbone: str, size: int, scales, max_instances: int, batch: int) -> Config:
    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 1 + 11
        BACKBONE = backbone
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        RPN_ANCHOR_SCALES = scales
        IMAGES_PER_GPU = batch
        DETECTION_MAX_INSTANCES = max_instances
        DETECTION_MIN_CONFIDENCE = 0.0

    return BenchConfig()


def time_detect(setup: str, max_instances: int, batch: int, repeats: int) -> float:
    backbone, size, scales = SETUPS[setup]
    config = make_config(backbone, size, scales, max_instances, batch)
    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN("inference", config, logs)
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 255, (size * 3 // 4, size, 3), dtype=np.uint8) for _ in range(batch)]
        model.detect(images)  # build and trace
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.detect(images)
            times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def time_backbone(backbone: str, size: int, repeats: int) -> float:
    """Median seconds of a bare ResNet forward pass (batch 1) in a compiled tf.function."""
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, resnet_graph(inputs, backbone, stage5=True, train_bn=False)[-1])
    forward = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    forward(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(SETUPS), help="time a single backbone/size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    parser.add_argument(
        "--instances", default="100,10", help="comma-separated DETECTION_MAX_INSTANCES values"
    )
    args = parser.parse_args(argv)
    setups = [args.only] if args.only else list(SETUPS)
    batches = [int(b) for b in args.batches.split(",")]
    instances = [int(n) for n in args.instances.split(",")]

    print(f"{'setup':<11} {'max inst':>8} {'batch':>5} {'s/image':>8} {'x backbone':>10}")
    for setup in setups:
        backbone, size, _ = SETUPS[setup]
        reference = time_backbone(backbone, size, args.repeats)
        print(f"{setup:<11} {'bare ' + backbone:>23} {reference:>8.3f} {1.0:>10.2f}", flush=True)
        for n in instances:
            for batch in batches:
                seconds = time_detect(setup, n, batch, args.repeats)
                print(
                    f"{setup:<11} {n:>8} {batch:>5} {seconds:>8.3f} {seconds / reference:>10.2f}", flush=True
                )


if __name__ == "__main__":
    main()
