"""Aggregate the evaluation metrics over a test set: accumulate ground truth and predictions image by image,
compute everything, print a text table, write JSON.

Per image, ground truth is a dict with ``class_ids [G]`` and, for the segmentation metrics,
``masks [H, W, G]`` bool (optionally ``rois``/``bbox`` ``[G, (y1, x1, y2, x2)]`` pixel boxes for the COCO box
AP; else the masks' boxes). A ground truth without ``masks`` (an image-level annotation, like thesis 001's
client set C) counts for the multi-label metrics only. Predictions are ``MaskRCNN.detect``'s dicts:
``rois [P, 4]``, ``class_ids [P]``, ``scores [P]``, ``masks [H, W, P]`` bool
(at the ground truth's image size).

What is computed (see :mod:`fashion.evaluation.metrics` for the definitions):

- ``classification``: EMR, OA, JSS of the image label sets (a class is predicted when any detection has it)
  and thesis 001's classification score, over all images.
- ``segmentation`` (images with masks): mAP@50 (mean per-image AP@50 over images with ground truth), F1 (mean
  per-image F1 at IoU ``iou_threshold``), pooled precision/recall/F1 from the summed TP/FP/FN, thesis 001's
  segmentation score (mAP@50 + F1) / 2, and the Kaggle score (mean per-image score).
- ``coco``: pycocotools box and mask AP/AR and per-class AP (images with masks).
- ``pixel``: thesis 003's pixel accuracy/precision/recall/F1 of the semantic label maps, from the confusion
  matrix summed over images (images with masks).
- ``speed``: mean inference seconds over the images given a timing, and thesis 001's speed score.
- ``instance_confusion``: ``[num_classes, num_classes]`` counts of detections matched to ground truth at
  ``iou_threshold`` regardless of class: row = true class, column = predicted class; row 0 counts false
  detections (no ground truth), column 0 missed ground truth.
- ``trade_off_score``: TO = classification + segmentation - speed score (None when a part is missing).
- ``attributes`` (when the report has an attribute space, the ground truth gives ``attribute_ids`` and the
  predictions give attributes): per-attribute AP, mAP and micro/macro F1 of matched instances
  (:mod:`fashion.evaluation.attributes`); ``fashionpedia``: Fashionpedia's AP at mask IoU and attribute F1
  thresholds. Ground truth: ``attribute_ids``, per instance the source attribute ids (tuples, as the
  datasets' ``load_mask_and_attributes`` gives them). Predictions: ``attributes [P, A]`` scores in the
  space's order (``detect()``) and/or ``attribute_ids`` (per detection the predicted source ids, as in a
  results file) with optional ``attribute_scores`` (per detection ``{source id: score}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fashion.evaluation import attributes as am
from fashion.evaluation import coco_eval
from fashion.evaluation import metrics as m
from mrcnn.boxes import extract_bboxes

__all__ = ["EvaluationReport", "evaluate_predictions", "format_table", "write_json"]


class EvaluationReport:
    """Accumulates per-image results; :meth:`compute` gives the dataset's metrics.

    Per-image metrics are computed in :meth:`add` and masks kept only as RLE, so memory stays small.

    Args:
        class_names: names indexed by class id, ``class_names[0]`` the background (Matterport's
            ``dataset.class_names``).
        iou_threshold: mask IoU threshold of mAP and F1 (thesis 001: 0.5).
        coco: compute pycocotools AP.
        pixel: compute pixel-level metrics.
        attribute_space: the evaluated attributes (a :class:`fashion.datasets.AttributeSpace`, usually the
            dataset's selected ``attribute_space``), or None for no attribute metrics.
        full_attribute_space: the dataset's full space, whose size and annotated classes Fashionpedia's AP
            uses (default: ``attribute_space``).
        attribute_threshold: a detection predicts an attribute whose score is at least this.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        iou_threshold: float = 0.5,
        coco: bool = True,
        pixel: bool = True,
        attribute_space=None,
        full_attribute_space=None,
        attribute_threshold: float = 0.5,
    ) -> None:
        if len(class_names) < 2:
            raise ValueError("class_names needs the background and at least one class")
        self.class_names = [str(name) for name in class_names]
        self.num_classes = len(self.class_names)
        self.iou_threshold = float(iou_threshold)
        self.use_coco = coco
        self.use_pixel = pixel
        self.records: list[dict] = []
        self._labels_true: list[np.ndarray] = []
        self._labels_pred: list[np.ndarray] = []
        self._confusion = np.zeros([self.num_classes, self.num_classes], dtype=np.int64)
        # Instances matched regardless of class: [gt class, predicted class], 0 = none (missed / false).
        self._instance_confusion = np.zeros([self.num_classes, self.num_classes], dtype=np.int64)
        self._coco_images: list[dict] = []
        self._coco_annotations: list[dict] = []
        self._coco_results: dict[str, list[dict]] = {"bbox": [], "segm": []}
        space = attribute_space if attribute_space is not None and len(attribute_space) else None
        self.attribute_space = space
        self.full_attribute_space = full_attribute_space if full_attribute_space is not None else space
        self.attribute_threshold = float(attribute_threshold)
        self._attribute_rows: list[tuple[np.ndarray, ...]] = []
        self._attribute_images = 0  # images whose ground truth and predictions both had attributes

    def __len__(self) -> int:
        return len(self.records)

    def add(self, gt: Mapping, pred: Mapping, seconds: float | None = None, image_id=None) -> dict:
        """Add one image.

        Args:
            gt: ground truth (see the module docstring).
            pred: ``detect()``'s dict for the image.
            seconds: its inference time in seconds, or None.
            image_id: a label kept in the per-image record (default: ``gt.get("image_id")``).

        Returns:
            The image's record: ``index``, ``image_id``, ``exact_match``, ``jaccard`` and, with masks, ``tp``,
            ``fp``, ``fn`` (at ``iou_threshold``), ``ap50`` (None without ground truth), ``f1``, ``kaggle``.
        """
        index = len(self.records)
        gt_ids = np.asarray(gt["class_ids"], dtype=np.int64).reshape(-1)
        pred_ids = np.asarray(pred["class_ids"], dtype=np.int64).reshape(-1)
        scores = np.asarray(pred.get("scores", np.ones(pred_ids.size)), dtype=np.float64).reshape(-1)
        y_true = m.label_vector(gt_ids, self.num_classes)
        y_pred = m.label_vector(pred_ids, self.num_classes)
        self._labels_true.append(y_true)
        self._labels_pred.append(y_pred)
        record: dict = {
            "index": index,
            "image_id": gt.get("image_id") if image_id is None else image_id,
            "exact_match": bool(np.all(y_true == y_pred)),
            "jaccard": m.jaccard_similarity(y_true[None], y_pred[None]),
            "seconds": None if seconds is None else float(seconds),
            "has_masks": gt.get("masks") is not None,
        }
        if record["has_masks"]:
            record.update(self._add_masks(index, gt, gt_ids, pred, pred_ids, scores))
        self.records.append(record)
        return record

    def _add_masks(
        self,
        index: int,
        gt: Mapping,
        gt_ids: np.ndarray,
        pred: Mapping,
        pred_ids: np.ndarray,
        scores: np.ndarray,
    ) -> dict:
        gt_masks = np.asarray(gt["masks"]).astype(bool)
        pred_masks = pred.get("masks")
        if pred_masks is None or np.size(pred_masks) == 0:
            pred_masks = np.zeros(gt_masks.shape[:2] + (0,), dtype=bool)
        pred_masks = np.asarray(pred_masks).astype(bool)
        if pred_masks.shape[-1] != pred_ids.size:
            raise ValueError(f"image {index}: {pred_masks.shape[-1]} masks for {pred_ids.size} detections")
        args = (gt_ids, gt_masks, pred_ids, scores, pred_masks)
        tp, fp, fn = m.match_counts(*args, iou_threshold=self.iou_threshold)
        out = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "ap50": m.image_ap50(*args, iou_threshold=self.iou_threshold),
            "f1": m.f1_from_counts(tp, fp, fn),
            "kaggle": m.kaggle_image_score(*args),
        }
        if self.use_pixel:
            gt_map = m.label_map(gt_ids, gt_masks)
            pred_map = m.label_map(pred_ids, pred_masks, scores)
            self._confusion += m.pixel_confusion_matrix(gt_map, pred_map, self.num_classes)
        self._count_instance_confusion(*args)
        attributes = self._attributes_of(gt, gt_ids, pred, pred_ids.size)
        if attributes is not None:
            self._add_attribute_rows(args, attributes)
        if self.use_coco:
            image, annotations = coco_eval.coco_image_gt(gt, index + 1, len(self._coco_annotations) + 1)
            self._coco_images.append(image)
            detections = {**pred, "class_ids": pred_ids, "scores": scores, "masks": pred_masks}
            if detections.get("rois") is None:
                detections["rois"] = extract_bboxes(pred_masks)
            results = {t: coco_eval.coco_image_results(detections, index + 1, t) for t in ("bbox", "segm")}
            if attributes is not None:
                for annotation, ids in zip(annotations, attributes["gt_ids"]):
                    annotation["attribute_ids"] = list(ids)
                for result, ids in zip(results["segm"], attributes["pred_ids"]):
                    result["attribute_ids"] = list(ids)
            self._coco_annotations.extend(annotations)
            for iou_type, entries in results.items():
                self._coco_results[iou_type].extend(entries)
        return out

    def _count_instance_confusion(self, gt_ids, gt_masks, pred_ids, scores, pred_masks) -> None:
        """Class-agnostic greedy matching at ``iou_threshold``: which class each found garment was given."""
        order = np.argsort(-scores, kind="stable")
        ious = m.mask_ious(pred_masks[..., order], gt_masks)
        pred_match, gt_match = m.greedy_match(
            ious, np.zeros(pred_ids.size, int), np.zeros(gt_ids.size, int), self.iou_threshold
        )
        for i, j in enumerate(pred_match.tolist()):
            self._instance_confusion[gt_ids[j] if j >= 0 else 0, pred_ids[order[i]]] += 1
        for j in np.flatnonzero(gt_match < 0):
            self._instance_confusion[gt_ids[j], 0] += 1

    def _attributes_of(self, gt: Mapping, gt_ids: np.ndarray, pred: Mapping, n_pred: int) -> dict | None:
        """The image's attributes in the evaluated space, or None when the report has no space or the ground
        truth or the predictions carry none."""
        space = self.attribute_space
        if space is None or gt.get("attribute_ids") is None:
            return None
        if pred.get("attributes") is None and pred.get("attribute_ids") is None:
            return None
        gt_records = [tuple(int(a) for a in r) for r in gt["attribute_ids"]]
        if len(gt_records) != gt_ids.size:
            raise ValueError(f"{len(gt_records)} attribute records for {gt_ids.size} ground-truth instances")
        if pred.get("attributes") is not None:
            scores = np.asarray(pred["attributes"], dtype=np.float64)
            # [N, A] as detect() gives them; an image without detections has [0, A] (no -1 to infer).
            pred_scores = scores.reshape(n_pred, scores.shape[-1] if scores.ndim == 2 else -1)
            if pred_scores.shape[1] != len(space):
                raise ValueError(
                    f"predicted attributes have {pred_scores.shape[1]} columns but the attribute space has "
                    f"{len(space)}"
                )
        else:
            pred_scores = None
        if pred.get("attribute_ids") is not None:
            pred_records = [tuple(int(a) for a in r) for r in pred["attribute_ids"]]
            if len(pred_records) != n_pred:
                raise ValueError(f"{len(pred_records)} attribute lists for {n_pred} detections")
            pred_labels = space.multi_hot_rows(pred_records).astype(bool).reshape(n_pred, len(space))
            if pred_scores is None:
                pred_scores = pred_labels.astype(np.float64)
                for k, given in enumerate(pred.get("attribute_scores") or [None] * n_pred):
                    for source_id, score in (given or {}).items():
                        if space.contains(int(source_id)):
                            pred_scores[k, space.index_of(int(source_id))] = float(score)
        else:
            pred_labels = pred_scores >= self.attribute_threshold
            source_ids = np.asarray(space.source_ids)
            pred_records = [tuple(source_ids[row].tolist()) for row in pred_labels]
        self._attribute_images += 1
        return {
            "gt_ids": gt_records,
            "gt_labels": space.multi_hot_rows(gt_records).astype(bool).reshape(gt_ids.size, len(space)),
            "gt_weights": space.instance_weights(gt_ids, gt_records).reshape(gt_ids.size, len(space)),
            "pred_ids": pred_records,
            "pred_scores": pred_scores,
            "pred_labels": pred_labels,
        }

    def _add_attribute_rows(self, args: tuple, attributes: dict) -> None:
        pairs = am.match_instances(*args, iou_threshold=self.iou_threshold)
        for p, g in pairs:
            self._attribute_rows.append(
                (
                    attributes["pred_scores"][p],
                    attributes["pred_labels"][p],
                    attributes["gt_labels"][g],
                    attributes["gt_weights"][g],
                )
            )

    def compute(self) -> dict:
        """All metrics of the images added so far (the structure is in the module docstring)."""
        if not self.records:
            raise ValueError("no images added")
        y_true = np.stack(self._labels_true)
        y_pred = np.stack(self._labels_pred)
        emr = m.exact_match_ratio(y_true, y_pred)
        oa = m.overall_accuracy(y_true, y_pred)
        jss = m.jaccard_similarity(y_true, y_pred)
        classification = {
            "exact_match_ratio": emr,
            "overall_accuracy": oa,
            "jaccard_similarity": jss,
            "classification_score": m.classification_score(emr, oa, jss),
        }
        with_masks = [r for r in self.records if r["has_masks"]]
        segmentation = self._segmentation(with_masks) if with_masks else None
        speed = self._speed()
        trade_off = None
        if segmentation is not None and segmentation["segmentation_score"] is not None and speed is not None:
            trade_off = m.trade_off_score(
                classification["classification_score"],
                segmentation["segmentation_score"],
                speed["speed_score"],
            )
        return {
            "num_images": len(self.records),
            "num_images_with_masks": len(with_masks),
            "class_names": list(self.class_names),
            "iou_threshold": self.iou_threshold,
            "classification": classification,
            "segmentation": segmentation,
            "coco": self._coco() if with_masks and self.use_coco else None,
            "pixel": self._pixel() if with_masks and self.use_pixel else None,
            "speed": speed,
            "trade_off_score": trade_off,
            "instance_confusion": self._instance_confusion.tolist() if with_masks else None,
            "attributes": self._attributes() if self._attribute_images else None,
            "fashionpedia": self._fashionpedia() if self._attribute_images and self.use_coco else None,
            "per_image": [dict(r) for r in self.records],
        }

    def _segmentation(self, records: list[dict]) -> dict:
        tp = sum(r["tp"] for r in records)
        fp = sum(r["fp"] for r in records)
        fn = sum(r["fn"] for r in records)
        map50 = m.mean_ap50([r["ap50"] for r in records])
        f1 = float(np.mean([r["f1"] for r in records]))
        return {
            "map50": map50,
            "f1": f1,
            "segmentation_score": None if map50 is None else m.segmentation_score(map50, f1),
            "precision_pooled": tp / (tp + fp) if tp + fp else None,
            "recall_pooled": tp / (tp + fn) if tp + fn else None,
            "f1_pooled": m.f1_from_counts(tp, fp, fn),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "kaggle_score": float(np.mean([r["kaggle"] for r in records])),
        }

    def _speed(self) -> dict | None:
        seconds = [r["seconds"] for r in self.records if r["seconds"] is not None]
        if not seconds:
            return None
        mean = m.mean_inference_seconds(seconds)
        return {"mean_inference_seconds": mean, "speed_score": m.speed_score(mean), "num_timed": len(seconds)}

    def _coco(self) -> dict:
        coco_gt = coco_eval.coco_gt_from_annotations(
            self._coco_images, self._coco_annotations, self.class_names
        )
        return {
            iou_type: coco_eval.summarize(coco_gt, results, iou_type, self.class_names)
            for iou_type, results in self._coco_results.items()
        }

    def _attributes(self) -> dict:
        space = self.attribute_space
        a = len(space)
        rows = self._attribute_rows
        stacked = [np.stack([r[i] for r in rows]) if rows else np.zeros([0, a]) for i in range(4)]
        result = am.attribute_metrics(*stacked, space.names, threshold=self.attribute_threshold)
        result["num_images"] = self._attribute_images
        result["source_ids"] = list(space.source_ids)
        return result

    def _fashionpedia(self) -> dict:
        coco_gt = coco_eval.coco_gt_from_annotations(
            self._coco_images, self._coco_annotations, self.class_names
        )
        # Fresh copies: pycocotools' loadRes (already run by _coco) adds bbox/area/id to the dicts it loads.
        added = ("bbox", "area", "id", "iscrowd")
        results = [{k: v for k, v in r.items() if k not in added} for r in self._coco_results["segm"]]
        coco_dt = coco_eval.results_to_coco(coco_gt, results, "segm")
        full = self.full_attribute_space
        return am.fashionpedia_eval(coco_gt, coco_dt, full.annotated_classes(), len(full))

    def _pixel(self) -> dict:
        result = m.pixel_metrics(self._confusion)
        per_class = result.pop("per_class")
        result["per_class"] = {
            self.class_names[c + 1]: {
                "precision": float(per_class["precision"][c]),
                "recall": float(per_class["recall"][c]),
                "f1": float(per_class["f1"][c]),
            }
            for c in np.flatnonzero(per_class["present"])
        }
        result["confusion_matrix"] = self._confusion.tolist()
        return result


