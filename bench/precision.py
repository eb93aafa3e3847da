"""Accuracy of each precision against float32 on the same weights and images (issue #12, item 3).

    python bench/precision.py --checkpoint logs/fashion.../mask_rcnn_fashion_0012.h5      # the whole table
    python bench/precision.py --only sample --checkpoint CKPT --rois 1000,500,300,100      # mask AP by ROIs
    python bench/precision.py --only r101-512 --images 8 --residual-gamma 0.1

Setups:
  r50-512, r101-512  ResNet50 / ResNet101 at 512 (anchors 16-256, 12 classes, 100 detections, confidence 0)
                     with random-but-calibrated weights (:func:`mrcnn.testing.calibrate_random_weights`:
                     BatchNorm statistics from real photos, heads scaled so that no score saturates), on
                     scikit-image's photos and the shipped sample's.
  sample             a checkpoint trained on the shipped sample (``--checkpoint``; the README's main command
                     makes one), sample preset, on the 36 sample images, with COCO mask AP.

Rows: the float32 reference, then "float32 + 2^-9 noise" (float32 on the images multiplied by 1 + u, u uniform
in +-2^-9: bfloat16's rounding of the input alone, none of its arithmetic), then each of ``--precisions``.
"matched" is the share of float32's detections found again (same class, box IoU >= 0.9); "mask IoU" the mean
mask IoU of those pairs; "score diff" the mean and largest score difference of the pairs (see
:func:`mrcnn.precision.compare_detections`). The noise row tells how much the weights themselves amplify a
rounding-level change: random weights amplify it far more than trained ones, so their bfloat16 figures
measure the weights' sensitivity as much as bfloat16.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrcnn.config import Config  # noqa: E402
from mrcnn.model import MaskRCNN  # noqa: E402
from mrcnn.precision import CHOICES, compare_detections, resolve_precision  # noqa: E402
from mrcnn.runtime import describe_runtime  # noqa: E402
from mrcnn.testing import calibrate_random_weights, real_photos  # noqa: E402

SAMPLE = ROOT / "fashion" / "sample"
CALIBRATED = {"r50-512": "resnet50", "r101-512": "resnet101"}
NOISE = 2.0**-9  # bfloat16 keeps 8 significant bits: rounding changes a value by up to 2^-9 of it


def calibrated_config(backbone: str, precision: str, rois: int) -> Config:
    class CalibratedConfig(Config):
        NAME = "precision"
        NUM_CLASSES = 1 + 11
        BACKBONE = backbone
        IMAGE_MIN_DIM = 512
        IMAGE_MAX_DIM = 512
        RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
        IMAGES_PER_GPU = 1
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0
        MIXED_PRECISION = precision
        POST_NMS_ROIS_INFERENCE = rois

    return CalibratedConfig()


def with_noise(images: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    """float32 copies of ``images`` multiplied by 1 + u, u uniform in [-2^-9, 2^-9] per value."""
    rng = np.random.default_rng(seed)
    return [(image * (1 + rng.uniform(-NOISE, NOISE, image.shape))).astype(np.float32) for image in images]


def detect_each(model: MaskRCNN, images: list[np.ndarray]) -> tuple[list[dict], float]:
    """(detect()'s result for each image, median seconds per image); the first call (tracing) is untimed."""
    model.detect(images[:1])
    results, seconds = [], []
    for image in images:
        start = time.perf_counter()
        results.append(model.detect([image])[0])
        seconds.append(time.perf_counter() - start)
    return results, float(np.median(seconds))


class Table:
    def __init__(self, with_ap: bool):
        self.with_ap = with_ap
        ap = f" {'mask AP':>8} {'AP diff':>8}" if with_ap else ""
        print(
            f"\n{'setup':<9} {'rois':>5} {'run':<24} {'matched':>15} {'mask IoU':>8} {'score diff':>15} "
            f"{'s/image':>8}{ap}",
            flush=True,
        )

    def row(self, setup, rois, run, seconds, agreement=None, ap=None, reference_ap=None):
        matched = iou = diff = ""
        if agreement is not None:
            matched = f"{agreement.matched}/{agreement.reference} {100 * agreement.matched_share:5.1f}%"
            iou = f"{agreement.mask_iou:.3f}"
            diff = f"{agreement.score_diff_mean:.4f}/{agreement.score_diff_max:.3f}"
        line = f"{setup:<9} {rois:>5} {run:<24} {matched:>15} {iou:>8} {diff:>15} {seconds:>8.3f}"
        if self.with_ap:
            ap_diff = f"{ap - reference_ap:+.4f}" if reference_ap is not None and ap is not None else ""
            line += f" {ap if ap is not None else float('nan'):>8.4f} {ap_diff:>8}"
        print(line, flush=True)


def run_calibrated(setup: str, args, precisions: list[str], logs: str) -> None:
    backbone = CALIBRATED[setup]
    photos = real_photos(folder=str(SAMPLE / "train"), limit=args.images)
    images = [
        p.astype(np.float32) for p in photos
    ]  # float32 for every run, so the noise row differs only by it
    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", calibrated_config(backbone, "float32", 1000), logs)
    start = time.perf_counter()
    calibrate_random_weights(model, photos[: args.calibration_images], residual_gamma=args.residual_gamma)
    print(
        f"{setup}: calibrated on {args.calibration_images} photos in {time.perf_counter() - start:.0f} s "
        f"(residual-branch gamma {args.residual_gamma}); {len(images)} photos",
        flush=True,
    )
    weights = os.path.join(logs, f"{setup}_calibrated.h5")
    model.save_weights(weights)
    table = Table(with_ap=False)
    for rois in args.rois:
        reference_model = MaskRCNN("inference", calibrated_config(backbone, "float32", rois), logs)
        reference_model.load_weights(weights)
        reference, seconds = detect_each(reference_model, images)
        table.row(setup, rois, "float32", seconds)
        noisy, seconds = detect_each(reference_model, with_noise(images))
        table.row(setup, rois, "float32 + 2^-9 noise", seconds, compare_detections(reference, noisy))
        for precision in precisions:
            other = MaskRCNN("inference", calibrated_config(backbone, precision, rois), logs)
            other.load_weights(weights)
            results, seconds = detect_each(other, images)
            table.row(setup, rois, precision, seconds, compare_detections(reference, results))


def run_sample(args, precisions: list[str], logs: str) -> None:
    from fashion.config import make_config
    from fashion.evaluate import load_eval_dataset
    from fashion.evaluation import EvaluationReport

    dataset = load_eval_dataset("imaterialist", str(SAMPLE), "thesis11", 128)
    images = [dataset.load_image(i).astype(np.float32) for i in dataset.image_ids]
    ground_truth = []
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        keep = class_ids > 0
        ground_truth.append({"class_ids": class_ids[keep], "masks": masks[:, :, keep]})

    def mask_ap(results: list[dict]) -> float:
        report = EvaluationReport(dataset.class_names)
        for gt, result in zip(ground_truth, results):
            report.add(gt, result)
        return float(report.compute()["coco"]["segm"]["AP"])

    def build(precision: str, rois: int) -> MaskRCNN:
        config = make_config(
            "sample",
            num_classes=dataset.num_classes,
            inference=True,
            MIXED_PRECISION=precision,
            POST_NMS_ROIS_INFERENCE=rois,
        )
        model = MaskRCNN("inference", config, logs)
        model.load_weights(args.checkpoint, by_name=True)
        return model

    print(f"sample: {args.checkpoint} on {len(images)} sample images", flush=True)
    table = Table(with_ap=True)
    for rois in args.rois:
        reference_model = build("float32", rois)
        reference, seconds = detect_each(reference_model, images)
        reference_ap = mask_ap(reference)
        table.row("sample", rois, "float32", seconds, ap=reference_ap)
        noisy, seconds = detect_each(reference_model, with_noise(images))
        table.row(
            "sample", rois, "float32 + 2^-9 noise", seconds, compare_detections(reference, noisy),
            mask_ap(noisy), reference_ap,
        )  # fmt: skip
        for precision in precisions:
            results, seconds = detect_each(build(precision, rois), images)
            table.row(
                "sample", rois, precision, seconds, compare_detections(reference, results), mask_ap(results),
                reference_ap,
            )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=[*CALIBRATED, "sample"], help="one setup")
    parser.add_argument("--checkpoint", help="weights trained on the shipped sample (for the sample setup)")
    parser.add_argument(
        "--precisions", default="bfloat16,float16", help=f"comma-separated, of {', '.join(CHOICES)}"
    )
    parser.add_argument("--images", type=int, default=8, help="photos for the calibrated setups")
    parser.add_argument("--calibration-images", type=int, default=4, help="photos the calibration sees")
    parser.add_argument(
        "--residual-gamma",
        type=float,
        default=1.0,
        help="gamma of the BatchNorm ending each residual branch, calibrated setups (trained ResNets: < 1)",
    )
    parser.add_argument("--rois", default="1000", help="comma-separated POST_NMS_ROIS_INFERENCE values")
    args = parser.parse_args(argv)
    args.rois = [int(n) for n in args.rois.split(",")]
    precisions = [resolve_precision(p)[0] for p in args.precisions.split(",") if p]
    precisions = [p for p in dict.fromkeys(precisions) if p != "float32"]
    setups = [args.only] if args.only else [*CALIBRATED, *(["sample"] if args.checkpoint else [])]
    if "sample" in setups and not args.checkpoint:
        parser.error("the sample setup needs --checkpoint (train one with the README's main command)")
    print(describe_runtime())
    for precision in precisions:
        print(f"{precision}: {resolve_precision(precision)[1]}")
    with tempfile.TemporaryDirectory() as logs:
        for setup in setups:
            if setup == "sample":
                run_sample(args, precisions, logs)
            else:
                run_calibrated(setup, args, precisions, logs)


if __name__ == "__main__":
    main()
