"""Figures of an evaluation and an ``index.html`` that shows them (``fashion/evaluate.py --report DIR``).

Written to DIR:

    index.html               the headline numbers and every figure below (relative links, no external files)
    pr_curves_mask.png       precision-recall curve of each class with ground truth (mask IoU 0.5, COCO's
                             interpolated precision at 101 recall points), its mask AP in the title
    confusion_matrix.png     detections matched to ground truth at the evaluation's IoU regardless of class:
                             true class (rows, plus "false" for detections on no garment) against predicted
                             class (columns, plus "missed")
    attribute_ap.png         per-attribute AP of matched instances (when attributes were scored)
    worst/NN_<image>.png     the images with the most missed + false garments: ground truth beside the
                             detections (mrcnn.visualize.display_instances)
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_visual_report"]


def _pyplot():
    from mrcnn import visualize  # selects a headless backend when there is no display

    del visualize
    import matplotlib.pyplot as plt

    return plt


def _pr_curves(path: Path, coco_segm: Mapping) -> Path | None:
    curves = coco_segm.get("pr_curve_iou50")
    if not curves:
        return None
    classes = [(n, p) for n, p in curves["precision"].items() if min(p) > -1]
    if not classes:
        return None
    plt = _pyplot()
    cols = min(4, len(classes))
    rows = (len(classes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    recall = np.asarray(curves["recall"])
    for ax, (name, precision) in zip(axes.ravel(), classes):
        ax.plot(recall, precision, color="tab:blue")
        ax.fill_between(recall, precision, alpha=0.15)
        ap = coco_segm.get("per_class_AP", {}).get(name)
        ax.set_title(f"{name}  AP={ap:.3f}" if ap is not None and ap > -1 else name, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(classes) :]:
        ax.axis("off")
    fig.suptitle(f"Precision-recall per class (mask IoU {curves['iou']:.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _confusion(path: Path, matrix: list, class_names: list[str]) -> Path | None:
    counts = np.asarray(matrix)
    used = np.flatnonzero(counts.sum(axis=0) + counts.sum(axis=1))
    used = [int(c) for c in used if c > 0]
    if not used:
        return None
    plt = _pyplot()
    rows = used + [0]
    table = counts[np.ix_(rows, rows)]
    rows_labels = [class_names[c] for c in used] + ["false (no garment)"]
    col_labels = [class_names[c] for c in used] + ["missed"]
    size = 1.2 + 0.55 * len(rows)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    ax.imshow(table, cmap="Blues")
    for (i, j), v in np.ndenumerate(table):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if v < table.max() / 2 else "white",
            )
    ax.set_xticks(range(len(rows)), col_labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows_labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Matched instances (any class)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _attribute_bars(path: Path, attributes: Mapping) -> Path | None:
    items = [(n, v["AP"]) for n, v in attributes["per_attribute"].items() if v["AP"] is not None]
    if not items:
        return None
    plt = _pyplot()
    items.sort(key=lambda item: item[1])
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.28 * len(items)))
    ax.barh([n for n, _ in items], [v for _, v in items], color="tab:green")
    ax.set_xlim(0, 1)
    ax.set_xlabel("AP over matched instances")
    ax.tick_params(axis="y", labelsize=8)
    mean = attributes.get("mAP")
    ax.set_title(f"Per-attribute AP (mean {mean:.3f})" if mean is not None else "Per-attribute AP")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _decode(rles: list) -> np.ndarray | None:
    if not rles:
        return None
    from pycocotools import mask as mask_utils

    return mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles]).astype(bool)


def _worst_image(path: Path, dataset: Any, image_index: int, prediction: Mapping, record: Mapping) -> Path:
    from mrcnn import visualize
    from mrcnn.boxes import extract_bboxes

    plt = _pyplot()
    image = dataset.load_image(image_index)
    masks, class_ids = dataset.load_mask(image_index)
    keep = class_ids > 0
    masks, class_ids = masks[:, :, keep], class_ids[keep]
    h, w = image.shape[:2]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.5 * h / max(w, 1) + 0.6))
    visualize.display_instances(
        image, extract_bboxes(masks), masks, class_ids, dataset.class_names, title="ground truth", ax=left
    )
    pred_masks = _decode(prediction.get("rles", []))
    if pred_masks is None:
        pred_masks = np.zeros([h, w, 0], bool)
    visualize.display_instances(
        image,
        extract_bboxes(pred_masks),
        pred_masks,
        np.asarray(prediction["class_ids"]),
        dataset.class_names,
        scores=np.asarray(prediction["scores"]),
        title=f"detections: {record['fn']} missed, {record['fp']} false",
        ax=right,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:60]


def write_visual_report(
    directory: str | os.PathLike,
    result: Mapping,
    dataset: Any,
    predictions: Mapping[int, Mapping],
    worst: int = 6,
) -> Path:
    """Writes the figures and ``index.html`` (see the module docstring); returns the index path.

    Args:
        result: ``fashion/evaluate.py``'s result (``EvaluationReport.compute`` plus ``summary``).
        dataset: the evaluated dataset (images and ground truth of the worst images are read from it).
        predictions: ``{dataset image index: detections}`` with ``class_ids``, ``scores`` and ``rles``
            (COCO RLE of the masks at the evaluated size).
        worst: how many of the worst images to draw.
    """
    out = Path(directory)
    (out / "worst").mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    coco = result.get("coco") or {}
    if "segm" in coco:
        made = _pr_curves(out / "pr_curves_mask.png", coco["segm"])
        if made:
            figures.append(("Precision-recall per class (masks)", made))
    if result.get("instance_confusion") is not None:
        made = _confusion(
            out / "confusion_matrix.png", result["instance_confusion"], list(result["class_names"])
        )
        if made:
            figures.append(("Class confusion of matched instances", made))
    if result.get("attributes"):
        made = _attribute_bars(out / "attribute_ap.png", result["attributes"])
        if made:
            figures.append(("Per-attribute AP", made))

    index_of = {str(info["id"]): i for i, info in enumerate(dataset.image_info)}
    records = [r for r in result.get("per_image", []) if r.get("has_masks") and (r["fp"] + r["fn"]) > 0]
    records.sort(key=lambda r: (-(r["fp"] + r["fn"]), r["index"]))
    worst_figures = []
    for rank, record in enumerate(records[:worst], 1):
        image_index = index_of.get(str(record["image_id"]))
        if image_index is None or image_index not in predictions:
            continue
        path = out / "worst" / f"{rank:02d}_{_safe(record['image_id'])}.png"
        _worst_image(path, dataset, image_index, predictions[image_index], record)
        worst_figures.append((f"{record['image_id']}: {record['fn']} missed, {record['fp']} false", path))

    index = out / "index.html"
    index.write_text(_html(result, figures, worst_figures, out), encoding="utf-8")
    return index


def _html(result: Mapping, figures: list, worst_figures: list, root: Path) -> str:
    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>"
        for k, v in (result.get("summary") or {}).items()
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td{padding:2px 10px;border-bottom:1px solid #ddd}img{max-width:100%;border:1px solid #ccc}"
        "figure{margin:1.5em 0}</style></head><body>",
        "<h1>Evaluation report</h1>",
        f"<p>{result.get('num_images')} images ({result.get('num_images_with_masks')} with masks).</p>",
        f"<h2>Headline numbers</h2><table>{rows}</table>",
    ]
    for title, path in figures:
        rel = path.relative_to(root).as_posix()
        parts.append(
            f"<figure><h2>{html.escape(title)}</h2><img src='{html.escape(rel)}' alt='{html.escape(title)}'></figure>"
        )
    if worst_figures:
        parts.append("<h2>Worst images (most missed + false garments): ground truth | detections</h2>")
        for title, path in worst_figures:
            rel = path.relative_to(root).as_posix()
            parts.append(
                f"<figure><img src='{html.escape(rel)}' alt='{html.escape(title)}'>"
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
