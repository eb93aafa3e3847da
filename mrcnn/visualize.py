"""Drawing helpers for images, detections, metrics, weights and training curves (Matterport's names).

Every drawing function either draws into a given matplotlib axis (``ax=`` / ``axes=``) or creates its own
figure. With ``save_path=...`` the figure is written as a PNG, closed (if this module created it) and the
path is returned; otherwise the Axes (or, for multi-panel plots, the Figure) is returned. A figure created
here is shown with ``plt.show()`` only under an interactive backend (a GUI window, or inline in a notebook),
as Matterport does; under Agg nothing is shown.

Importing this module on a Linux machine without ``DISPLAY``/``WAYLAND_DISPLAY`` selects the Agg backend,
unless the user chose a backend through ``MPLBACKEND`` or the configured backend is a non-GUI one (Agg,
notebook inline, ...).

Conventions: images ``[H, W, 3]`` (uint8, or float in 0..255; float images with max <= 1 are scaled by 255),
pixel boxes ``[N, (y1, x1, y2, x2)]`` with y2/x2 exclusive, masks ``[H, W, N]`` bool (or probabilities,
> 0.5 counts as inside), class ids ``[N]`` int with 0 = background.
"""

from __future__ import annotations

import colorsys
import csv
import html
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

_GUI_BACKENDS = {
    "gtk3agg",
    "gtk3cairo",
    "gtk4agg",
    "gtk4cairo",
    "macosx",
    "qtagg",
    "qtcairo",
    "qt5agg",
    "qt5cairo",
    "tkagg",
    "tkcairo",
    "wx",
    "wxagg",
    "wxcairo",
}
_NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def _select_headless_backend() -> None:
    """Switch to Agg when no display is reachable and a GUI backend (or none yet) is configured."""
    if os.environ.get("MPLBACKEND"):
        return
    if not sys.platform.startswith("linux"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    get_or_none = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    backend = get_or_none() if get_or_none is not None else dict.__getitem__(matplotlib.rcParams, "backend")
    if not isinstance(backend, str) or backend.lower() in _GUI_BACKENDS:
        matplotlib.use("Agg")


_select_headless_backend()

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patches  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mrcnn.masks import unmold_mask  # noqa: E402
from mrcnn.metrics import compute_matches  # noqa: E402

__all__ = [
    "random_colors",
    "class_colors",
    "apply_mask",
    "display_images",
    "display_instances",
    "display_top_masks",
    "display_differences",
    "plot_precision_recall",
    "plot_overlaps",
    "draw_boxes",
    "draw_rois",
    "draw_box",
    "display_table",
    "display_weight_stats",
    "plot_training_curves",
    "LOSS_NAMES",
]

LOSS_NAMES = (
    "loss",
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)
# The attribute head's loss: plotted as a seventh curve when a run logged it.
ATTRIBUTE_LOSS_NAME = "mrcnn_attr_loss"
_GOLDEN_RATIO = 0.6180339887498949


# ----------------------------------------------------------------------------------------------------------
# Colours and masks
# ----------------------------------------------------------------------------------------------------------


def random_colors(N: int, bright: bool = True, seed: int | None = None) -> list[tuple[float, float, float]]:
    """``N`` visually distinct RGB colours in [0, 1], evenly spaced in hue, in shuffled order.

    ``seed=None`` shuffles differently on every call (as Matterport); pass a seed for repeatable colours.
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(N, 1), 1.0, brightness) for i in range(N)]
    order = np.random.default_rng(seed).permutation(N)
    return [colors[i] for i in order]


def class_colors(
    class_ids: Sequence[int] | np.ndarray, bright: bool = True
) -> list[tuple[float, float, float]]:
    """A fixed RGB colour in [0, 1] for each class id: the same id always gets the same colour.

    Hues step by the golden ratio, so neighbouring ids get well-separated colours for any number of classes.
    """
    brightness = 1.0 if bright else 0.7
    return [
        colorsys.hsv_to_rgb((int(c) * _GOLDEN_RATIO + 0.1) % 1.0, 0.9, brightness)
        for c in np.asarray(class_ids).reshape(-1)
    ]


def apply_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[float], alpha: float = 0.5) -> np.ndarray:
    """Blend ``color`` into ``image`` where ``mask`` is set, in place, and return the image.

    Args:
        image: ``[H, W, 3]`` array, values in 0..255 (any dtype; results are rounded for integer dtypes).
        mask: ``[H, W]`` bool (or probabilities; > 0.5 is inside).
        color: RGB in [0, 1].
        alpha: opacity of the colour.
    """
    inside = np.asarray(mask) > 0.5
    target = np.asarray(color[:3], dtype=np.float64) * 255.0
    blended = image[inside].astype(np.float64) * (1.0 - alpha) + alpha * target
    if np.issubdtype(image.dtype, np.integer):
        blended = np.round(blended)
    image[inside] = blended.astype(image.dtype)
    return image


# ----------------------------------------------------------------------------------------------------------
# Shared plumbing
# ----------------------------------------------------------------------------------------------------------


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Axes, bool]:
    if ax is not None:
        return ax, False
    _, ax = plt.subplots(1, figsize=figsize)
    return ax, True


def _finish(fig: Figure, created: bool, save_path: str | os.PathLike | None, result: Any) -> Any:
    """Save (and close a figure we created) or show it under an interactive backend; return the result."""
    if save_path is not None:
        fig.savefig(save_path, format="png", bbox_inches="tight", dpi=fig.dpi)
        if created:
            plt.close(fig)
        return str(save_path)
    if created and matplotlib.get_backend().lower() not in _NON_INTERACTIVE_BACKENDS:
        plt.show()
    return result


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` -> ``[H, W, 3]`` uint8 copy."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = image[..., :3]
    if np.issubdtype(image.dtype, np.floating):
        scale = 255.0 if image.size and np.nanmax(image) <= 1.0 else 1.0
        image = np.round(np.clip(image * scale, 0, 255))
    elif image.dtype == bool:
        image = image * 255
    return np.clip(image, 0, 255).astype(np.uint8)


def _prepare_image_axes(ax: Axes, height: int, width: int, title: str) -> None:
    margin = max(2.0, 0.02 * max(height, width))
    # Pixel (r, c) covers [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]; y grows downward as in the image.
    ax.set_ylim(height - 0.5 + margin, -0.5 - margin)
    ax.set_xlim(-0.5 - margin, width - 0.5 + margin)
    ax.axis("off")
    ax.set_title(title)


def _box_patch(box: np.ndarray, color, **kwargs) -> patches.Rectangle:
    """Rectangle along the outer pixel edges of a ``(y1, x1, y2, x2)`` box with exclusive y2/x2."""
    y1, x1, y2, x2 = (float(v) for v in box[:4])
    return patches.Rectangle(
        (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, edgecolor=color, facecolor="none", **kwargs
    )


def _draw_mask_outline(ax: Axes, mask: np.ndarray, color) -> None:
    from skimage.measure import find_contours

    # Pad so that masks touching the image border still give closed contours.
    padded = np.pad((np.asarray(mask) > 0.5).astype(np.float32), 1)
    for contour in find_contours(padded, 0.5):
        xy = np.fliplr(contour) - 1  # (row, col) -> (x, y), undo the padding
        ax.add_patch(patches.Polygon(xy, closed=True, facecolor="none", edgecolor=color, linewidth=1))


def _caption(ax: Axes, x: float, y: float, text: str, color, fontsize: float = 9, va: str = "top") -> None:
    """White text on a tinted label with its top-left (``va="top"``) or bottom-left corner at (x, y)."""
    ax.text(
        x,
        y,
        text,
        color="white",
        fontsize=fontsize,
        va=va,
        ha="left",
        clip_on=True,
        bbox={"facecolor": color, "alpha": 0.6, "pad": 1.5, "edgecolor": "none"},
    )


def _as_masks(masks: np.ndarray | None, height: int, width: int) -> np.ndarray:
    if masks is None:
        return np.zeros((height, width, 0), dtype=bool)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[..., None]
    return masks


# ----------------------------------------------------------------------------------------------------------
# Images and instances
# ----------------------------------------------------------------------------------------------------------


def display_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cols: int = 4,
    cmap: Any = None,
    norm: Any = None,
    interpolation: str | None = None,
    axes: Sequence[Axes] | None = None,
    save_path: str | os.PathLike | None = None,
) -> Figure | str:
    """Show a list of images in a grid, each with an optional title.

    Args:
        images: each ``[H, W, 3]`` (shown as uint8 RGB) or ``[H, W]`` (shown through ``cmap``/``norm``).
        titles: one per image; default none.
        cols: images per row.
        axes: optional axes to draw into, at least ``len(images)`` of them (flattened).
        save_path: write a PNG there and return the path.

    Returns:
        The Figure, or ``save_path``.
    """
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    created = axes is None
    if created:
        cols = max(1, min(cols, max(len(images), 1)))
        rows = max(1, -(-len(images) // cols))
        fig, grid = plt.subplots(rows, cols, figsize=(14, 14 * rows / cols), squeeze=False)
        axes = list(grid.flat)
    else:
        axes = list(np.asarray(axes, dtype=object).flat)
        fig = axes[0].figure
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= len(images):
            continue
        image = np.asarray(images[i])
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            image = _to_rgb_uint8(image)
        elif image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        ax.set_title(titles[i], fontsize=9)
        ax.imshow(image, cmap=cmap, norm=norm, interpolation=interpolation)
    return _finish(fig, created, save_path, fig)


def display_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray | None = None,
    title: str = "",
    figsize: tuple[float, float] = (16, 16),
    ax: Axes | None = None,
    show_mask: bool = True,
    show_bbox: bool = True,
    colors: Sequence[Sequence[float]] | None = None,
    captions: Sequence[str] | None = None,
    save_path: str | os.PathLike | None = None,
) -> Axes | str:
    """Draw instances over an image: translucent masks with outlines, dashed boxes and captions.

    Args:
        image: ``[H, W, 3]``.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes; all-zero rows (padding) are skipped.
        masks: ``[H, W, N]`` bool.
        class_ids: ``[N]`` int.
        class_names: name of each class id (index 0 = background).
        scores: ``[N]`` confidences, or None; shown in the caption as "name 0.95".
        title: axis title.
        figsize: size of the figure created when ``ax`` is None.
        ax: axis to draw into.
        show_mask, show_bbox: draw masks / boxes.
        colors: one RGB (0..1) per instance; default: a fixed colour per class (see :func:`class_colors`).
        captions: one string per instance, replacing "name score".
        save_path: write a PNG there and return the path.

    Returns:
        The Axes, or ``save_path``. Zero instances draw the bare image.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    height, width = np.asarray(image).shape[:2]
    masks = _as_masks(masks, height, width)
    n = boxes.shape[0]
    if not (n == masks.shape[-1] == class_ids.shape[0]):
        raise ValueError(
            f"boxes ({n}), masks ({masks.shape[-1]}) and class_ids ({class_ids.shape[0]}) disagree in count"
        )
    ax, created = _new_axes(ax, figsize)
    colors = list(colors) if colors is not None else class_colors(class_ids)
    _prepare_image_axes(ax, height, width, title)

    masked_image = _to_rgb_uint8(image).astype(np.float64)
    for i in range(n):
        if not np.any(boxes[i]):
            continue
        color = colors[i]
        if show_bbox:
            ax.add_patch(_box_patch(boxes[i], color, linewidth=2, alpha=0.8, linestyle="dashed"))
        if captions is not None:
            caption = captions[i]
        else:
            name = class_names[class_ids[i]] if 0 <= class_ids[i] < len(class_names) else str(class_ids[i])
            caption = f"{name} {float(scores[i]):.2f}" if scores is not None else name
        if caption:
            _caption(ax, boxes[i][1] - 0.5, boxes[i][0] - 0.5, caption, color)
        if show_mask:
            apply_mask(masked_image, masks[:, :, i], color)
            _draw_mask_outline(ax, masks[:, :, i], color)
    ax.imshow(masked_image.astype(np.uint8), interpolation="nearest")
    return _finish(ax.figure, created, save_path, ax)


def display_top_masks(
    image: np.ndarray,
    mask: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    limit: int = 4,
    axes: Sequence[Axes] | None = None,
    save_path: str | os.PathLike | None = None,
) -> Figure | str:
    """The image next to the ``limit`` classes with the largest total mask area, one panel per class.

    Each class panel shows its instances numbered 1..k (``Blues_r`` colour map); "-" marks an empty slot.

    Args:
        image: ``[H, W, 3]``.
        mask: ``[H, W, N]`` bool.
        class_ids: ``[N]`` int.
        class_names: name of each class id.
        limit: number of class panels.
        axes, save_path: as :func:`display_images`.
    """
    height, width = np.asarray(image).shape[:2]
    mask = _as_masks(mask, height, width)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    to_display = [image]
    titles = [f"H x W={height}x{width}"]
    unique_ids = np.unique(class_ids)
    areas = [float(np.sum(mask[:, :, class_ids == c] > 0.5)) for c in unique_ids]
    top_ids = [int(c) for c, a in sorted(zip(unique_ids, areas), key=lambda pair: -pair[1]) if a > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        instances = (mask[:, :, class_ids == class_id] > 0.5).astype(np.int32)
        # Instance k of this class is drawn with value k, so overlapping instances stay distinguishable.
        numbered = np.max(instances * np.arange(1, instances.shape[-1] + 1), axis=-1, initial=0)
        to_display.append(numbered)
        titles.append(class_names[class_id] if class_id != -1 else "-")
    return display_images(
        to_display, titles=titles, cols=limit + 1, cmap="Blues_r", axes=axes, save_path=save_path
    )


def display_differences(
    image: np.ndarray,
    gt_box: np.ndarray,
    gt_class_id: np.ndarray,
    gt_mask: np.ndarray,
    pred_box: np.ndarray,
    pred_class_id: np.ndarray,
    pred_score: np.ndarray,
    pred_mask: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
    ax: Axes | None = None,
    show_mask: bool = True,
    show_box: bool = True,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    save_path: str | os.PathLike | None = None,
) -> Axes | str:
    """Ground truth (green) and predictions (red) on one image, matched to each other by mask IoU.

    Matching is :func:`mrcnn.metrics.compute_matches` (same class, mask IoU >= ``iou_threshold``). A
    prediction's caption is "name score / IoU", the IoU with its matched ground truth, or with the best
    overlapping ground truth when unmatched; unmatched ground truth is labelled "name (missed)".

    Args:
        image: ``[H, W, 3]``.
        gt_box, gt_class_id, gt_mask: ``[G, 4]``, ``[G]``, ``[H, W, G]``.
        pred_box, pred_class_id, pred_score, pred_mask: ``[P, 4]``, ``[P]``, ``[P]``, ``[H, W, P]``.
        class_names: name of each class id.
        iou_threshold: minimum mask IoU of a match.
        score_threshold: passed to ``compute_matches`` (Matterport's parameter; it filters by IoU there).
        ax, save_path: as :func:`display_instances`.
    """
    height, width = np.asarray(image).shape[:2]
    gt_box = np.asarray(gt_box).reshape(-1, 4)
    gt_class_id = np.asarray(gt_class_id).reshape(-1).astype(np.int64)
    gt_mask = _as_masks(gt_mask, height, width)
    pred_box = np.asarray(pred_box).reshape(-1, 4)
    pred_class_id = np.asarray(pred_class_id).reshape(-1).astype(np.int64)
    pred_score = np.asarray(pred_score, dtype=np.float64).reshape(-1)
    pred_mask = _as_masks(pred_mask, height, width)

    # compute_matches orders predictions by score; use the same order so indices line up.
    order = np.argsort(pred_score, kind="stable")[::-1]
    pred_box, pred_class_id = pred_box[order], pred_class_id[order]
    pred_score, pred_mask = pred_score[order], pred_mask[..., order]
    gt_match, pred_match, overlaps = compute_matches(
        gt_box,
        gt_class_id,
        gt_mask,
        pred_box,
        pred_class_id,
        pred_score,
        pred_mask,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
    )
    n_gt, n_pred = len(gt_match), len(pred_match)
    gt_box, gt_class_id, gt_mask = gt_box[:n_gt], gt_class_id[:n_gt], gt_mask[..., :n_gt]
    pred_box, pred_class_id = pred_box[:n_pred], pred_class_id[:n_pred]
    pred_score, pred_mask = pred_score[:n_pred], pred_mask[..., :n_pred]

    def name(class_id: int) -> str:
        return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

    gt_captions = ["" if gt_match[j] > -1 else f"{name(gt_class_id[j])} (missed)" for j in range(n_gt)]
    pred_captions = []
    for i in range(n_pred):
        if pred_match[i] > -1:
            iou = overlaps[i, int(pred_match[i])]
        else:
            iou = overlaps[i].max() if overlaps.shape[1] else 0.0
        pred_captions.append(f"{name(pred_class_id[i])} {pred_score[i]:.2f} / {iou:.2f}")
    n_tp = int(np.sum(pred_match > -1))
    if not title:
        title = (
            f"Ground truth (green) vs predictions (red), captions: score / IoU\n"
            f"TP={n_tp}  FP={n_pred - n_tp}  FN={n_gt - n_tp}"
        )
    gt_color, pred_color = (0.0, 0.8, 0.0), (0.9, 0.0, 0.0)
    ax, created = _new_axes(ax, (16, 16))
    display_instances(
        image,
        np.concatenate([gt_box, pred_box]).reshape(-1, 4),
        np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]),
        class_names,
        title=title,
        ax=ax,
        show_mask=show_mask,
        show_bbox=show_box,
        colors=[gt_color] * n_gt + [pred_color] * n_pred,
        captions=[""] * n_gt + pred_captions,
    )
    # Ground-truth captions go to the bottom-left corner so they do not cover the predictions' captions.
    for j in range(n_gt):
        if gt_captions[j] and np.any(gt_box[j]):
            _caption(ax, gt_box[j][1] - 0.5, gt_box[j][2] - 0.5, gt_captions[j], gt_color, va="bottom")
    return _finish(ax.figure, created, save_path, ax)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    refined_boxes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    captions: Sequence[str] | None = None,
    visibilities: Sequence[int] | None = None,
    title: str = "",
    ax: Axes | None = None,
    save_path: str | os.PathLike | None = None,
) -> Axes | str:
    """Draw anchors, proposals or ROIs, optionally with their refinements, masks and captions.

    Args:
        image: ``[H, W, 3]``.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes (e.g. anchors or proposals), drawn dotted/dashed.
        refined_boxes: ``[N, 4]`` boxes after refinement, drawn solid, each joined to its box by a line.
        masks: ``[H, W, N]`` bool.
        captions: one string per box, shown at the refined box (or the box).
        visibilities: per box 0 (grey, dotted, faint), 1 (coloured, dotted; the default) or 2 (coloured,
            solid, emphasised).
        title: axis title.
        ax, save_path: as :func:`display_instances`.
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes")
    boxes = None if boxes is None else np.asarray(boxes).reshape(-1, 4)
    refined_boxes = None if refined_boxes is None else np.asarray(refined_boxes).reshape(-1, 4)
    n = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    if boxes is not None and refined_boxes is not None and refined_boxes.shape[0] != n:
        raise ValueError("boxes and refined_boxes disagree in count")
    height, width = np.asarray(image).shape[:2]
    ax, created = _new_axes(ax, (12, 12))
    _prepare_image_axes(ax, height, width, title)
    # Colours by index, deterministic across calls.
    colors = class_colors(np.arange(1, n + 1))
    masked_image = _to_rgb_uint8(image).astype(np.float64)
    for i in range(n):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility == 0:
            color, style, alpha = (0.5, 0.5, 0.5), "dotted", 0.5
        elif visibility == 1:
            color, style, alpha = colors[i], "dotted", 1.0
        else:
            color, style, alpha = colors[i], "solid", 1.0
        if boxes is not None and np.any(boxes[i]):
            ax.add_patch(
                _box_patch(
                    boxes[i], color, linewidth=2 if visibility == 2 else 1, alpha=alpha, linestyle=style
                )
            )
        if refined_boxes is not None and visibility > 0 and np.any(refined_boxes[i]):
            ax.add_patch(_box_patch(refined_boxes[i], color, linewidth=2))
            if boxes is not None and np.any(boxes[i]):
                ax.plot(
                    [boxes[i][1] - 0.5, refined_boxes[i][1] - 0.5],
                    [boxes[i][0] - 0.5, refined_boxes[i][0] - 0.5],
                    color=color,
                    linewidth=1,
                )
        if captions is not None and captions[i]:
            anchor_box = refined_boxes[i] if refined_boxes is not None else boxes[i]
            _caption(ax, anchor_box[1] - 0.5, anchor_box[0] - 0.5, captions[i], color)
        if masks is not None:
            mask = _as_masks(masks, height, width)[:, :, i]
            apply_mask(masked_image, mask, color)
            _draw_mask_outline(ax, mask, color)
    ax.imshow(masked_image.astype(np.uint8), interpolation="nearest")
    return _finish(ax.figure, created, save_path, ax)


def _roi_mask(mask: np.ndarray, index: int, class_id: int) -> np.ndarray:
    """The ``[mh, mw]`` mask of ROI ``index``: ``mask`` is ``[N, mh, mw]`` or class-specific
    ``[N, mh, mw, NUM_CLASSES]`` (then the channel of the ROI's class)."""
    roi_mask = np.asarray(mask[index])
    return roi_mask[:, :, class_id] if roi_mask.ndim == 3 else roi_mask


def draw_rois(
    image: np.ndarray,
    rois: np.ndarray,
    refined_rois: np.ndarray,
    mask: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    limit: int = 10,
    ax: Axes | None = None,
    save_path: str | os.PathLike | None = None,
    *,
    rng: np.random.Generator | None = None,
) -> Axes | str:
    """Draw training ROIs: each ROI dashed (grey for a background ROI); for each positive ROI also its refined
    box (solid), a line from the ROI's top-left corner to the refined box's, the class name and the ROI's mask.

    Prints the number of positive and negative ROIs and the positive ratio (over all ROIs), as Matterport.

    Args:
        image: ``[H, W, 3]``.
        rois: ``[N, (y1, x1, y2, x2)]`` pixel boxes, e.g. from ``build_detection_targets``.
        refined_rois: ``[N, 4]`` pixel boxes: the ROIs with their box deltas applied.
        mask: ``[N, mh, mw]`` masks of the ROIs (probabilities or bool, e.g. 28x28), or class-specific
            ``[N, mh, mw, NUM_CLASSES]`` (the channel of each ROI's class is drawn); each is resized into its
            ROI and thresholded at 0.5.
        class_ids: ``[N]`` int, 0 for a background ROI.
        class_names: name of each class id.
        limit: at most this many ROIs are drawn, picked at random when there are more.
        ax, save_path: as :func:`display_instances`.
        rng: keyword-only extension: random source for the pick (default numpy's global one, as Matterport).

    Returns:
        The Axes, or ``save_path``.
    """
    rois = np.asarray(rois).reshape(-1, 4)
    refined_rois = np.asarray(refined_rois).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    n = rois.shape[0]
    if not (refined_rois.shape[0] == class_ids.shape[0] == len(mask) == n):
        raise ValueError(
            f"rois ({n}), refined_rois ({refined_rois.shape[0]}), mask ({len(mask)}) and class_ids "
            f"({class_ids.shape[0]}) disagree in count"
        )
    ids = np.arange(n)
    if n > limit:
        ids = (rng.choice if rng is not None else np.random.choice)(ids, limit, replace=False)
    height, width = np.asarray(image).shape[:2]
    ax, created = _new_axes(ax, (12, 12))
    title = f"Showing {len(ids)} random ROIs out of {n}" if n > limit else f"{len(ids)} ROIs"
    _prepare_image_axes(ax, height, width, title)

    colors = class_colors(np.arange(1, len(ids) + 1))
    masked_image = _to_rgb_uint8(image).astype(np.float64)
    for color, i in zip(colors, ids):
        class_id = int(class_ids[i])
        ax.add_patch(_box_patch(rois[i], color if class_id else "gray", linewidth=2, linestyle="dashed"))
        if not class_id:
            continue
        ax.add_patch(_box_patch(refined_rois[i], color, linewidth=2))
        ax.plot(
            [rois[i][1] - 0.5, refined_rois[i][1] - 0.5],
            [rois[i][0] - 0.5, refined_rois[i][0] - 0.5],
            color=color,
            linewidth=1,
        )
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        _caption(ax, refined_rois[i][1] - 0.5, refined_rois[i][0] - 0.5, name, color)
        roi_mask = unmold_mask(_roi_mask(mask, i, class_id), rois[i][:4].astype(np.int32), (height, width))
        apply_mask(masked_image, roi_mask, color)
    ax.imshow(masked_image.astype(np.uint8), interpolation="nearest")

    positives = int(np.sum(class_ids > 0))
    print("Positive ROIs: ", positives)
    print("Negative ROIs: ", int(np.sum(class_ids == 0)))
    print(f"Positive Ratio: {positives / max(n, 1):.2f}")
    return _finish(ax.figure, created, save_path, ax)


def _line(start: int, stop: int) -> slice:
    """Rows or columns start..stop-1, the part at negative indices dropped (not wrapped around)."""
    return slice(max(start, 0), max(stop, 0))


def draw_box(image: np.ndarray, box: Sequence[int], color: Sequence[int]) -> np.ndarray:
    """Paint a box outline, 2 pixels wide, into the image array and return it (changed in place, as Matterport).

    Args:
        image: ``[H, W, C]`` array.
        box: ``(y1, x1, y2, x2)`` int pixels, y2/x2 exclusive.
        color: the value to paint, one per channel (e.g. RGB 0..255 for a uint8 image).

    Painted: rows y1, y1+1 and y2, y2+1 over columns x1..x2-1, and columns x1, x1+1 and x2, x2+1 over rows
    y1..y2-1 (Matterport's pixels: the bottom and right lines lie just outside the box). Parts outside the
    image are left out.
    """
    y1, x1, y2, x2 = (int(v) for v in np.asarray(box).reshape(-1)[:4])
    color = np.asarray(color)
    image[_line(y1, y1 + 2), _line(x1, x2)] = color
    image[_line(y2, y2 + 2), _line(x1, x2)] = color
    image[_line(y1, y2), _line(x1, x1 + 2)] = color
    image[_line(y1, y2), _line(x2, x2 + 2)] = color
    return image


# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------


def plot_precision_recall(
    AP: float,
    precisions: np.ndarray,
    recalls: np.ndarray,
    ax: Axes | None = None,
    save_path: str | os.PathLike | None = None,
) -> Axes | str:
    """Plot a precision/recall curve as returned by :func:`mrcnn.metrics.compute_ap`.

    Args:
        AP: average precision, shown in the title.
        precisions, recalls: ``[K]`` matching arrays in [0, 1].
        ax, save_path: as :func:`display_instances`.
    """
    ax, created = _new_axes(ax, (6, 5))
    ax.set_title(f"Precision-Recall Curve. AP@50 = {float(AP):.3f}")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.grid(True, alpha=0.3)
    # steps-pre: precision p_i holds on (r_{i-1}, r_i], so the area under the line equals the AP.
    ax.plot(np.asarray(recalls), np.asarray(precisions), drawstyle="steps-pre", linewidth=2)
    return _finish(ax.figure, created, save_path, ax)


def plot_overlaps(
    gt_class_ids: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    overlaps: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.5,
    ax: Axes | None = None,
    save_path: str | os.PathLike | None = None,
) -> Axes | str:
    """Heat map of the IoU of each prediction (rows) with each ground-truth instance (columns).

    Cells above ``threshold`` are labelled "match" (same class) or "wrong" (different class).

    Args:
        gt_class_ids: ``[G]`` int; zeros (padding) are dropped.
        pred_class_ids: ``[P]`` int, in the row order of ``overlaps``; zeros are dropped.
        pred_scores: ``[P]`` confidences, same order.
        overlaps: ``[P, G]`` IoUs.
        class_names: name of each class id.
        ax, save_path: as :func:`display_instances`.
    """
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1).astype(np.int64)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1).astype(np.int64)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    overlaps = np.asarray(overlaps, dtype=np.float64)
    if overlaps.ndim != 2 or overlaps.size == 0:
        overlaps = np.zeros((len(pred_class_ids), len(gt_class_ids)))
    # Drop padding (class 0) rows/columns; overlaps may already exclude trailing padding.
    keep_pred = (pred_class_ids != 0)[: overlaps.shape[0]]
    keep_gt = (gt_class_ids != 0)[: overlaps.shape[1]]
    overlaps = overlaps[: len(keep_pred), : len(keep_gt)][keep_pred][:, keep_gt]
    pred_class_ids, pred_scores = (
        pred_class_ids[: len(keep_pred)][keep_pred],
        pred_scores[: len(keep_pred)][keep_pred],
    )
    gt_class_ids = gt_class_ids[: len(keep_gt)][keep_gt]
    n_pred, n_gt = overlaps.shape

    ax, created = _new_axes(ax, (max(4, 0.9 * n_gt + 3), max(3, 0.6 * n_pred + 2)))
    ax.set_title(f"Overlaps (IoU > {threshold}: match / wrong class)")
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    if n_pred == 0 or n_gt == 0:
        ax.text(0.5, 0.5, "no overlaps to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return _finish(ax.figure, created, save_path, ax)

    ax.imshow(overlaps, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")

    def name(class_id: int) -> str:
        return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

    ax.set_yticks(np.arange(n_pred))
    ax.set_yticklabels([f"{name(c)} ({s:.2f})" for c, s in zip(pred_class_ids, pred_scores)])
    ax.set_xticks(np.arange(n_gt))
    ax.set_xticklabels([name(c) for c in gt_class_ids], rotation=90)
    for i in range(n_pred):
        for j in range(n_gt):
            label = ""
            if overlaps[i, j] > threshold:
                label = "match" if pred_class_ids[i] == gt_class_ids[j] else "wrong"
            ax.text(
                j,
                i,
                f"{overlaps[i, j]:.3f}\n{label}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if overlaps[i, j] > 0.5 else "black",
            )
    return _finish(ax.figure, created, save_path, ax)


# ----------------------------------------------------------------------------------------------------------
# Tables and weights
# ----------------------------------------------------------------------------------------------------------


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _table_text(table: Sequence[Sequence[Any]]) -> str:
    rows = [[str(cell) for cell in row] for row in table]
    if not rows:
        return ""
    n_cols = max(len(row) for row in rows)
    rows = [row + [""] * (n_cols - len(row)) for row in rows]
    widths = [max(len(row[c]) for row in rows) for c in range(n_cols)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _table_html(table: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        text = html.escape(str(value))
        return re.sub(r"(\*\*\* [^*]+)", r"<span style='color:red'>\1</span>", text)

    rows = []
    for r, row in enumerate(table):
        tag = "th" if r == 0 else "td"
        cells = "".join(f"<{tag} style='text-align:left'>{cell(v)}</{tag}>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def display_table(table: Sequence[Sequence[Any]], save_path: str | os.PathLike | None = None) -> str | None:
    """Show a table whose first row is the header.

    In a Jupyter notebook it is rendered as HTML and None is returned (so the cell does not echo it);
    elsewhere the aligned plain-text table is printed and returned. With ``save_path`` the text is drawn in
    a monospace font into a PNG and the path returned (nothing printed).
    """
    text = _table_text(table)
    if save_path is not None:
        lines = text.splitlines() or [""]
        width = max(len(line) for line in lines)
        fig = plt.figure(figsize=(max(2.0, 0.085 * width + 0.4), max(0.6, 0.2 * len(lines) + 0.3)))
        fig.text(0.02, 0.98, text, family="monospace", fontsize=10, va="top", ha="left")
        return _finish(fig, True, save_path, None)
    if _in_notebook():
        from IPython.display import HTML, display

        display(HTML(_table_html(table)))
        return None
    print(text)
    return text


def _weighted_layers(model: Any) -> list:
    if hasattr(model, "get_trainable_layers"):
        return list(model.get_trainable_layers())
    found = []

    def visit(container) -> None:
        for layer in container.layers:
            if hasattr(layer, "layers") and layer.layers:
                visit(layer)
            elif layer.weights:
                found.append(layer)

    visit(model)
    return found


def display_weight_stats(model: Any, save_path: str | os.PathLike | None = None) -> str | None:
    """Table of every weight of the model's weighted layers: name, shape, min, max, std.

    Flags "*** dead?" where all values are equal (biases excepted, which start at zero) and
    "*** Overflow?" where a value exceeds 1000 in magnitude.

    Args:
        model: a :class:`mrcnn.model.MaskRCNN` (its ``get_trainable_layers``) or a ``keras.Model``
            (nested models are walked into).
        save_path: as :func:`display_table`.
    """
    table: list[list[str]] = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in _weighted_layers(model):
        for variable in layer.weights:
            values = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
            name = getattr(variable, "path", None) or variable.name
            alert = ""
            if values.size and values.min() == values.max() and not name.split("/")[-1].startswith("bias"):
                alert += "  *** dead?"
            if values.size and (abs(values.min()) > 1000 or abs(values.max()) > 1000):
                alert += "  *** Overflow?"
            if values.size:
                stats = [f"{values.min():+9.4f}", f"{values.max():+10.4f}", f"{values.std():+9.4f}"]
            else:
                stats = ["-", "-", "-"]
            table.append([name + alert, str(tuple(values.shape)), *stats])
    return display_table(table, save_path=save_path)


# ----------------------------------------------------------------------------------------------------------
# Training curves
# ----------------------------------------------------------------------------------------------------------


def _integer_ticks(ax: Axes) -> None:
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):
        locator.set_params(integer=True)


def _find_history_csv(log_dir_or_csv: str | os.PathLike) -> str:
    path = os.fspath(log_dir_or_csv)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        direct = os.path.join(path, "history.csv")
        if os.path.isfile(direct):
            return direct
        # A parent of run directories (Matterport's logs/): take the most recently written run.
        candidates = [
            os.path.join(root, "history.csv") for root, _, files in os.walk(path) if "history.csv" in files
        ]
        if candidates:
            return max(candidates, key=os.path.getmtime)
    raise FileNotFoundError(f"no history.csv at or under {path!r}")


def _read_history(path: str) -> dict[str, np.ndarray]:
    """Columns of a history CSV (``mrcnn.history``, or Keras' ``CSVLogger``) as float arrays, sorted by epoch; a
    repeated epoch keeps its last row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_epoch: dict[int, dict[str, str]] = {}
    for index, row in enumerate(rows):
        epoch = row.get("epoch", "")
        by_epoch[int(float(epoch)) if epoch not in ("", None) else index] = row
    epochs = sorted(by_epoch)
    columns: dict[str, np.ndarray] = {"epoch": np.asarray(epochs, dtype=np.float64)}
    names = [name for name in (rows[0].keys() if rows else []) if name and name != "epoch"]
    for name in names:
        values = []
        for epoch in epochs:
            raw = by_epoch[epoch].get(name, "")
            try:
                values.append(float(raw))
            except (TypeError, ValueError):
                values.append(np.nan)
        columns[name] = np.asarray(values, dtype=np.float64)
    return columns


def plot_training_curves(
    log_dir_or_csv: str | os.PathLike,
    ax: Axes | None = None,
    save_path: str | os.PathLike | None = None,
) -> Figure | Axes | str:
    """Training (solid) and validation (dashed) curves of the total loss and its five terms, per epoch (and of
    the sixth term, ``mrcnn_attr_loss``, when the run trained an attribute head).

    Args:
        log_dir_or_csv: a run's log directory holding ``history.csv`` (:mod:`mrcnn.history`), the CSV file
            itself, or a parent directory (the newest ``history.csv`` under it is used).
        ax: draw every curve into this one axis (one colour per loss term); by default a grid with one panel
            per term is created (2 x 3, or 2 x 4 with the attribute loss).
        save_path: write a PNG there and return the path.

    Returns:
        The Figure (grid), the Axes (when ``ax`` was given), or ``save_path``.
        Epochs are shown 1-based, as Keras prints them.
    """
    path = _find_history_csv(log_dir_or_csv)
    history = _read_history(path)
    epochs = history["epoch"] + 1
    marker = "o" if len(epochs) <= 30 else None
    run_name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    names = LOSS_NAMES
    if ATTRIBUTE_LOSS_NAME in history or "val_" + ATTRIBUTE_LOSS_NAME in history:
        names = (*LOSS_NAMES, ATTRIBUTE_LOSS_NAME)

    if ax is not None:
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, name in enumerate(names):
            color = cycle[k % len(cycle)]
            if name in history:
                ax.plot(epochs, history[name], color=color, marker=marker, markersize=3, label=name)
            if "val_" + name in history:
                ax.plot(
                    epochs,
                    history["val_" + name],
                    color=color,
                    linestyle="--",
                    marker=marker,
                    markersize=3,
                    label="val_" + name,
                )
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
        ax.set_ylabel("loss")
        ax.set_title(f"Training curves ({run_name}); dashed: validation")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        return _finish(ax.figure, False, save_path, ax)

    columns = (len(names) + 1) // 2
    fig, grid = plt.subplots(2, columns, figsize=(5 * columns, 8), squeeze=False)
    for panel in grid.flat[len(names) :]:
        fig.delaxes(panel)
    for panel, name in zip(grid.flat, names):
        panel.set_title(name)
        panel.set_xlabel("epoch")
        panel.grid(True, alpha=0.3)
        drawn = False
        if name in history:
            panel.plot(epochs, history[name], marker=marker, markersize=3, label="train")
            drawn = True
        if "val_" + name in history:
            panel.plot(
                epochs,
                history["val_" + name],
                linestyle="--",
                marker=marker,
                markersize=3,
                label="validation",
            )
            drawn = True
        if drawn:
            panel.legend(fontsize=8)
        else:
            panel.text(0.5, 0.5, "not logged", ha="center", va="center", transform=panel.transAxes)
        _integer_ticks(panel)
    fig.suptitle(f"Training curves: {run_name}")
    fig.tight_layout()
    return _finish(fig, True, save_path, fig)
