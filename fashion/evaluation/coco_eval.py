"""COCO box and mask AP through pycocotools, from in-memory ground truth and predictions.

Ground truth per image: ``class_ids [G]``, ``masks [H, W, G]`` bool and optionally pixel boxes
``rois`` (or ``bbox``) ``[G, (y1, x1, y2, x2)]`` (else the masks' tight boxes). Predictions per image: the
dict ``MaskRCNN.detect`` returns, ``rois [P, 4]``, ``class_ids [P]``, ``scores [P]``, ``masks [H, W, P]``.

COCO ids: image ``i`` of the lists is COCO image ``i + 1``, class id ``c`` is COCO category ``c``, and
annotation ids start at 1 (pycocotools' matcher treats id 0 as "unmatched"). Boxes become COCO
``[x, y, w, h] = [x1, y1, x2 - x1, y2 - y1]`` (y2/x2 exclusive); masks become RLE via
``pycocotools.mask.encode`` on Fortran-ordered uint8 arrays. Ground-truth ``area`` is the mask area (as
in COCO), which also drives the small/medium/large split of the box AP.

pycocotools conventions kept as is: AP of a category with no ground truth is -1 (left out of means); a
category with ground truth but no detections has AP 0; when no category has ground truth every AP is -1.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.boxes import extract_bboxes

__all__ = [
    "STAT_NAMES",
    "encode_masks",
    "to_coco_boxes",
    "gt_boxes",
    "coco_image_gt",
    "coco_gt_from_annotations",
    "build_coco_gt",
    "coco_image_results",
    "build_coco_results",
    "results_to_coco",
    "run_cocoeval",
    "per_class_ap",
    "summarize",
    "coco_evaluate",
    "precision_recall_curves",
]

#: Names of ``COCOeval.stats`` (iouType 'bbox' or 'segm', default maxDets 1/10/100), in order.
STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """RLE-encode ``[H, W, N]`` masks; returns N dicts ``{"size": [H, W], "counts": str}`` (JSON-safe).

    One mask at a time: pycocotools wants column-major uint8, and converting all N at once costs N full-size
    copies (640 MB for 10 masks of an 8000 x 8000 photo) where one at a time costs one."""
    rles = []
    for i in range(masks.shape[-1]):
        (rle,) = mask_utils.encode(np.asfortranarray(masks[:, :, i : i + 1], dtype=np.uint8))
        rle["counts"] = rle["counts"].decode("ascii")
        rles.append(rle)
    return rles


def to_coco_boxes(boxes: np.ndarray) -> np.ndarray:
    """``[N, (y1, x1, y2, x2)]`` pixel boxes -> ``[N, (x, y, w, h)]`` float COCO boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    y1, x1, y2, x2 = boxes.T
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def gt_boxes(gt: Mapping) -> np.ndarray:
    """The ground truth's pixel boxes: ``gt["rois"]`` or ``gt["bbox"]`` if given, else the masks' boxes."""
    for key in ("rois", "bbox"):
        if gt.get(key) is not None:
            return np.asarray(gt[key]).reshape(-1, 4)
    return extract_bboxes(gt["masks"])


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _categories(class_names: Sequence[str]) -> list[dict]:
    return [{"id": c, "name": str(class_names[c])} for c in range(1, len(class_names))]


def coco_image_gt(gt: Mapping, image_id: int, first_annotation_id: int) -> tuple[dict, list[dict]]:
    """The COCO ``images`` entry and ``annotations`` of one ground-truth image.

    Args:
        gt: ``class_ids [G]``, ``masks [H, W, G]`` bool and optionally ``rois`` (or ``bbox``) ``[G, 4]``.
        image_id: its COCO image id.
        first_annotation_id: id of its first annotation (ids count up from there; keep them >= 1).
    """
    masks = np.asarray(gt["masks"]).astype(bool)
    class_ids = np.asarray(gt["class_ids"]).reshape(-1)
    if masks.shape[-1] != class_ids.size:
        raise ValueError(f"{masks.shape[-1]} masks for {class_ids.size} class ids")
    height, width = masks.shape[:2]
    image = {"id": int(image_id), "height": int(height), "width": int(width)}
    rles = encode_masks(masks)
    boxes = to_coco_boxes(gt_boxes(gt))
    areas = mask_utils.area(rles) if rles else []
    annotations = [
        {
            "id": first_annotation_id + k,
            "image_id": int(image_id),
            "category_id": int(class_ids[k]),
            "segmentation": rle,
            "area": float(areas[k]),
            "bbox": [float(v) for v in boxes[k]],
            "iscrowd": 0,
        }
        for k, rle in enumerate(rles)
    ]
    return image, annotations


def coco_gt_from_annotations(images: list[dict], annotations: list[dict], class_names: Sequence[str]) -> COCO:
    """An in-memory ``COCO`` from ``images`` and ``annotations`` entries, categories from ``class_names``
    (indexed by class id, ``class_names[0]`` the background)."""
    return _quiet_coco({"images": images, "annotations": annotations, "categories": _categories(class_names)})


def build_coco_gt(gts: Sequence[Mapping], class_names: Sequence[str]) -> COCO:
    """An in-memory pycocotools ``COCO`` ground truth; image ``i`` gets COCO id ``i + 1``.

    Args:
        gts: per image, a dict with ``class_ids [G]``, ``masks [H, W, G]`` bool and optionally ``rois``
            (or ``bbox``) ``[G, 4]`` pixel boxes.
        class_names: names indexed by class id, ``class_names[0]`` the background (Matterport's
            ``dataset.class_names``); categories are ids ``1 .. len(class_names) - 1``.
    """
    images, annotations = [], []
    for index, gt in enumerate(gts):
        image, anns = coco_image_gt(gt, index + 1, len(annotations) + 1)
        images.append(image)
        annotations.extend(anns)
    return coco_gt_from_annotations(images, annotations, class_names)


