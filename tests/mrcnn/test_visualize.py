"""Tests for mrcnn/visualize.py: every function draws a non-blank PNG and survives zero instances."""

import os
import subprocess
import sys

import matplotlib
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mrcnn import visualize
from mrcnn.metrics import compute_ap

H, W = 96, 128
CLASS_NAMES = ["BG", "shirt", "trousers", "shoe"]
BACKGROUND = 120  # grey image value


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scene():
    """A grey image with two rectangles and one disc, masks exactly filling their boxes' pixels."""
    image = np.full((H, W, 3), BACKGROUND, dtype=np.uint8)
    image[10:40, 60:110] = (200, 60, 60)
    masks = np.zeros((H, W, 3), dtype=bool)
    masks[10:40, 10:50, 0] = True
    masks[50:90, 20:60, 1] = True
    yy, xx = np.mgrid[:H, :W]
    masks[:, :, 2] = (yy - 60) ** 2 + (xx - 95) ** 2 < 18**2
    boxes = np.array([[10, 10, 40, 50], [50, 20, 90, 60], [43, 78, 78, 113]], dtype=np.int32)
    class_ids = np.array([1, 2, 3], dtype=np.int32)
    scores = np.array([0.98, 0.87, 0.61])
    return image, boxes, masks, class_ids, scores


def _empty():
    return np.zeros((0, 4), np.int32), np.zeros((H, W, 0), bool), np.zeros((0,), np.int32), np.zeros((0,))


def _png_stats(path):
    """(std of the RGB values, fraction of pixels that are not near-white) of a written PNG."""
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rgb = mpimg.imread(path)[..., :3]
    non_white = np.mean(np.any(rgb < 0.9, axis=-1))
    return float(rgb.std()), float(non_white)


def _assert_not_blank(path, min_non_white=0.01):
    std, non_white = _png_stats(path)
    assert std > 0.02, f"{path} looks blank (std {std:.4f})"
    assert non_white > min_non_white, f"{path} looks blank ({non_white:.4f} non-white)"


# --- colours and masks ---------------------------------------------------------------------------------


def test_class_colors_are_stable_and_distinct():
    a = visualize.class_colors([1, 2, 3, 1])
    b = visualize.class_colors(np.array([3, 1]))
    assert a[0] == a[3] == b[1] and a[2] == b[0]
    assert len({tuple(np.round(c, 3)) for c in visualize.class_colors(range(1, 14))}) == 13
    assert all(0.0 <= v <= 1.0 for c in a for v in c)


def test_random_colors_count_seed_and_spread():
    colors = visualize.random_colors(6, seed=3)
    assert len(colors) == 6 and colors == visualize.random_colors(6, seed=3)
    assert len(set(colors)) == 6
    assert max(max(c) for c in visualize.random_colors(5, bright=False)) == pytest.approx(0.7)


def test_apply_mask_blends_only_inside():
    image = np.full((4, 5, 3), 100, dtype=np.uint8)
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    assert out is image
    np.testing.assert_array_equal(image[1, 2], [178, 50, 114])  # 0.5*100 + 0.5*(255, 0, 127.5)
    np.testing.assert_array_equal(image[0, 0], [100, 100, 100])
    assert np.sum(np.any(image != 100, axis=-1)) == 4


# --- display_instances ------------------------------------------------------------------------------------


def test_display_instances_blends_class_colour_inside_masks(tmp_path):
    image, boxes, masks, class_ids, scores = _scene()
    ax = visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES, scores, figsize=(6, 5))
    drawn = np.asarray(ax.images[0].get_array())
    colors = visualize.class_colors(class_ids)
    for i in range(2):  # these two masks lie on plain grey
        inside = masks[:, :, i]
        expected = np.round(0.5 * BACKGROUND + 0.5 * np.array(colors[i]) * 255)
        np.testing.assert_allclose(drawn[inside], np.broadcast_to(expected, drawn[inside].shape), atol=1)
    outside = ~masks.any(-1)
    np.testing.assert_array_equal(drawn[outside], image[outside])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["shirt 0.98", "trousers 0.87", "shoe 0.61"]
    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == 3
    # Box edges lie on the outer pixel edges: x from x1 - 0.5, width x2 - x1.
    assert rects[0].get_xy() == (9.5, 9.5) and rects[0].get_width() == 40
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # image rows grow downward

    path = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES, scores, figsize=(6, 5), save_path=tmp_path / "inst.png"
    )
    assert path == str(tmp_path / "inst.png")
    _assert_not_blank(path)
    rgb = (mpimg.imread(path)[..., :3] * 255).astype(np.int32)
    blend = np.round(0.5 * BACKGROUND + 0.5 * np.array(colors[1]) * 255)
    near = np.all(np.abs(rgb - blend) <= 6, axis=-1)
    assert near.mean() > 0.02, "mask colour blend not found in the PNG"
    assert not plt.get_fignums()[1:], "figures left open after save_path"


