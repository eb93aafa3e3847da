"""Run a trained fashion Mask R-CNN on images and write what it finds.

    python fashion/infer.py --weights last --preset sample photos/ --out results/
    python fashion/infer.py --weights run/mask_rcnn_fashion_0040.h5 a.jpg b.jpg --out results/ \\
        --max-per-class "shoe=2" --min-area 50 --kaggle

Writes under --out:
  overlays/<name>.png     the image with masks, boxes, class names and scores (fashion.overlay)
  label_maps/<name>.png   semantic label map: pixel value = class id (0 background), instances painted in
                          order of increasing confidence so the most confident wins; a palette PNG whose
                          colours are the overlay's class colours
  classes.json            class id -> name and source category id (the label maps' values)
  coco_results.json       COCO results: image_id (1-based position in the run), file_name, category_id
                          (model class id), category_name, bbox [x, y, w, h], score, segmentation (COCO RLE);
                          from a model with an attribute head also (Fashionpedia's results format)
                          attribute_ids (the dataset's ids of the attributes scoring >= --attribute-threshold),
                          attribute_scores ({attribute id: score} of every attribute) and attribute_names
  submission.csv          with --kaggle: ImageId,EncodedPixels,ClassId in the iMaterialist 2019 format (masks
                          made non-overlapping, RLE column-major with 1-based starts, ClassId the competition's
                          category id, "<category>_<attr>_<attr>..." with an attribute head); an image without
                          detections gets one row with empty fields

Overlays of a model with an attribute head list each garment's top attributes (at most 3 scoring at least
--attribute-threshold) under its label.

Post-processing (--min-score, --min-area, then --max-per-class) applies to every output. Masks are at each
image's original size. Class names come from --preset's class subset (or --classes) as in fashion/train.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import fashion  # noqa: E402,F401  (imports mrcnn, which must precede imgaug)
from fashion import postprocess as pp  # noqa: E402
from fashion.cli_common import (  # noqa: E402
    IMAGE_EXTENSIONS,
    CLIError,
    add_model_arguments,
    add_postprocess_arguments,
    add_verbose_argument,
    build_inference_model,
    check_output_path,
    clean_class_names,
    inference_overrides,
    postprocess_options,
    precision_choice,
    read_image,
    resolve_model,
    run_cli,
    start_runtime,
)

__all__ = [
    "KAGGLE_HEADER",
    "build_parser",
    "coco_result_records",
    "find_images",
    "main",
    "model_attributes",
    "output_names",
    "overlay_captions",
    "save_label_map",
    "save_overlay",
    "shrink_for_overlay",
    "write_kaggle_csv",
]

KAGGLE_HEADER = ("ImageId", "EncodedPixels", "ClassId")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashion/infer.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", required=True, help="output folder")
    add_model_arguments(p)
    add_postprocess_arguments(p)
    p.add_argument("--kaggle", action="store_true", help="also write submission.csv (iMaterialist format)")
    p.add_argument(
        "--attribute-threshold",
        type=_probability,
        default=0.5,
        help="an attribute is predicted when its score is at least this (default 0.5; attribute head only)",
    )
    p.add_argument("--limit", type=int, help="process only the first N images")
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs (the slowest output)")
    add_verbose_argument(p)
    return p


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


# --------------------------------------------------------------------------------------------- inputs
def find_images(inputs: Sequence[str]) -> list[str]:
    """Image paths: each folder's files with an image extension (sorted, not recursive), files as given.

    Raises CLIError for an input that does not exist."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS))
            paths.extend(os.path.join(item, n) for n in names if os.path.isfile(os.path.join(item, n)))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise CLIError(f"{item!r}: no such image file or folder")
    return paths