def evaluate_predictions(
    gts: Sequence[Mapping],
    preds: Sequence[Mapping],
    class_names: Sequence[str],
    timings: Sequence[float] | None = None,
    iou_threshold: float = 0.5,
    coco: bool = True,
    pixel: bool = True,
    attribute_space=None,
    full_attribute_space=None,
    attribute_threshold: float = 0.5,
) -> dict:
    """Evaluate predictions against ground truth over a set of images.

    Args:
        gts: per-image ground truth dicts (see the module docstring).
        preds: per-image ``detect()`` dicts, same order.
        class_names: names indexed by class id, background first.
        timings: per-image inference seconds (same order), or None.
        iou_threshold, coco, pixel, attribute_space, full_attribute_space, attribute_threshold: see
            :class:`EvaluationReport`.

    Returns:
        :meth:`EvaluationReport.compute`'s dict.
    """
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} predictions")
    if timings is not None and len(timings) != len(gts):
        raise ValueError(f"{len(timings)} timings for {len(gts)} images")
    report = EvaluationReport(
        class_names,
        iou_threshold=iou_threshold,
        coco=coco,
        pixel=pixel,
        attribute_space=attribute_space,
        full_attribute_space=full_attribute_space,
        attribute_threshold=attribute_threshold,
    )
    for i, (gt, pred) in enumerate(zip(gts, preds)):
        report.add(gt, pred, None if timings is None else timings[i])
    return report.compute()