def test_display_instances_options_and_colors(tmp_path):
    image, boxes, masks, class_ids, _ = _scene()
    fig, ax = plt.subplots(figsize=(4, 3))
    out = visualize.display_instances(
        image,
        boxes,
        masks,
        class_ids,
        CLASS_NAMES,
        ax=ax,
        show_mask=False,
        colors=[(1, 0, 0)] * 3,
        captions=["a", "", "c"],
        title="t",
    )
    assert out is ax and ax.get_title() == "t"
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), image)
    assert [t.get_text() for t in ax.texts] == ["a", "c"]
    assert all(p.get_edgecolor()[:3] == (1, 0, 0) for p in ax.patches)


def test_display_instances_float_image_and_padding_rows():
    image, boxes, masks, class_ids, scores = _scene()
    boxes = np.concatenate([boxes, np.zeros((1, 4), np.int32)])
    masks = np.concatenate([masks, np.zeros((H, W, 1), bool)], axis=-1)
    class_ids = np.concatenate([class_ids, [0]])
    ax = visualize.display_instances(image / 255.0, boxes, masks, class_ids, CLASS_NAMES, figsize=(4, 3))
    assert len(ax.texts) == 3
    assert np.asarray(ax.images[0].get_array())[0, 0, 0] == BACKGROUND


def test_display_instances_zero_instances(tmp_path):
    image = _scene()[0]
    boxes, masks, class_ids, scores = _empty()
    path = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES, scores, figsize=(4, 3), save_path=tmp_path / "none.png"
    )
    _assert_not_blank(path)


def test_display_instances_rejects_mismatched_counts():
    image, boxes, masks, class_ids, _ = _scene()
    with pytest.raises(ValueError):
        visualize.display_instances(image, boxes[:2], masks, class_ids, CLASS_NAMES)


# --- display_images, display_top_masks ----------------------------------------------------------------


def test_display_images_and_top_masks(tmp_path):
    image, _, masks, class_ids, _ = _scene()
    fig = visualize.display_images([image, masks[:, :, 0], image], titles=["a", "b", "c"], cols=2)
    assert len([a for a in fig.axes if a.images]) == 3
    assert [a.get_title() for a in fig.axes][:3] == ["a", "b", "c"]
    _assert_not_blank(visualize.display_images([image, masks[:, :, 2]], save_path=tmp_path / "imgs.png"))

    class_ids = np.array([1, 2, 2])  # class 2: two instances, the largest total area
    fig = visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, limit=3)
    assert [a.get_title() for a in fig.axes] == [f"H x W={H}x{W}", "trousers", "shirt", "-"]
    numbered = np.asarray(fig.axes[1].images[0].get_array())
    assert numbered[60, 40] == 1 and numbered[60, 95] == 2 and numbered[0, 0] == 0
    path = visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, save_path=tmp_path / "top.png")
    _assert_not_blank(path)


def test_display_top_masks_zero_instances(tmp_path):
    image = _scene()[0]
    _, masks, class_ids, _ = _empty()
    path = visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, save_path=tmp_path / "t0.png")
    _assert_not_blank(path)


# --- display_differences --------------------------------------------------------------------------------


def test_display_differences_matches_by_iou(tmp_path):
    image, boxes, masks, class_ids, _ = _scene()
    # Predictions: a shifted copy of instance 0 (IoU 2/3), instance 1 with the wrong class, a stray box.
    p_masks = np.zeros((H, W, 3), bool)
    p_masks[10:40, 18:58, 0] = True
    p_masks[50:90, 20:60, 1] = True
    p_masks[80:95, 100:127, 2] = True
    p_boxes = np.array([[80, 100, 95, 127], [10, 18, 40, 58], [50, 20, 90, 60]], np.int32)
    p_masks = p_masks[..., [2, 0, 1]]
    p_class = np.array([3, 1, 3])
    p_scores = np.array([0.5, 0.9, 0.7])
    ax = visualize.display_differences(
        image, boxes, class_ids, masks, p_boxes, p_class, p_scores, p_masks, CLASS_NAMES
    )
    texts = [t.get_text() for t in ax.texts]
    assert texts == [
        "shirt 0.90 / 0.67",  # IoU of [10:40, 18:58] with [10:40, 10:50]: 32 / 48 columns
        "shoe 0.70 / 1.00",
        "shoe 0.50 / 0.00",
        "trousers (missed)",
        "shoe (missed)",
    ]
    # Missed ground truth is labelled at its box's bottom edge, predictions at their top edge.
    assert [t.get_va() for t in ax.texts] == ["top"] * 3 + ["bottom"] * 2
    assert ax.texts[3].get_position() == (19.5, 89.5)
    assert "TP=1  FP=2  FN=2" in ax.get_title()
    path = visualize.display_differences(
        image,
        boxes,
        class_ids,
        masks,
        p_boxes,
        p_class,
        p_scores,
        p_masks,
        CLASS_NAMES,
        iou_threshold=0.7,
        save_path=tmp_path / "diff.png",
    )
    _assert_not_blank(path)