def coco_image_results(pred: Mapping, image_id: int, iou_type: str) -> list[dict]:
    """COCO results of one image for ``iou_type`` "bbox" (boxes only) or "segm" (RLE masks only).

    Args:
        pred: ``MaskRCNN.detect``'s dict: ``rois``, ``class_ids``, ``scores`` and, for "segm", ``masks``.
        image_id: its COCO image id.
        iou_type: "bbox" or "segm".
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    class_ids = np.asarray(pred["class_ids"]).reshape(-1)
    scores = np.asarray(pred["scores"], dtype=np.float64).reshape(-1)
    if iou_type == "bbox":
        shapes = [{"bbox": [float(v) for v in box]} for box in to_coco_boxes(pred["rois"])]
    else:
        shapes = [{"segmentation": rle} for rle in encode_masks(np.asarray(pred["masks"], dtype=bool))]
    if len(shapes) != class_ids.size or scores.size != class_ids.size:
        raise ValueError("prediction arrays differ in length")
    return [
        {"image_id": int(image_id), "category_id": int(class_ids[k]), "score": float(scores[k]), **shape}
        for k, shape in enumerate(shapes)
    ]


def build_coco_results(preds: Sequence[Mapping], iou_type: str) -> list[dict]:
    """COCO results of all images (image ``i`` is COCO image ``i + 1``); see :func:`coco_image_results`."""
    results = []
    for index, pred in enumerate(preds):
        results.extend(coco_image_results(pred, index + 1, iou_type))
    return results


def results_to_coco(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    """``coco_gt.loadRes(results)``, quietly; an empty result list (which loadRes rejects) gives an empty
    detection set, so COCOeval scores it as pycocotools would any image without detections."""
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco_gt.loadRes(results)
    dataset = {"images": list(coco_gt.dataset["images"]), "annotations": []}
    dataset["categories"] = list(coco_gt.dataset["categories"])
    return _quiet_coco(dataset)


def run_cocoeval(coco_gt: COCO, coco_dt: COCO, iou_type: str) -> COCOeval:
    """evaluate(), accumulate(), summarize() of a ``COCOeval`` with default parameters, output silenced."""
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def per_class_ap(evaluator: COCOeval, iou: float | None = None) -> dict[int, float]:
    """Per-category AP from an accumulated ``COCOeval``'s ``eval["precision"]`` ``[T, R, K, A, M]``.

    Area range "all" and the largest maxDets; the mean over recall points (and over IoU thresholds when
    ``iou`` is None, else at that threshold only) of the entries > -1. -1 for a category without ground
    truth, as pycocotools reports.

    Returns:
        ``{category id: AP}``.
    """
    precision = evaluator.eval["precision"]
    params = evaluator.params
    if iou is not None:
        t = int(np.argmin(np.abs(params.iouThrs - iou)))
        precision = precision[t : t + 1]
    out = {}
    for k, category_id in enumerate(params.catIds):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        out[int(category_id)] = float(valid.mean()) if valid.size else -1.0
    return out


def coco_evaluate(
    gts: Sequence[Mapping],
    preds: Sequence[Mapping],
    class_names: Sequence[str],
    iou_types: Sequence[str] = ("bbox", "segm"),
) -> dict:
    """COCO AP of predictions against ground truth, per ``iou_type``.

    Args:
        gts: per-image ground-truth dicts (see :func:`build_coco_gt`).
        preds: per-image prediction dicts, same order (see :func:`build_coco_results`).
        class_names: names indexed by class id, background first.
        iou_types: any of "bbox", "segm".

    Returns:
        ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", ..., "ARl": float,
        "per_class_AP": {name: float}, "per_class_AP50": {name: float}}}``; values as pycocotools gives
        them, -1 where undefined.
    """
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} predictions")
    coco_gt = build_coco_gt(gts, class_names)
    return {
        iou_type: summarize(coco_gt, build_coco_results(preds, iou_type), iou_type, class_names)
        for iou_type in iou_types
    }


def summarize(coco_gt: COCO, results: list[dict], iou_type: str, class_names: Sequence[str]) -> dict:
    """Evaluate ``results`` against ``coco_gt``; the dict :func:`coco_evaluate` gives per iou_type."""
    evaluator = run_cocoeval(coco_gt, results_to_coco(coco_gt, results, iou_type), iou_type)
    out: dict = {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}
    names = {c: str(class_names[c]) for c in range(1, len(class_names))}
    out["per_class_AP"] = {names[c]: ap for c, ap in per_class_ap(evaluator).items()}
    out["per_class_AP50"] = {names[c]: ap for c, ap in per_class_ap(evaluator, 0.5).items()}
    out["pr_curve_iou50"] = precision_recall_curves(evaluator, names)
    return out


def precision_recall_curves(evaluator: COCOeval, names: Mapping[int, str], iou: float = 0.5) -> dict:
    """Per-class precision at COCO's 101 recall thresholds, IoU ``iou``, area "all", the largest maxDets,
    from an accumulated ``COCOeval``: ``{"iou", "recall": [101], "precision": {name: [101]}}`` (-1 entries
    where a class has no ground truth)."""
    params = evaluator.params
    t = int(np.argmin(np.abs(params.iouThrs - iou)))
    precision = evaluator.eval["precision"][t, :, :, 0, -1]
    return {
        "iou": float(params.iouThrs[t]),
        "recall": [float(r) for r in params.recThrs],
        "precision": {names[int(c)]: precision[:, k].tolist() for k, c in enumerate(params.catIds)},
    }
