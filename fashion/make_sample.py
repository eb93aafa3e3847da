"""Writes the shipped synthetic sample (``fashion/sample``) in the iMaterialist Fashion 2019 layout.

The images are drawn, not photographed: cartoon figures (skin-coloured head, arms and legs) wearing flat or
striped garments from a few classes of thesis 001's 11-class set, on a cluttered gradient background, saved
as JPEG. Each garment's visible pixels are written to ``train.csv`` as a Kaggle-style row (column-major
run-length encoding with 1-based starts, ClassId ``"<category>"`` or ``"<category>_<attr>_..."``), and
``label_descriptions.json`` has the competition file's structure with the 46 real category names and a short
illustrative attribute list. Everything follows from ``--seed``: the same seed gives the same files.

    python fashion/make_sample.py                # rewrite fashion/sample
    python fashion/make_sample.py --out /tmp/s --images 10
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from fashion.categories import IMATERIALIST_CATEGORIES  # noqa: E402
from fashion.rle import rle_encode  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")

# Category ids (iMaterialist 2019) drawn in the sample, all in thesis 001's 11-class set.
TOP, JACKET, PANTS, SKIRT, DRESS, SHOE, BAG = 1, 4, 6, 8, 10, 23, 24

# Illustrative attributes (names in the competition's style; ids are this sample's own, not Kaggle's).
ATTRIBUTES = [
    (0, "above-the-hip (length)", "length"),
    (1, "mini (length)", "length"),
    (2, "knee (length)", "length"),
    (3, "maxi (length)", "length"),
    (4, "a-line", "silhouette"),
    (5, "straight", "silhouette"),
    (6, "tight (fit)", "silhouette"),
    (7, "plain (pattern)", "textile pattern"),
    (8, "stripe", "textile pattern"),
]
SIZES = [(256, 192), (288, 224), (320, 240), (240, 240), (320, 256), (224, 200)]  # (height, width)


def _poly(
    cx: float, top: float, u: float, points: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Figure-relative points (x offset, y offset in units of figure height u) -> pixel coordinates."""
    return [(cx + x * u, top + y * u) for x, y in points]


def _mirror(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(-x, y) for x, y in points]


ARM = [(-0.11, 0.17), (-0.155, 0.18), (-0.175, 0.45), (-0.135, 0.45), (-0.115, 0.24)]
LEG = [(-0.09, 0.46), (-0.005, 0.46), (-0.02, 0.92), (-0.075, 0.92)]
TORSO = [(-0.11, 0.17), (0.11, 0.17), (0.09, 0.47), (-0.09, 0.47)]


def _garments(rng: np.random.Generator) -> list[tuple[int, str]]:
    """An outfit: (category, shape key) pairs in drawing order (later ones cover earlier ones)."""
    outfit = rng.integers(4)
    items: list[tuple[int, str]] = []
    if outfit == 0:
        items = [(PANTS, "pants"), (TOP, "top")]
    elif outfit == 1:
        items = [(SKIRT, "skirt"), (TOP, "top")]
    elif outfit == 2:
        items = [(DRESS, "dress")]
    else:
        items = [(PANTS, "pants"), (TOP, "top"), (JACKET, "jacket")]
    items += [(SHOE, "shoe_left"), (SHOE, "shoe_right")]
    if rng.random() < 0.4:
        items.append((BAG, "bag"))
    return items


