"""Evaluate a trained fashion Mask R-CNN on an annotated dataset: print a table and write every metric as JSON.

    python fashion/evaluate.py --weights last --dataset /data/imaterialist --preset thesis001
    python fashion/evaluate.py --weights run/mask_rcnn_fashion_0040.h5 --dataset fashion/sample \\
        --preset sample --limit 100 --max-per-class "shoe=2" --out eval.json

Metrics (fashion.evaluation; the JSON's "summary" holds the headline numbers flat, the other keys the detail):
  COCO box and mask AP, AP50, AP75, APs/APm/APl and per-class AP (pycocotools); mAP@50 and F1 at mask IoU 0.5
  (thesis 001, 2.3.1); exact match ratio, overall accuracy, Jaccard similarity of the per-image label sets and
  thesis 001's classification, segmentation, speed and trade-off scores (5.2); the iMaterialist 2019 Kaggle
  score; pixel accuracy, precision, recall and F1 of the semantic label maps; mean inference seconds per
  image (detection plus post-processing, timed after a first untimed call, model build excluded).

Images are evaluated at the size the dataset loads them (longer side shrunk to --max-dim, by default the
model's IMAGE_MAX_DIM, as fashion/train.py does; 0 = original size). Crowd instances are left out of the
ground truth. Post-processing options (--min-score, --min-area, --max-per-class) apply before scoring.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import fashion  # noqa: E402,F401  (imports mrcnn, which must precede imgaug)
from fashion import postprocess as pp  # noqa: E402
from fashion.categories import UnknownClassError  # noqa: E402
from fashion.cli_common import (  # noqa: E402
    CLIError,
    add_model_arguments,
    add_postprocess_arguments,
    add_verbose_argument,
    build_inference_model,
    inference_overrides,
    postprocess_options,
    resolve_model,
    run_cli,
    start_runtime,
)
from fashion.datasets import load_dataset  # noqa: E402
from fashion.evaluation import EvaluationReport, format_table, write_json  # noqa: E402

__all__ = ["build_parser", "evaluate_model", "load_eval_dataset", "main", "summary"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashion/evaluate.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("--dataset", required=True, help="annotated dataset folder (or COCO json file)")
    p.add_argument("--images", help="image folder when not the format's default place")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument(
        "--max-dim", type=int, help="shrink images to this longer side (default IMAGE_MAX_DIM; 0: none)"
    )
    p.add_argument("--iou-threshold", type=float, default=0.5, help="mask IoU of mAP and F1 (default 0.5)")
    p.add_argument("--out", help="JSON path (default: evaluation_<checkpoint>.json next to the checkpoint)")
    add_model_arguments(p)
    add_postprocess_arguments(p)
    add_verbose_argument(p)
    return p


def load_eval_dataset(
    fmt: str,
    path: str,
    classes: Any,
    max_dim: int | None,
    image_dir: str | None = None,
    limit: int | None = None,
    model_classes: list[str] | None = None,
) -> Any:
    """The prepared dataset to evaluate on (unreadable image files dropped with a counted warning), classes
    registered as fashion/train.py does. Raises CLIError when it cannot be loaded or has no usable image.
    ``model_classes``: the model's class names ("BG" first), named when the dataset lacks some of them."""
    try:
        dataset = load_dataset(
            fmt,
            path,
            classes=classes,
            max_dim=max_dim,
            skip_unreadable=True,
            image_dir=image_dir,
            limit=limit,
        )
    except UnknownClassError as e:
        if not model_classes:
            raise CLIError(f"cannot load the {fmt} dataset at {path}: {e}") from e
        raise CLIError(
            f"the {fmt} dataset at {path} lacks classes the model was trained on "
            f"({'; '.join(model_classes[1:])}): {e}"
        ) from e
    except (ValueError, OSError) as e:
        raise CLIError(f"cannot load the {fmt} dataset at {path}: {e}") from e
    dataset.check_images()
    if not dataset.image_info:
        raise CLIError(f"no usable images in {path} for classes {classes!r}:\n{dataset.warnings.summary()}")
    dataset.prepare()
    return dataset