@pytest.mark.parametrize("which", ["both", "no_gt", "no_pred"])
def test_display_differences_zero_instances(tmp_path, which):
    image, boxes, masks, class_ids, scores = _scene()
    e_boxes, e_masks, e_ids, e_scores = _empty()
    gt = (boxes, class_ids, masks) if which == "no_pred" else (e_boxes, e_ids, e_masks)
    pred = (boxes, class_ids, scores, masks) if which == "no_gt" else (e_boxes, e_ids, e_scores, e_masks)
    path = visualize.display_differences(image, *gt, *pred, CLASS_NAMES, save_path=tmp_path / f"{which}.png")
    _assert_not_blank(path)


# --- draw_boxes -------------------------------------------------------------------------------------------


def test_draw_boxes_with_refinements_masks_and_visibilities(tmp_path):
    image, boxes, masks, _, _ = _scene()
    refined = boxes + np.array([2, -3, 4, 1])
    ax = visualize.draw_boxes(
        image,
        boxes=boxes,
        refined_boxes=refined,
        masks=masks,
        captions=["p0", "p1", "p2"],
        visibilities=[0, 1, 2],
        title="proposals",
    )
    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == 3 + 2  # visibility 0 hides the refinement
    assert len(ax.lines) == 2 and [t.get_text() for t in ax.texts] == ["p0", "p1", "p2"]
    path = visualize.draw_boxes(image, boxes=boxes, refined_boxes=refined, save_path=tmp_path / "boxes.png")
    _assert_not_blank(path)
    path = visualize.draw_boxes(image, refined_boxes=refined, save_path=tmp_path / "refined_only.png")
    _assert_not_blank(path)


def test_draw_boxes_zero_boxes(tmp_path):
    image = _scene()[0]
    path = visualize.draw_boxes(image, boxes=np.zeros((0, 4)), save_path=tmp_path / "b0.png")
    _assert_not_blank(path)
    with pytest.raises(ValueError):
        visualize.draw_boxes(image)


# --- metrics plots ---------------------------------------------------------------------------------------


def test_plot_precision_recall_and_overlaps(tmp_path):
    image, boxes, masks, class_ids, scores = _scene()
    ap, precisions, recalls, overlaps = compute_ap(
        boxes, class_ids, masks, boxes[:2], np.array([1, 3]), scores[:2], masks[..., :2]
    )
    ax = visualize.plot_precision_recall(ap, precisions, recalls)
    assert "AP@50 = 0.333" in ax.get_title()
    assert ax.lines[0].get_drawstyle() == "steps-pre"  # the area under the drawn line is the AP
    _assert_not_blank(visualize.plot_precision_recall(ap, precisions, recalls, save_path=tmp_path / "pr.png"))

    ax = visualize.plot_overlaps(class_ids, np.array([1, 3]), scores[:2], overlaps, CLASS_NAMES)
    labels = [t.get_text() for t in ax.texts]
    assert labels[0] == "1.000\nmatch" and labels[4] == "1.000\nwrong"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["shirt (0.98)", "shoe (0.87)"]
    path = visualize.plot_overlaps(
        class_ids, np.array([1, 3]), scores[:2], overlaps, CLASS_NAMES, save_path=tmp_path / "ov.png"
    )
    _assert_not_blank(path)


def test_metric_plots_zero_instances(tmp_path):
    image, boxes, masks, class_ids, _ = _scene()
    e_boxes, e_masks, e_ids, e_scores = _empty()
    ap, precisions, recalls, overlaps = compute_ap(boxes, class_ids, masks, e_boxes, e_ids, e_scores, e_masks)
    _assert_not_blank(visualize.plot_precision_recall(ap, precisions, recalls, save_path=tmp_path / "p0.png"))
    path = visualize.plot_overlaps(
        class_ids, e_ids, e_scores, overlaps, CLASS_NAMES, save_path=tmp_path / "o.png"
    )
    _assert_not_blank(path, min_non_white=0.002)
    path = visualize.plot_overlaps(
        e_ids, e_ids, e_scores, np.zeros((0, 0)), CLASS_NAMES, save_path=tmp_path / "o0.png"
    )
    _assert_not_blank(path, min_non_white=0.002)


# --- tables and weights ----------------------------------------------------------------------------------