def _shapes(key: str, cx: float, top: float, u: float) -> list[tuple[str, list]]:
    """Drawing primitives of a garment: ("polygon", points) or ("ellipse", box)."""
    p = lambda pts: ("polygon", _poly(cx, top, u, pts))  # noqa: E731
    if key == "top":
        sleeve = [(-0.11, 0.17), (-0.17, 0.19), (-0.175, 0.28), (-0.12, 0.28)]
        body = [(-0.115, 0.165), (0.115, 0.165), (0.1, 0.5), (-0.1, 0.5)]
        return [p(body), p(sleeve), p(_mirror(sleeve))]
    if key == "jacket":
        panel = [(-0.125, 0.16), (-0.03, 0.16), (-0.04, 0.53), (-0.115, 0.53)]
        sleeve = [(-0.115, 0.16), (-0.165, 0.175), (-0.185, 0.44), (-0.13, 0.44), (-0.115, 0.25)]
        return [p(panel), p(_mirror(panel)), p(sleeve), p(_mirror(sleeve))]
    if key == "pants":
        leg = [(-0.095, 0.45), (0.0, 0.45), (-0.015, 0.9), (-0.08, 0.9)]
        return [p(leg), p(_mirror(leg)), p([(-0.095, 0.45), (0.095, 0.45), (0.09, 0.55), (-0.09, 0.55)])]
    if key == "skirt":
        return [p([(-0.095, 0.45), (0.095, 0.45), (0.15, 0.68), (-0.15, 0.68)])]
    if key == "dress":
        return [p([(-0.11, 0.165), (0.11, 0.165), (0.09, 0.45), (0.17, 0.76), (-0.17, 0.76), (-0.09, 0.45)])]
    if key in ("shoe_left", "shoe_right"):
        sx = -0.05 if key == "shoe_left" else 0.05
        x0, y0 = cx + (sx - 0.045) * u, top + 0.905 * u
        return [("ellipse", [x0, y0, x0 + 0.09 * u, y0 + 0.05 * u])]
    if key == "bag":
        return [
            p([(0.16, 0.43), (0.27, 0.43), (0.28, 0.58), (0.15, 0.58)]),
            p(
                [
                    (0.18, 0.43),
                    (0.19, 0.38),
                    (0.24, 0.38),
                    (0.25, 0.43),
                    (0.23, 0.43),
                    (0.225, 0.4),
                    (0.2, 0.4),
                ]
            ),
        ]
    raise KeyError(key)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(20, 236, size=3))