def evaluate_model(
    model: Any,
    dataset: Any,
    options: pp.PostprocessOptions | None = None,
    iou_threshold: float = 0.5,
    progress: bool = True,
) -> tuple[dict, list[str]]:
    """Detect on every image of ``dataset`` and score the (post-processed) detections.

    The first usable image is detected once untimed (graph tracing), then every image is timed: detection
    plus post-processing, in seconds. Images the dataset cannot read are skipped.

    Returns:
        (:meth:`EvaluationReport.compute`'s dict, the references of the skipped images).
    """
    from tqdm import tqdm

    report = EvaluationReport(dataset.class_names, iou_threshold=iou_threshold)
    skipped: list[str] = []
    warmed = False
    bar = tqdm(list(dataset.image_ids), desc="evaluate", unit="image", file=sys.stderr, disable=not progress)
    for image_id in bar:
        image = dataset.load_image(image_id)
        if image_id in dataset.unreadable:
            skipped.append(dataset.image_reference(image_id))
            bar.write(f"warning: skipped unreadable {dataset.image_reference(image_id)}", file=sys.stderr)
            continue
        masks, class_ids = dataset.load_mask(image_id)
        keep = class_ids > 0  # crowd regions (negative ids) are not instances to find
        gt = {"class_ids": class_ids[keep], "masks": masks[:, :, keep]}
        if not warmed:
            model.detect([image])
            warmed = True
        start = time.perf_counter()
        result = pp.postprocess(model.detect([image])[0], options)
        seconds = time.perf_counter() - start
        report.add(gt, result, seconds=seconds, image_id=str(dataset.image_info[image_id]["id"]))
    bar.close()
    if not len(report):
        raise CLIError(f"none of the {dataset.num_images} images could be read")
    return report.compute(), skipped


def summary(result: Mapping) -> dict:
    """The headline metrics of :meth:`EvaluationReport.compute`'s dict, flat (None where undefined)."""
    out: dict[str, Any] = {}
    coco = result.get("coco") or {}
    for iou_type, prefix in (("bbox", "box"), ("segm", "mask")):
        for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
            out[f"{prefix}_{key}"] = coco.get(iou_type, {}).get(key)
    seg = result.get("segmentation") or {}
    cls = result["classification"]
    pixel = result.get("pixel") or {}
    speed = result.get("speed") or {}
    out.update(
        {
            "mAP50": seg.get("map50"),
            "F1": seg.get("f1"),
            "exact_match_ratio": cls["exact_match_ratio"],
            "overall_accuracy": cls["overall_accuracy"],
            "jaccard_similarity": cls["jaccard_similarity"],
            "classification_score": cls["classification_score"],
            "segmentation_score": seg.get("segmentation_score"),
            "speed_score": speed.get("speed_score"),
            "trade_off_score": result.get("trade_off_score"),
            "kaggle_score": seg.get("kaggle_score"),
            "pixel_accuracy": pixel.get("accuracy"),
            "pixel_precision": pixel.get("precision"),
            "pixel_recall": pixel.get("recall"),
            "pixel_f1": pixel.get("f1"),
            "mean_inference_seconds": speed.get("mean_inference_seconds"),
        }
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    choice = resolve_model(args)  # the checkpoint's classes, preset and format; no TensorFlow yet
    fmt, classes = choice.fmt, choice.classes
    config = choice.config(inference_overrides(args))
    max_dim = args.max_dim if args.max_dim is not None else int(config.IMAGE_MAX_DIM)
    dataset = load_eval_dataset(
        fmt, args.dataset, classes, max_dim or None, args.images, args.limit, model_classes=choice.class_names
    )
    names = [str(c["name"]) for c in dataset.class_info]
    if names != choice.class_names:
        raise CLIError(
            f"the classes of {args.dataset} [{fmt}] ({'; '.join(names[1:])}) are not the classes of "
            f"{choice.weights} ({'; '.join(choice.class_names[1:])})"
        )
    options = postprocess_options(args, names)

    start_runtime(args.verbose, config.MIXED_PRECISION or "float32")
    model = build_inference_model(choice, args.logs, config)
    weights = choice.weights
    print(
        f"Evaluating {weights}\n  on {dataset.num_images} images of {args.dataset} [{fmt}], classes {classes} "
        f"({dataset.num_classes - 1}), preset {choice.preset}, {config.BACKBONE} {config.IMAGE_SHAPE.tolist()}, "
        f"min confidence {config.DETECTION_MIN_CONFIDENCE}, at most {config.DETECTION_MAX_INSTANCES} detections",
        flush=True,
    )

    result, skipped = evaluate_model(model, dataset, options, iou_threshold=args.iou_threshold)
    result = {
        "summary": summary(result),
        **result,
        "run": {
            "weights": weights,
            "dataset": args.dataset,
            "format": fmt,
            "preset": choice.preset,
            "classes": classes,
            "limit": args.limit,
            "max_dim": max_dim or None,
            "detection_min_confidence": config.DETECTION_MIN_CONFIDENCE,
            "detection_max_instances": config.DETECTION_MAX_INSTANCES,
            "postprocess": {
                "min_score": options.min_score,
                "min_area": options.min_area,
                "max_per_class": {dataset.class_names[c]: k for c, k in options.max_per_class.items()},
                "max_default": options.max_default,
            },
            "skipped_images": skipped,
            "data_problems": dict(dataset.warnings.counts),
        },
    }
    print(format_table(result))
    if dataset.warnings.total:
        print("Data problems met:\n" + dataset.warnings.summary())
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(weights)),
        f"evaluation_{os.path.splitext(os.path.basename(weights))[0]}.json",
    )
    print(f"Wrote {write_json(result, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
