"""Training speed: seconds per training step (median after warm-up) of ``MaskRCNN.train``'s step.

    python bench/train.py            # resnet50 and resnet101 at 512, batch 1 and 2, layers heads and all
    python bench/train.py --quick    # the tiny "small" backbone at 64x64: checks the bench runs (seconds)
    python bench/train.py --backbones resnet50 --batches 2 --layers all --mixed-precision mixed_bfloat16
    python bench/train.py --size 128 --backbones resnet101 --batches 1 --layers heads --rois 32  # vs the port

Each row builds a training model with random weights, trains on synthetic shapes (ShapesDataset) through the
same loader, train step and optimizer as ``MaskRCNN.train``, and times each step with a callback; the first
``--warmup`` steps (tracing, first allocations) are left out. Data loading runs in a worker thread, so the
step time includes waiting for data only when loading is the bottleneck.

The mask head runs on the positive ROIs only, so a step's cost grows as the RPN learns to propose boxes on
the objects (up to TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO rows); these random-weight models have few.

Issue #7 compares with the Matterport TF2 port: 0.46-0.72 s per heads step at 128x128, batch 1, on the
machine where a bare Keras ResNet101 forward pass at 512 took 0.25 s. The bench times that reference here
too, and prints the port's range scaled by (reference here) / 0.25 s next to the rows it applies to.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import argparse
import statistics
import tempfile
import time

import keras
from reference import ISSUE_BARE_R101_512, machine_factor

from mrcnn.config import Config, build_config
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.model import MaskRCNN
from mrcnn.testing import TINY_SETTINGS, tiny_config
from mrcnn.training import TrainingLoader, TrainingModel, make_optimizer, set_trainable

PORT_HEADS_STEP_128 = (0.46, 0.72)  # s/step, issue #7


def make_config(
    backbone: str, size: int, batch: int, mixed_precision: str | None, quick: bool, rois: int = 200
) -> Config:
    if quick:  # the tiny test model at 64x64 (its settings are in mrcnn.testing)
        return tiny_config(NAME="bench", IMAGES_PER_GPU=batch, MIXED_PRECISION=mixed_precision)
    attrs = dict(
        NAME="bench",
        NUM_CLASSES=1 + 3,
        BACKBONE=backbone,
        IMAGE_MIN_DIM=size,
        IMAGE_MAX_DIM=size,
        IMAGES_PER_GPU=batch,
        RPN_ANCHOR_SCALES=(16, 32, 64, 128, 256),
        MIXED_PRECISION=mixed_precision,
        TRAIN_ROIS_PER_IMAGE=rois,
    )
    if size <= 128:
        attrs.update(RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))  # Matterport's shapes example
    return build_config(Config, ("bench settings", attrs))


class StepTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each training step."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def time_training(config: Config, layers: str, warmup: int, steps: int) -> float:
    """Median seconds per step of ``steps`` training steps after ``warmup`` ones."""
    size = int(config.IMAGE_SHAPE[0])
    dataset = ShapesDataset.build(max(8, 2 * config.BATCH_SIZE), size, size, seed=0)
    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN("training", config, logs)
        set_trainable(model.keras_model, layers)
        total = warmup + steps
        loader = TrainingLoader(dataset, config, shuffle=True, workers=1, steps_per_epoch=total)
        with model.strategy.scope():
            trainer = TrainingModel(model.keras_model, config)
            trainer.compile(optimizer=make_optimizer(config, config.LEARNING_RATE), jit_compile=False)
        timer = StepTimer()
        trainer.fit(loader, epochs=1, steps_per_epoch=total, callbacks=[timer], verbose=0)
    return statistics.median(timer.times[warmup:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny 'small' backbone at 64x64, 1+2 steps")
    parser.add_argument("--backbones", default="resnet50,resnet101", help="comma-separated")
    parser.add_argument("--size", type=int, default=512, help="image side (multiple of 64)")
    parser.add_argument("--batches", default="1,2", help="comma-separated images per step")
    parser.add_argument("--layers", default="heads,all", help="comma-separated layer groups")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument(
        "--rois", type=int, default=200, help="TRAIN_ROIS_PER_IMAGE (Matterport's shapes: 32)"
    )
    parser.add_argument(
        "--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"], default=None, help="MIXED_PRECISION"
    )
    args = parser.parse_args(argv)
    backbones = args.backbones.split(",")
    size, warmup, steps = args.size, args.warmup, args.steps
    if args.quick:
        backbones, size, warmup, steps = ["small"], 64, 1, 2

    batches = [int(b) for b in args.batches.split(",")]
    layer_groups = args.layers.split(",")
    factor = None if args.quick else machine_factor()
    if factor is not None:
        low, high = (t * factor for t in PORT_HEADS_STEP_128)
        print(
            f"this machine: bare keras ResNet101 at 512 takes {factor:.2f}x issue #3's {ISSUE_BARE_R101_512} s; "
            f"the port's heads step at 128 px, batch 1, scaled to it: {low:.2f}-{high:.2f} s"
        )
    rois = TINY_SETTINGS["TRAIN_ROIS_PER_IMAGE"] if args.quick else args.rois
    print(f"seconds per training step (median of {steps} after {warmup} warm-up), {size}x{size}, rois {rois}")
    print(f"{'backbone':<10} {'layers':<6} {'batch':>5} {'s/step':>8} {'s/image':>8} {'x port (scaled)':>16}")
    for backbone in backbones:
        for layers in layer_groups:
            for batch in batches:
                config = make_config(backbone, size, batch, args.mixed_precision, args.quick, args.rois)
                seconds = time_training(config, layers, warmup, steps)
                versus = ""
                if factor is not None and size == 128 and layers == "heads" and batch == 1:
                    versus = f"{low / seconds:.2f}-{high / seconds:.2f}"
                print(
                    f"{backbone:<10} {layers:<6} {batch:>5} {seconds:>8.3f} {seconds / batch:>8.3f} {versus:>16}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