def output_names(paths: Sequence[str]) -> list[str]:
    """A distinct output stem per input path: the file's stem, with ``_2``, ``_3`` ... for repeats."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


# --------------------------------------------------------------------------------------------- outputs
def _palette(num_classes: int) -> list[int]:
    from mrcnn.visualize import class_colors

    colors = [(0.0, 0.0, 0.0)] + class_colors(range(1, num_classes))
    flat = [int(round(255 * v)) for color in colors for v in color[:3]]
    return flat + [0] * (768 - len(flat))


def save_label_map(path: str, label_map: np.ndarray, num_classes: int) -> str:
    """Write a ``[H, W]`` class-id map as a PNG whose pixel values are the class ids: a palette PNG coloured
    like the overlays when there are at most 256 classes, else 16-bit grayscale. Returns the path."""
    from PIL import Image

    if num_classes <= 256:
        image = Image.fromarray(label_map.astype(np.uint8))  # mode L; putpalette makes it P
        image.putpalette(_palette(num_classes))
    else:
        image = Image.fromarray(label_map.astype(np.uint16))
    image.save(path)
    return path


# Overlays are drawn on the image shrunk to this longer side: the PNG is about 800 pixels wide anyway, and
# drawing at full size costs about 25 bytes per pixel (an 8000 x 8000 photo: 1.6 GB, and 40 s of contours).
OVERLAY_MAX_SIDE = 1024


def shrink_for_overlay(
    image: np.ndarray, detections: Mapping, max_side: int = OVERLAY_MAX_SIDE
) -> tuple[np.ndarray, dict]:
    """``image`` [H, W, 3] and ``detections`` (rois [N, 4] pixels, masks [H, W, N]) shrunk so that the longer
    side is at most ``max_side`` (unchanged when already small). Pixels are area-averaged (a mask pixel stays
    set where at least half of what it covers was), one mask at a time; boxes are scaled. Returns (image,
    detections with rois and masks replaced)."""
    from mrcnn.pipeline.display import shrink_for_display

    small_image, rois, masks = shrink_for_display(image, detections["rois"], detections["masks"], max_side)
    if small_image is image:
        return image, dict(detections)
    return small_image, {**detections, "rois": rois, "masks": masks}


# At most this many attributes are listed under a garment's label in an overlay.
OVERLAY_ATTRIBUTES = 3


def overlay_captions(
    detections: Mapping,
    class_names: Sequence[str],
    attribute_names: Sequence[str] | None,
    threshold: float = 0.5,
) -> list[str] | None:
    """Per instance "name score", followed on a second line by its top attributes (at most
    OVERLAY_ATTRIBUTES scoring at least ``threshold``, highest first); None without attribute scores."""
    if detections.get("attributes") is None or attribute_names is None:
        return None
    from mrcnn.attributes import attributes_above

    captions = []
    above = attributes_above(detections["attributes"], attribute_names, threshold)
    for c, score, attributes in zip(detections["class_ids"], detections["scores"], above):
        c = int(c)
        caption = f"{class_names[c] if 0 <= c < len(class_names) else c} {float(score):.2f}"
        if attributes:
            caption += "\n" + ", ".join(name for name, _ in attributes[:OVERLAY_ATTRIBUTES])
        captions.append(caption)
    return captions


def save_overlay(
    path: str,
    image: np.ndarray,
    detections: Mapping,
    class_names: Sequence[str],
    title: str,
    captions: Sequence[str] | None = None,
) -> str:
    """Write ``image`` with the detections' masks, boxes, class names and scores as a PNG, its longer side
    brought within 512..800 pixels, ``title`` above it (:func:`fashion.overlay.draw_overlay`, the drawing of
    the service's ``/v1/overlay`` too). ``captions``: one per instance, replacing "name score" (see
    :func:`overlay_captions`). The photo and its masks are first shrunk to OVERLAY_MAX_SIDE
    (:func:`shrink_for_overlay`, one mask at a time), so memory and time do not grow with the photo's size.
    Returns the path."""
    from fashion.overlay import draw_overlay

    image, detections = shrink_for_overlay(image, detections)
    draw_overlay(image, detections, class_names, title=title, captions=captions).save(path, format="PNG")
    return path


def coco_result_records(
    detections: Mapping,
    image_id: int,
    file_name: str,
    class_names: Sequence[str],
    attribute_source_ids: Sequence[int] | None = None,
    attribute_names: Sequence[str] | None = None,
    attribute_threshold: float = 0.5,
) -> list[dict]:
    """COCO result dicts of one image, box and mask together (as Detectron2 writes them), plus
    ``file_name`` and ``category_name``.

    With ``attribute_source_ids`` ([A], the dataset's id of each model attribute) and ``attributes`` [N, A]
    scores in ``detections``, each record also has Fashionpedia's ``attribute_ids`` (scoring at least
    ``attribute_threshold``), ``attribute_scores`` ({str(id): score} of all A) and, with
    ``attribute_names``, ``attribute_names`` (of ``attribute_ids``).
    """
    from fashion.evaluation.coco_eval import coco_image_results

    boxes = coco_image_results(detections, image_id, "bbox")
    masks = coco_image_results(detections, image_id, "segm")
    predicted = pp.predicted_attribute_ids(detections, attribute_source_ids, attribute_threshold)
    names = dict(zip(attribute_source_ids or (), attribute_names or ()))
    records = []
    for k, (box, mask) in enumerate(zip(boxes, masks)):
        c = int(box["category_id"])
        record = {
            **box,
            "segmentation": mask["segmentation"],
            "file_name": file_name,
            "category_name": str(class_names[c]) if 0 <= c < len(class_names) else str(c),
        }
        if predicted is not None:
            scores = np.asarray(detections["attributes"][k], dtype=np.float64)
            record["attribute_ids"] = predicted[k]
            record["attribute_scores"] = {
                str(int(a)): round(float(v), 5) for a, v in zip(attribute_source_ids, scores)
            }
            if names:
                record["attribute_names"] = [names[a] for a in predicted[k]]
        records.append(record)
    return records


def model_attributes(model) -> tuple[list[str] | None, list[int] | None]:
    """(attribute names, the dataset's attribute ids) of a model with an attribute head, as its checkpoint
    records them (ids: the model's attribute indices, names: the ids as text, where it does not); (None, None)
    for a model without the head."""
    count = int(model.config.NUM_ATTRIBUTES)
    if not count:
        return None, None
    ids = model.checkpoint_fields.get("attribute_source_ids")
    if ids is None or len(ids) != count:
        print(
            "Warning: the checkpoint does not record its attributes' dataset ids: attribute_ids are the model's "
            "attribute indices",
            file=sys.stderr,
        )
        ids = list(range(count))
    names = model.attribute_names or [str(i) for i in ids]
    return list(names), [int(i) for i in ids]


def write_kaggle_csv(path: str, rows: Sequence[Sequence[str]]) -> str:
    """Write ``ImageId,EncodedPixels,ClassId`` rows with the header. Returns the path."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(KAGGLE_HEADER)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    check_output_path("--out", args.out, folder=True)  # before anything slow
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit {args.limit}: must be at least 1")
    choice = resolve_model(
        args
    )  # class names and ids from the checkpoint (or the options); no TensorFlow yet
    class_names = clean_class_names(choice.class_names)
    source_ids = choice.source_ids
    options = postprocess_options(args, choice.class_names)
    paths = find_images(args.inputs)[: args.limit or None]
    if not paths:
        raise CLIError(
            f"no images found in {' '.join(args.inputs)} (extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    precision, why = precision_choice(args)  # "auto" looks for GPUs: after the checks that need no TensorFlow
    config = choice.config(inference_overrides(args, precision))

    start_runtime(args.verbose, precision, why)
    model = build_inference_model(choice, args.logs, config)
    weights = choice.weights
    attribute_names, attribute_ids = model_attributes(model)
    described = f", {len(attribute_ids)} attributes" if attribute_ids is not None else ""
    print(
        f"Model: preset {choice.preset}, {config.BACKBONE}, {len(class_names) - 1} classes{described}, "
        f"weights {weights}\nImages: {len(paths)} -> {args.out}",
        flush=True,
    )
    threshold = args.attribute_threshold

    out_dirs = {"label_maps": os.path.join(args.out, "label_maps")}
    if not args.no_overlays:
        out_dirs["overlays"] = os.path.join(args.out, "overlays")
    for d in out_dirs.values():
        os.makedirs(d, exist_ok=True)

    coco_records: list[dict] = []
    kaggle: list[tuple[str, str, str]] = []
    skipped: list[str] = []
    seconds: list[float] = []
    detected = 0
    names = output_names(paths)
    bar = tqdm(list(zip(paths, names)), desc="infer", unit="image", file=sys.stderr)
    for path, name in bar:
        try:
            image = read_image(path)
        except Exception as e:  # PIL raises several types for broken files
            skipped.append(path)
            bar.write(f"warning: skipped unreadable image {path}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        start = time.perf_counter()
        result = pp.postprocess(model.detect([image])[0], options)
        seconds.append(time.perf_counter() - start)
        detected += pp.num_detections(result)
        image_index = len(seconds)
        file_name = os.path.basename(path)
        coco_records.extend(
            coco_result_records(
                result, image_index, file_name, class_names, attribute_ids, attribute_names, threshold
            )
        )
        save_label_map(
            os.path.join(out_dirs["label_maps"], name + ".png"),
            pp.semantic_label_map(result),
            len(class_names),
        )
        if "overlays" in out_dirs:
            captions = overlay_captions(result, class_names, attribute_names, threshold)
            save_overlay(
                os.path.join(out_dirs["overlays"], name + ".png"),
                image,
                result,
                class_names,
                file_name,
                captions,
            )
        if args.kaggle:
            kaggle.extend(pp.kaggle_rows(file_name, result, source_ids, attribute_ids, threshold))
    bar.close()

    with open(os.path.join(args.out, "coco_results.json"), "w", encoding="utf-8") as f:
        json.dump(coco_records, f)
    classes = [
        {"class_id": k, "name": choice.class_names[k], "source_category_id": source_ids[k]}
        for k in range(1, len(class_names))
    ]
    with open(os.path.join(args.out, "classes.json"), "w", encoding="utf-8") as f:
        json.dump({"background": 0, "classes": classes}, f, indent=1)
    if args.kaggle:
        write_kaggle_csv(os.path.join(args.out, "submission.csv"), kaggle)

    done = len(seconds)
    timing = f", {np.mean(seconds[1:] or seconds):.3f} s per image after the first" if done else ""
    print(f"Done: {done} images, {detected} instances{timing}; outputs in {args.out}")
    if skipped:
        print(f"{len(skipped)} unreadable image(s) skipped (each named above)", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
