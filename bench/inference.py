"""Inference speed: median seconds per image of ``MaskRCNN.detect`` (model build and first call excluded).

    python bench/inference.py                 # the full table (long on 2 CPU cores)
    python bench/inference.py --only r101-512 --instances 100 --batches 1,4 --precisions float32,bfloat16
    python bench/inference.py --only r101-512 --instances 100 --batches 1 --rois 1000,500,300

Weights are random and DETECTION_MIN_CONFIDENCE is 0, so every image yields DETECTION_MAX_INSTANCES real
detections: the worst case for the mask head (which runs on real detections only) and for unmolding. The
"det/img" column gives the detections actually made; "cpu s/img" the CPU seconds this process used per image
(all threads), which other load on the machine inflates less than the wall-clock seconds.

Every row is timed at each precision of ``--precisions`` (default float32 and bfloat16, and float16 when a
GPU is visible) on the same weights; "x f32" is the float32 row's seconds over this row's (higher is faster).
The first lines give the CPU, its flags and whether bfloat16 has hardware support here: without AMX or
AVX512-BF16 TensorFlow emulates it and bfloat16 is slower than float32, as expected.

Absolute seconds depend on the machine, so every figure is also given relative to a reference timed in the
same run: "x backbone" divides by a bare ``keras.applications`` ResNet forward pass (no top, batch 1, float32)
at the same size, the reference issue #3 measured (ResNet101 at 512: 0.25 s on the machine its targets were
set on). "target here" is that issue's target scaled by this machine's speed, i.e. multiplied by (bare
ResNet101 at 512 here) / 0.25 s. "GMAC" counts the multiply-adds of the convolutions and matmuls per image
(backbone, FPN, RPN over all levels, classifier on POST_NMS_ROIS_INFERENCE ROIs, mask head on the
detections), the floor of the work the architecture asks for; "x bb GMAC" divides it by the bare backbone's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import pathlib
import sys

# This checkout's packages, not an installed copy's (the script's folder, bench/, comes first on the path).
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))

import argparse
import statistics
import tempfile
import time

import keras
import numpy as np
from reference import ISSUE_BARE_R101_512, machine_factor, time_backbone

from mrcnn.anchors import compute_backbone_shapes
from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.modeling.backbone import resnet_graph
from mrcnn.precision import CHOICES, gpu_info, resolve_precision
from mrcnn.runtime import cpu_info, describe_runtime, has_bf16_hardware, onednn_enabled

# Issue #3's targets (s/image, 100 instances) on its machine.
ISSUE_TARGETS = {"r50-512": 0.25, "r101-512": 0.40, "r101-1024": 1.1}

# name: backbone, image size, anchor scales
SETUPS = {
    "r50-512": ("resnet50", 512, (16, 32, 64, 128, 256)),
    "r101-512": ("resnet101", 512, (16, 32, 64, 128, 256)),
    "r101-1024": ("resnet101", 1024, (32, 64, 128, 256, 512)),
}


def make_config(
    backbone: str,
    size: int,
    scales,
    max_instances: int,
    batch: int,
    precision: str = "float32",
    rois: int = 1000,
) -> Config:
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
        MIXED_PRECISION = precision
        POST_NMS_ROIS_INFERENCE = rois

    return BenchConfig()


def time_detect(config: Config, weights: list, repeats: int) -> tuple[float, float, float]:
    """(median wall seconds per image, median CPU seconds per image of this process, mean detections per
    image) of ``detect`` on a batch of random images."""
    size = int(config.IMAGE_MAX_DIM)
    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN("inference", config, logs)
        model.keras_model.set_weights(weights)
        rng = np.random.default_rng(0)
        images = [
            rng.integers(0, 255, (size * 3 // 4, size, 3), dtype=np.uint8) for _ in range(config.BATCH_SIZE)
        ]
        results = model.detect(images)  # build and trace
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.detect(images)
            wall.append((time.perf_counter() - start) / config.BATCH_SIZE)
            cpu.append((time.process_time() - start_cpu) / config.BATCH_SIZE)
    detections = float(np.mean([len(r["scores"]) for r in results]))
    return statistics.median(wall), statistics.median(cpu), detections


def random_weights(config: Config) -> list:
    """The initial (random) weights of a float32 model of ``config``, to give every precision the same."""
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as logs:
        return MaskRCNN("inference", config, logs).keras_model.get_weights()


def default_precisions() -> str:
    """float32 and bfloat16, and float16 when a GPU is visible (TensorFlow's CPU float16 kernels are slow)."""
    return "float32,bfloat16,float16" if gpu_info() else "float32,bfloat16"


def print_machine(precisions: list[str]) -> None:
    """The CPU (model, flags that matter for precision), oneDNN, GPUs, and what each precision runs on."""
    info = cpu_info()
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
    flags = " ".join(f for f in wanted if f in info.flags) or "none of " + " ".join(wanted)
    print(describe_runtime())
    print(f"CPU flags found: {flags}; oneDNN {'on' if onednn_enabled() else 'off'}")
    if "bfloat16" in precisions and not gpu_info() and not has_bf16_hardware(info):
        print("bfloat16: emulated: no AMX / AVX512-BF16 here (slower than float32 here, which is expected)")
    for name in precisions:
        if name != "float32":
            print(f"{name}: {resolve_precision(name)[1]}")


def _conv_gmacs(model: keras.Model) -> float:
    """Multiply-adds (1e9) of the Conv2D layers of a model built on a fixed-size input."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += h * w * kh * kw * cin * cout
    return total / 1e9


def backbone_gmacs(backbone: str, size: int) -> float:
    inputs = keras.Input((size, size, 3), batch_size=1)
    return _conv_gmacs(keras.Model(inputs, resnet_graph(inputs, backbone, stage5=True, train_bn=False)[-1]))


def mask_rcnn_gmacs(config: Config, detections: int, backbone: float) -> float:
    """Multiply-adds (1e9) per image of the inference graph with ``detections`` real detections, given the
    ``backbone``'s (from :func:`backbone_gmacs`)."""
    c = config.TOP_DOWN_PYRAMID_SIZE
    classes = config.NUM_CLASSES
    anchors = len(config.RPN_ANCHOR_RATIOS)
    total = backbone * 1e9
    levels = compute_backbone_shapes(config, config.IMAGE_SHAPE)  # P2..P6
    backbone_channels = (256, 512, 1024, 2048)
    for (h, w), cin in zip(levels[:4], backbone_channels):
        total += h * w * (cin * c + 9 * c * c)  # FPN lateral 1x1 and output 3x3
    for h, w in levels:
        total += h * w * (9 * c * 512 + 512 * 6 * anchors)  # RPN shared 3x3, class and box 1x1
    pool, fc = config.POOL_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE
    total += config.POST_NMS_ROIS_INFERENCE * (pool * pool * c * fc + fc * fc + fc * classes * 5)
    m = config.MASK_POOL_SIZE
    per_mask = 4 * m * m * 9 * c * 256 + m * m * 256 * 256 * 4 + (2 * m) ** 2 * 256 * classes
    total += detections * per_mask
    return total / 1e9


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
    parser.add_argument(
        "--precisions",
        default=None,
        help=f"comma-separated, of {', '.join(CHOICES)} (default: float32,bfloat16, and float16 with a GPU)",
    )
    parser.add_argument("--rois", default="1000", help="comma-separated POST_NMS_ROIS_INFERENCE values")
    args = parser.parse_args(argv)
    setups = [args.only] if args.only else list(SETUPS)
    batches = [int(b) for b in args.batches.split(",")]
    instances = [int(n) for n in args.instances.split(",")]
    roi_counts = [int(n) for n in args.rois.split(",")]
    precisions = [resolve_precision(p)[0] for p in (args.precisions or default_precisions()).split(",")]
    precisions = list(dict.fromkeys(precisions))  # "auto" may repeat another entry
    print_machine(precisions)

    references: dict[tuple[str, int], float] = {}

    def reference_seconds(backbone: str, size: int) -> float:
        if (backbone, size) not in references:
            references[backbone, size] = time_backbone(backbone, size, args.repeats)
        return references[backbone, size]

    machine = machine_factor(seconds=reference_seconds("resnet101", 512))
    print(
        f"this machine: bare keras ResNet101 at 512 takes {machine:.2f}x the {ISSUE_BARE_R101_512} s of issue #3's "
        "machine; 'target here' = issue target x that factor"
    )
    header = (
        f"{'setup':<11} {'max inst':>8} {'rois':>5} {'batch':>5} {'precision':>9} {'s/image':>8} {'img/s':>6} "
        f"{'x f32':>6} {'cpu s/img':>9} {'det/img':>7} {'x backbone':>10}"
    )
    print(f"{header} {'target here':>11} {'GMAC':>6} {'x bb GMAC':>9}")
    for setup in setups:
        backbone, size, scales = SETUPS[setup]
        reference = reference_seconds(backbone, size)
        bare_gmacs = backbone_gmacs(backbone, size)
        print(
            f"{setup:<11} {'bare ' + backbone + ' float32':>42} {reference:>8.3f} {1 / reference:>6.2f} "
            f"{'':>6} {'':>9} {'':>7} {1.0:>10.2f} {'':>11} {bare_gmacs:>6.1f} {1.0:>9.2f}",
            flush=True,
        )
        weights = random_weights(make_config(backbone, size, scales, 100, 1))
        for n in instances:
            for rois in roi_counts:
                gmacs = mask_rcnn_gmacs(make_config(backbone, size, scales, n, 1, rois=rois), n, bare_gmacs)
                for batch in batches:
                    float32_seconds = None
                    for precision in precisions:
                        config = make_config(backbone, size, scales, n, batch, precision, rois)
                        seconds, cpu_seconds, detections = time_detect(config, weights, args.repeats)
                        if precision == "float32":
                            float32_seconds = seconds
                        versus = f"{float32_seconds / seconds:.2f}" if float32_seconds else ""
                        target = f"{ISSUE_TARGETS[setup] * machine:.3f}" if n == 100 and rois == 1000 else ""
                        print(
                            f"{setup:<11} {n:>8} {rois:>5} {batch:>5} {precision:>9} {seconds:>8.3f} "
                            f"{1 / seconds:>6.2f} {versus:>6} {cpu_seconds:>9.3f} {detections:>7.1f} "
                            f"{seconds / reference:>10.2f} "
                            f"{target:>11} {gmacs:>6.1f} {gmacs / bare_gmacs:>9.2f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