def draw_image(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One synthetic image: [H, W, 3] uint8 and a list of (category, visible mask [H, W] bool)."""
    from PIL import Image, ImageDraw

    # Background: vertical gradient, a few coloured blocks, pixel noise.
    top_c, bottom_c = rng.integers(90, 230, size=3), rng.integers(60, 200, size=3)
    t = np.linspace(0, 1, height)[:, None, None]
    bg = (top_c * (1 - t) + bottom_c * t) * np.ones([1, width, 1])
    canvas = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        draw.rectangle([x0, y0, x0 + rng.integers(10, 60), y0 + rng.integers(10, 60)], fill=_colour(rng))

    labels = Image.new("I", (width, height), 0)
    instances: list[int] = []
    n_figures = 2 if width >= 240 and rng.random() < 0.3 else 1
    for f in range(n_figures):
        u = height * rng.uniform(0.72, 0.92)
        top = rng.uniform(0.02, 0.98 * height - u)
        lo, hi = 0.2 * u, width - 0.3 * u
        if n_figures == 2:
            cx = (lo + (hi - lo) * (0.15 + 0.7 * f)) + rng.uniform(-0.05, 0.05) * width
        else:
            cx = rng.uniform(lo, max(lo + 1, hi))
        skin = tuple(
            int(v) for v in rng.choice([[241, 194, 167], [198, 134, 98], [141, 85, 54], [224, 172, 105]])
        )
        # Body (not an instance): head, neck, arms, legs.
        r = 0.06 * u
        draw.ellipse([cx - r, top + 0.01 * u, cx + r, top + 0.01 * u + 2 * r], fill=skin)
        draw.rectangle([cx - 0.025 * u, top + 0.12 * u, cx + 0.025 * u, top + 0.18 * u], fill=skin)
        for pts in (ARM, _mirror(ARM), LEG, _mirror(LEG), TORSO):
            draw.polygon(_poly(cx, top, u, pts), fill=skin)
        for category, key in _garments(rng):
            colour = _colour(rng)
            striped = rng.random() < 0.3
            stripe_colour = _colour(rng)
            layer = Image.new("L", (width, height), 0)
            layer_draw = ImageDraw.Draw(layer)
            for kind, geometry in _shapes(key, cx, top, u):
                getattr(layer_draw, kind)(geometry, fill=255)
            fill = Image.new("RGB", (width, height), colour)
            if striped:
                stripes = ImageDraw.Draw(fill)
                step = int(rng.integers(4, 9))
                for y in range(0, height, 2 * step):
                    stripes.rectangle([0, y, width, y + step - 1], fill=stripe_colour)
            canvas.paste(fill, (0, 0), layer)
            instances.append(category)
            labels.paste(len(instances), (0, 0), layer)

    image = np.asarray(canvas, dtype=np.int16)
    image = np.clip(image + rng.normal(0, 4, size=image.shape), 0, 255).astype(np.uint8)
    label_map = np.asarray(labels)
    out = []
    for k, category in enumerate(instances, 1):
        mask = label_map == k
        if mask.sum() >= 20:
            out.append((category, mask))
    return image, out


def _attributes(rng: np.random.Generator, category: int) -> tuple[int, ...]:
    if category in (DRESS, SKIRT) and rng.random() < 0.5:
        return (int(rng.choice([1, 2, 3])), int(rng.choice([4, 5])))
    if category in (TOP, PANTS) and rng.random() < 0.3:
        return (int(rng.choice([7, 8])),)
    return ()


def label_descriptions() -> dict:
    """``label_descriptions.json`` content in the competition's structure."""
    return {
        "info": {
            "year": 2019,
            "version": "1.0",
            "description": "Synthetic sample in the iMaterialist Fashion 2019 (FGVC6) "
            "label_descriptions.json structure: real category list, illustrative attribute list",
            "contributor": "fashion/make_sample.py",
            "url": "",
            "date_created": "",
        },
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": c.supercategory, "level": 2}
            for c in IMATERIALIST_CATEGORIES
        ],
        "attributes": [{"id": i, "name": n, "supercategory": s, "level": 1} for i, n, s in ATTRIBUTES],
    }


def make_sample(
    out_dir: str = DEFAULT_OUT, n_images: int = 36, seed: int = 2019, quality: int = 85
) -> list[str]:
    """Writes ``n_images`` images to ``out_dir/train`` plus ``train.csv`` and ``label_descriptions.json``.

    Returns the image ids (file names) in CSV order.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    image_dir = os.path.join(out_dir, "train")
    os.makedirs(image_dir, exist_ok=True)
    rows = []
    names = []
    for i in range(n_images):
        height, width = SIZES[int(rng.integers(len(SIZES)))]
        image, instances = draw_image(rng, height, width)
        name = hashlib.md5(f"fashion-sample-{seed}-{i}".encode()).hexdigest() + ".jpg"
        Image.fromarray(image).save(os.path.join(image_dir, name), quality=quality)
        names.append(name)
        for category, mask in instances:
            attrs = _attributes(rng, category)
            class_id = "_".join(str(v) for v in (category, *attrs))
            rows.append((name, rle_encode(mask), height, width, class_id))
    rows.sort(key=lambda r: r[0])
    with open(os.path.join(out_dir, "train.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ImageId", "EncodedPixels", "Height", "Width", "ClassId"])
        writer.writerows(rows)
    with open(os.path.join(out_dir, "label_descriptions.json"), "w", encoding="utf-8") as f:
        json.dump(label_descriptions(), f, indent=1)
        f.write("\n")
    return sorted(names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: fashion/sample)")
    parser.add_argument("--images", type=int, default=36, help="number of images (default 36)")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args(argv)
    names = make_sample(args.out, args.images, args.seed)
    print(f"wrote {len(names)} images, train.csv and label_descriptions.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
