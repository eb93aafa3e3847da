"""Evaluate a trained fashion Mask R-CNN on an annotated dataset: print a table and write every metric as JSON.

    python fashion/evaluate.py --weights last --dataset /data/imaterialist --preset thesis001
    python fashion/evaluate.py --weights run/mask_rcnn_fashion_0040.h5 --dataset fashion/sample \\
        --preset sample --limit 100 --max-per-class "shoe=2" --out eval.json --report eval_report/
    python fashion/evaluate.py --results other_model.json --dataset fashionpedia/val.json --format fashionpedia

Metrics (fashion.evaluation; the JSON's "summary" holds the headline numbers flat, the other keys the detail):
  COCO box and mask AP, AP50, AP75, APs/APm/APl and per-class AP (pycocotools); mAP@50 and F1 at mask IoU 0.5
  (thesis 001, 2.3.1); exact match ratio, overall accuracy, Jaccard similarity of the per-image label sets and
  thesis 001's classification, segmentation, speed and trade-off scores (5.2); the iMaterialist 2019 Kaggle
  score; pixel accuracy, precision, recall and F1 of the semantic label maps; mean inference seconds per
  image (detection plus post-processing, timed after a first untimed call, model build excluded). When the
dataset and the predictions carry garment attributes: per-attribute AP and their mean, micro/macro F1 of the
attributes of matched instances, and Fashionpedia's AP at mask IoU and attribute F1 thresholds.

--results FILE.json scores a COCO/Fashionpedia results file of any model instead (no model is built):
entries {image_id or file_name, category_id, segmentation (RLE or polygons), score, attribute_ids,
attribute_scores}. Images: by file_name when given, else image_id = the dataset's own image id (COCO id of
the json, iMaterialist ImageId, DeepFashion2 file stem). Categories (--category-ids): "source" = the
dataset's category ids (default for coco/fashionpedia), "model" = model class ids of the class subset, as
fashion/infer.py writes them (default for imaterialist/deepfashion2). Masks are at original image size, so
--results evaluates at original size.

--report DIR also draws precision-recall curves per class, the class confusion matrix of matched instances,
per-attribute AP bars and the worst images beside their ground truth, with an index.html showing them all.

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

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import fashion  # noqa: E402,F401  (imports mrcnn, which must precede imgaug)
from fashion import postprocess as pp  # noqa: E402
from fashion.categories import UnknownClassError  # noqa: E402
from fashion.cli_common import (  # noqa: E402
    DEFAULT_PRESET,
    EXIT_USAGE,
    CLIError,
    add_model_arguments,
    add_postprocess_arguments,
    add_verbose_argument,
    build_inference_model,
    check_output_path,
    inference_overrides,
    postprocess_options,
    precision_choice,
    resolve_model,
    run_cli,
    start_runtime,
)
from fashion.config import get_preset  # noqa: E402
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
    p.add_argument(
        "--results",
        metavar="FILE.json",
        help="score this COCO/Fashionpedia results file instead of a model (no --weights; see below)",
    )
    p.add_argument(
        "--category-ids",
        choices=("source", "model"),
        help="with --results: category_id is the dataset's category id (source) or the model class id "
        "(model); default: source for coco/fashionpedia, model for imaterialist/deepfashion2",
    )
    p.add_argument(
        "--attribute-threshold",
        type=float,
        default=0.5,
        help="a detection predicts an attribute scoring at least this (default 0.5)",
    )
    p.add_argument("--report", metavar="DIR", help="also write figures and an index.html showing them to DIR")
    p.add_argument("--images", help="image folder when not the format's default place")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument(
        "--max-dim", type=int, help="shrink images to this longer side (default IMAGE_MAX_DIM; 0: none)"
    )
    p.add_argument("--iou-threshold", type=float, default=0.5, help="mask IoU of mAP and F1 (default 0.5)")
    p.add_argument("--out", help="JSON path (default: evaluation_<checkpoint>.json next to the checkpoint)")
    add_model_arguments(p, precision_default="float32")
    add_postprocess_arguments(p)
    add_verbose_argument(p)
    for action in p._actions:  # --weights is not needed with --results (checked in main)
        if action.dest == "weights":
            action.required = False
            action.default = None
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
    predictions: dict | None = None,
    attribute_threshold: float = 0.5,
) -> tuple[dict, list[str]]:
    """Detect on every image of ``dataset`` and score the (post-processed) detections.

    The first usable image is detected once untimed (graph tracing), then every image is timed: detection
    plus post-processing, in seconds. Images the dataset cannot read are skipped. Garment attributes are
    scored when the detections carry ``attributes`` (see :class:`fashion.evaluation.EvaluationReport`).
    ``predictions``, when a dict, receives ``{dataset image index: detections}`` with RLE masks (for
    :func:`fashion.evaluation.visual.write_visual_report`).

    Returns:
        (:meth:`EvaluationReport.compute`'s dict, the references of the skipped images).
    """
    from tqdm import tqdm

    report = EvaluationReport(
        dataset.class_names,
        iou_threshold=iou_threshold,
        attribute_space=dataset.attribute_space,
        full_attribute_space=dataset.full_attribute_space,
        attribute_threshold=attribute_threshold,
    )
    skipped: list[str] = []
    warmed = False
    bar = tqdm(list(dataset.image_ids), desc="evaluate", unit="image", file=sys.stderr, disable=not progress)
    for image_id in bar:
        image = dataset.load_image(image_id)
        if image_id in dataset.unreadable:  # the dataset warned once, naming the file; counted there
            skipped.append(dataset.image_reference(image_id))
            continue
        gt = ground_truth(dataset, image_id)
        if not warmed:
            model.detect([image])
            warmed = True
        start = time.perf_counter()
        result = pp.postprocess(model.detect([image])[0], options)
        seconds = time.perf_counter() - start
        report.add(gt, result, seconds=seconds, image_id=str(dataset.image_info[image_id]["id"]))
        if predictions is not None:
            predictions[int(image_id)] = compact_detections(result)
    bar.close()
    if not len(report):
        raise CLIError(f"none of the {dataset.num_images} images could be read")
    return report.compute(), skipped


def ground_truth(dataset: Any, image_id: int) -> dict:
    """The scored ground truth of an image: ``class_ids [G]``, ``masks [H, W, G]`` and the instances'
    ``attribute_ids`` (crowd regions, negative ids, are not instances to find)."""
    masks, class_ids, records = dataset.load_mask_and_attributes(image_id)
    keep = class_ids > 0
    gt = {"class_ids": class_ids[keep], "masks": masks[:, :, keep]}
    if dataset.attribute_space.num_attributes:
        gt["attribute_ids"] = [tuple(r) for r, k in zip(records, keep) if k]
    return gt


def compact_detections(detections: Mapping) -> dict:
    """Detections with masks as COCO RLE (small enough to keep for every image of a run)."""
    from fashion.evaluation.coco_eval import encode_masks

    out = {k: v for k, v in detections.items() if k != "masks"}
    out["rles"] = encode_masks(np.asarray(detections["masks"]).astype(bool))
    return out


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
    attributes = result.get("attributes")
    if attributes is not None:
        out["attribute_mAP"] = attributes["mAP"]
        out["attribute_micro_f1"] = attributes["micro_f1"]
        out["attribute_macro_f1"] = attributes["macro_f1"]
    fp = result.get("fashionpedia")
    if fp is not None:
        for key in ("AP", "AP_IOU50_F150", "AP_IOU75_F175", "AP_IoU_only"):
            out[f"fashionpedia_{key}"] = fp[key]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.results:
        return run_cli(_run_results, args)
    if not args.weights:
        print(
            "error: --weights is required (or score a results file with --results FILE.json)", file=sys.stderr
        )
        return EXIT_USAGE
    return run_cli(_run, args)


def _run_results(args: argparse.Namespace) -> int:
    """--results: score a results file against --dataset at original image size; no model, no TensorFlow."""
    from fashion.evaluation.results_file import (
        ResultsFileError,
        detections_of_image,
        group_by_image,
        read_results,
    )

    _check_outputs(args)
    out = args.out or _default_out(args.results)
    if not args.out:
        check_output_path("--out (default: next to the results file)", out, folder=False)
    preset = get_preset(args.preset or DEFAULT_PRESET)
    fmt = args.format or preset.fmt
    classes = args.classes or preset.classes
    if args.max_dim:
        raise CLIError("--max-dim does not apply to --results: results files are in original image pixels")
    category_ids = args.category_ids or ("source" if fmt in ("coco", "fashionpedia") else "model")
    try:
        entries = read_results(args.results)
    except ResultsFileError as e:
        raise CLIError(str(e)) from e
    dataset = load_eval_dataset(fmt, args.dataset, classes, None, args.images, args.limit)
    print(
        f"Scoring {args.results} ({len(entries)} detections)\n  on {dataset.num_images} images of {args.dataset} "
        f"[{fmt}], classes {classes} ({dataset.num_classes - 1}), category ids: {category_ids}",
        flush=True,
    )
    report = EvaluationReport(
        dataset.class_names,
        iou_threshold=args.iou_threshold,
        attribute_space=dataset.attribute_space,
        full_attribute_space=dataset.full_attribute_space,
        attribute_threshold=args.attribute_threshold,
    )
    predictions: dict[int, dict] = {}
    try:
        grouped, outside = group_by_image(entries, dataset, args.results)
        for image_id in dataset.image_ids:
            height, width = dataset.original_size(image_id)
            pred = detections_of_image(
                grouped.get(int(image_id), []), dataset, height, width, category_ids, args.results
            )
            report.add(
                ground_truth(dataset, image_id), pred, image_id=str(dataset.image_info[image_id]["id"])
            )
            if args.report:
                predictions[int(image_id)] = compact_detections(pred)
    except ResultsFileError as e:
        raise CLIError(str(e)) from e
    if outside:
        print(f"Note: {outside} detections name images outside the evaluated ones and were left out")
    result = report.compute()
    result = {
        "summary": summary(result),
        **result,
        "run": {
            "results": args.results,
            "dataset": args.dataset,
            "format": fmt,
            "classes": classes,
            "limit": args.limit,
            "category_ids": category_ids,
            "detections": len(entries),
            "detections_outside": outside,
            "attribute_threshold": args.attribute_threshold,
            "data_problems": dict(dataset.warnings.counts),
        },
    }
    print(format_table(result))
    print(f"Wrote {write_json(result, out)}")
    if args.report:
        print(f"Wrote {write_report(args.report, result, dataset, predictions)}")
    return 0


def write_report(directory: str, result: Mapping, dataset: Any, predictions: Mapping[int, dict]) -> str:
    """--report: the figures and index.html of :func:`fashion.evaluation.visual.write_visual_report`."""
    from fashion.evaluation.visual import write_visual_report

    return str(write_visual_report(directory, result, dataset, predictions))


def _check_outputs(args: argparse.Namespace) -> None:
    """--out and --report can be written, checked before the evaluation (exit 2 naming the option)."""
    if args.out:
        check_output_path("--out", args.out, folder=False)
    if args.report:
        check_output_path("--report", args.report, folder=True)


def _default_out(source: str) -> str:
    """evaluation_<stem>.json next to the checkpoint or results file ``source``."""
    stem = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(os.path.dirname(os.path.abspath(source)), f"evaluation_{stem}.json")


def _select_model_attributes(dataset: Any, choice: Any, config: Any) -> None:
    """Score the attributes the model predicts: those its checkpoint records (``attribute_source_ids``, in
    model order), not every attribute of the dataset. Raises CLIError when the dataset lacks some."""
    from fashion.datasets.attributes import AttributeSelectionError

    ids = getattr(choice.metadata, "attribute_source_ids", None)
    if not ids or len(ids) != int(config.NUM_ATTRIBUTES):
        return
    try:
        dataset.select_attributes(";".join(str(int(i)) for i in ids))
    except AttributeSelectionError as e:
        raise CLIError(
            f"--weights {choice.weights} predicts attributes this dataset does not have: {e}"
        ) from e


def _run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    choice = resolve_model(args)  # the checkpoint's classes, preset and format; no TensorFlow yet
    out = args.out or _default_out(choice.weights)
    if not args.out:
        check_output_path("--out (default: next to the checkpoint)", out, folder=False)
    fmt, classes = choice.fmt, choice.classes
    precision, why = precision_choice(args)
    config = choice.config(inference_overrides(args, precision))
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
    _select_model_attributes(dataset, choice, config)

    start_runtime(args.verbose, precision, why)
    model = build_inference_model(choice, args.logs, config)
    weights = choice.weights
    print(
        f"Evaluating {weights}\n  on {dataset.num_images} images of {args.dataset} [{fmt}], classes {classes} "
        f"({dataset.num_classes - 1}), preset {choice.preset}, {config.BACKBONE} {config.IMAGE_SHAPE.tolist()}, "
        f"min confidence {config.DETECTION_MIN_CONFIDENCE}, at most {config.DETECTION_MAX_INSTANCES} detections",
        flush=True,
    )

    predictions: dict[int, dict] | None = {} if args.report else None
    result, skipped = evaluate_model(
        model,
        dataset,
        options,
        iou_threshold=args.iou_threshold,
        predictions=predictions,
        attribute_threshold=args.attribute_threshold,
    )
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
            "precision": config.MIXED_PRECISION,
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
    print(f"Wrote {write_json(result, out)}")
    if args.report:
        print(f"Wrote {write_report(args.report, result, dataset, predictions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