def _fmt(value, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        return f"{100 * value:.1f}%"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(result: Mapping) -> str:
    """A plain-text summary of :func:`evaluate_predictions`'s result: overall metrics, then a per-class
    table (COCO box AP, mask AP, mask AP50, pixel precision/recall/F1). -1 means "no ground truth" (COCO)."""
    lines = [f"Images: {result['num_images']} ({result['num_images_with_masks']} with masks)", ""]

    def section(title: str, rows: list[tuple[str, str]]) -> None:
        lines.append(title)
        width = max(len(name) for name, _ in rows)
        lines.extend(f"  {name:<{width}}  {value}" for name, value in rows)
        lines.append("")

    c = result["classification"]
    section(
        "Multi-label classification (thesis 001)",
        [
            ("Exact match ratio", _fmt(c["exact_match_ratio"], True)),
            ("Overall accuracy", _fmt(c["overall_accuracy"], True)),
            ("Jaccard similarity", _fmt(c["jaccard_similarity"], True)),
            ("Classification score", _fmt(c["classification_score"])),
        ],
    )
    s = result.get("segmentation")
    if s is not None:
        iou = result.get("iou_threshold", 0.5)
        section(
            f"Instance segmentation (mask IoU {iou:g})",
            [
                ("mAP@50", _fmt(s["map50"])),
                ("F1 (mean per image)", _fmt(s["f1"])),
                ("Segmentation score", _fmt(s["segmentation_score"])),
                (
                    "Precision / recall (pooled)",
                    f"{_fmt(s['precision_pooled'])} / {_fmt(s['recall_pooled'])}",
                ),
                ("TP / FP / FN", f"{s['tp']} / {s['fp']} / {s['fn']}"),
                ("Kaggle score (IoU 0.50:0.95)", _fmt(s["kaggle_score"])),
            ],
        )
    coco = result.get("coco")
    if coco is not None:
        names = coco_eval.STAT_NAMES[:6]
        rows = [(iou_type, "  ".join(f"{n}={_fmt(coco[iou_type][n])}" for n in names)) for iou_type in coco]
        section("COCO (pycocotools)", rows)
    p = result.get("pixel")
    if p is not None:
        section(
            "Pixel level (thesis 003)",
            [
                ("Accuracy", _fmt(p["accuracy"], True)),
                ("Foreground accuracy", _fmt(p["foreground_accuracy"], True)),
                (
                    "Precision / recall / F1",
                    " / ".join(_fmt(p[k], True) for k in ("precision", "recall", "f1")),
                ),
            ],
        )
    attrs = result.get("attributes")
    if attrs is not None:
        iou = result.get("iou_threshold", 0.5)
        section(
            f"Attributes of matched instances (mask IoU {iou:g}, score >= {_fmt(attrs.get('threshold'))})",
            [
                ("Matched instances", str(attrs["num_matched"])),
                ("Attribute mAP (mean per-attribute AP)", _fmt(attrs["mAP"])),
                ("Micro F1 / macro F1", f"{_fmt(attrs['micro_f1'])} / {_fmt(attrs['macro_f1'])}"),
                (
                    "Micro precision / recall",
                    f"{_fmt(attrs['micro_precision'])} / {_fmt(attrs['micro_recall'])}",
                ),
            ],
        )
    fp = result.get("fashionpedia")
    if fp is not None:
        section(
            "Fashionpedia (mask IoU and attribute F1 thresholds; -1: no ground truth)",
            [
                ("AP (IoU and F1 0.50:0.95)", _fmt(fp["AP"])),
                ("AP IoU 0.50 / 0.75", f"{_fmt(fp['AP_IOU50'])} / {_fmt(fp['AP_IOU75'])}"),
                ("AP F1 0.50 / 0.75", f"{_fmt(fp['AP_F150'])} / {_fmt(fp['AP_F175'])}"),
                ("AP IoU 0.50 F1 0.50", _fmt(fp["AP_IOU50_F150"])),
                ("AP IoU 0.75 F1 0.75", _fmt(fp["AP_IOU75_F175"])),
                ("APs / APm / APl", " / ".join(_fmt(fp[k]) for k in ("APs", "APm", "APl"))),
                ("AP without attributes (IoU only)", _fmt(fp["AP_IoU_only"])),
            ],
        )
    sp = result.get("speed")
    rows = [("Mean inference seconds", "n/a" if sp is None else f"{sp['mean_inference_seconds']:.3f}")]
    rows.append(("Speed score", "n/a" if sp is None else _fmt(sp["speed_score"])))
    rows.append(("Trade-off score TO", _fmt(result.get("trade_off_score"))))
    section("Speed and trade-off (thesis 001)", rows)

    class_rows = []
    for name in result["class_names"][1:]:
        box = coco["bbox"]["per_class_AP"].get(name) if coco and "bbox" in coco else None
        segm = coco["segm"]["per_class_AP"].get(name) if coco and "segm" in coco else None
        segm50 = coco["segm"]["per_class_AP50"].get(name) if coco and "segm" in coco else None
        pc = p["per_class"].get(name, {}) if p is not None else {}
        cells = [box, segm, segm50, pc.get("precision"), pc.get("recall"), pc.get("f1")]
        class_rows.append([name] + [_fmt(v) for v in cells])
    if coco is not None or p is not None:
        header = ["class", "box AP", "mask AP", "mask AP50", "pix P", "pix R", "pix F1"]
        widths = [max(len(row[i]) for row in [header] + class_rows) for i in range(len(header))]
        lines.append("Per class")
        for row in [header] + class_rows:
            first = f"{row[0]:<{widths[0]}}"
            lines.append("  " + "  ".join([first] + [f"{v:>{w}}" for v, w in zip(row[1:], widths[1:])]))
        lines.append("")
    if attrs is not None and attrs["per_attribute"]:
        header = ["attribute", "AP", "P", "R", "F1", "positives", "samples"]
        rows = [
            [name]
            + [_fmt(v[k]) for k in ("AP", "precision", "recall", "f1")]
            + [str(v["positives"]), str(v["samples"])]
            for name, v in attrs["per_attribute"].items()
        ]
        widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
        lines.append("Per attribute (matched instances)")
        for row in [header] + rows:
            first = f"{row[0]:<{widths[0]}}"
            lines.append("  " + "  ".join([first] + [f"{v:>{w}}" for v, w in zip(row[1:], widths[1:])]))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def write_json(result: Mapping, path: str | Path) -> Path:
    """Write ``result`` as indented JSON (numpy values converted, NaN/inf as null); creates the parent
    folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    return path