def test_display_table_text_and_png(tmp_path, capsys):
    table = [["NAME", "VALUE"], ["alpha", 1], ["b", "long value"]]
    text = visualize.display_table(table)
    assert capsys.readouterr().out.strip() == text
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "VALUE"] and set(lines[1]) <= {"-", " "}
    assert lines[2].index("1") == lines[3].index("long") == lines[0].index("VALUE")
    assert "<" not in text
    _assert_not_blank(visualize.display_table(table, save_path=tmp_path / "table.png"), min_non_white=0.005)


def test_display_weight_stats_on_tiny_keras_model(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv_a")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, kernel_initializer="zeros", name="dense_dead")(x)
    model = keras.Model(inputs, outputs)
    text = visualize.display_weight_stats(model)
    rows = text.splitlines()
    assert rows[0].split() == ["WEIGHT", "NAME", "SHAPE", "MIN", "MAX", "STD"]
    assert len(rows) == 2 + 4  # header, rule, conv kernel/bias, dense kernel/bias
    dead = [r for r in rows if "dead?" in r]
    assert len(dead) == 1 and "dense_dead" in dead[0] and "kernel" in dead[0]
    assert any("conv_a" in r and "(3, 3, 1, 2)" in r for r in rows)
    _assert_not_blank(
        visualize.display_weight_stats(model, save_path=tmp_path / "w.png"), min_non_white=0.005
    )


# --- training curves -------------------------------------------------------------------------------------


def _write_history(path, with_val=True, epochs=5):
    names = list(visualize.LOSS_NAMES)
    header = ["epoch", *names] + (["val_" + n for n in names] if with_val else [])
    lines = [",".join(header)]
    for e in range(epochs):
        train = [2.0 / (e + 1) * (k + 1) / 6 for k in range(6)]
        val = [v * 1.2 for v in train] if with_val else []
        lines.append(",".join([str(e), *(f"{v:.5f}" for v in train + val)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plot_training_curves_grid_and_single_axis(tmp_path):
    run = tmp_path / "logs" / "shapes20240101T0000"
    _write_history(run / "history.csv")
    fig = visualize.plot_training_curves(run)
    panels = fig.axes
    assert [a.get_title() for a in panels] == list(visualize.LOSS_NAMES)
    for panel in panels:
        assert len(panel.lines) == 2
        np.testing.assert_array_equal(panel.lines[0].get_xdata(), [1, 2, 3, 4, 5])
    assert panels[0].lines[1].get_ydata()[0] == pytest.approx(2.0 / 6 * 1.2, abs=1e-5)
    # Parent directory: the newest history.csv under it.
    _assert_not_blank(visualize.plot_training_curves(tmp_path / "logs", save_path=tmp_path / "curves.png"))

    fig, ax = plt.subplots()
    assert visualize.plot_training_curves(run / "history.csv", ax=ax) is ax
    assert len(ax.lines) == 12


def test_plot_training_curves_train_only_resumed_run(tmp_path):
    csv_path = _write_history(tmp_path / "history.csv", with_val=False, epochs=3)
    # A resumed run appends a repeated epoch; the last row wins.
    with open(csv_path, "a") as f:
        f.write("2,9,9,9,9,9,9\n3,1,1,1,1,1,1\n")
    fig = visualize.plot_training_curves(csv_path)
    assert len(fig.axes[0].lines) == 1
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [2.0 / 6, 1.0 / 6, 9, 1], atol=1e-5)
    with pytest.raises(FileNotFoundError):
        visualize.plot_training_curves(tmp_path / "missing")


def test_plot_training_curves_adds_the_attribute_loss_when_logged(tmp_path):
    csv_path = tmp_path / "history.csv"
    names = [*visualize.LOSS_NAMES, "mrcnn_attr_loss"]
    rows = [",".join(["epoch", *names])] + [
        ",".join([str(e), *(str(1.0 / (e + k + 1)) for k in range(7))]) for e in range(3)
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    fig = visualize.plot_training_curves(csv_path)
    assert [a.get_title() for a in fig.axes] == names  # a 2 x 4 grid less its empty eighth panel
    np.testing.assert_allclose(fig.axes[-1].lines[0].get_ydata(), [1 / 7, 1 / 8, 1 / 9])


# --- backend selection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_backend", "setup", "expected"),
    [
        (None, "", "agg"),
        (None, "matplotlib.rcParams['backend'] = 'TkAgg'", "agg"),
        ("svg", "", "svg"),
    ],
)
def test_headless_backend_selection(env_backend, setup, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    if env_backend:
        env["MPLBACKEND"] = env_backend
    code = f"import matplotlib\n{setup}\nimport mrcnn.visualize\nprint(matplotlib.get_backend().lower())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
