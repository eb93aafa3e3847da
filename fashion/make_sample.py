"""Writes the shipped synthetic sample (``fashion/sample``) in the iMaterialist Fashion 2019 layout.

The images are drawn, not photographed: cartoon figures (skin-coloured head, arms and legs) wearing garments
from a few classes of thesis 001's 11-class set, on a cluttered gradient background, saved as JPEG. The
garments carry visual attributes drawn so that a model can learn them at 128 x 128 pixels: every top,
jacket, pants, skirt and dress is plain, striped (horizontal bands 8-16 px wide in a contrasting colour) or
dotted (a grid of contrasting dots), and a top not covered by a jacket has short or long sleeves. Shoes and
bags are plain and carry no attribute. Each garment's visible pixels are written to ``train.csv`` as a
Kaggle-style row (column-major run-length encoding with 1-based starts, ClassId
``"<category>_<attr>_..."``), and ``label_descriptions.json`` has the competition file's structure with the
46 real category names and this sample's 5 attributes. Everything follows from ``--seed``: the same seed
gives the same files.

    python fashion/make_sample.py                # rewrite fashion/sample
    python fashion/make_sample.py --out /tmp/s --images 10
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from fashion.categories import IMATERIALIST_CATEGORIES  # noqa: E402
from fashion.rle import rle_encode  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")

# Category ids (iMaterialist 2019) drawn in the sample, all in thesis 001's 11-class set.
TOP, JACKET, PANTS, SKIRT, DRESS, SHOE, BAG = 1, 4, 6, 8, 10, 23, 24

# The sample's attributes (ids are this sample's own, not Kaggle's), all visible in the pixels.
PLAIN, STRIPE, DOT, SHORT_SLEEVE, LONG_SLEEVE = 0, 1, 2, 3, 4
ATTRIBUTES = [
    (PLAIN, "plain (pattern)", "textile pattern"),
    (STRIPE, "stripe", "textile pattern"),
    (DOT, "dot", "textile pattern"),
    (SHORT_SLEEVE, "short sleeve", "sleeve length"),
    (LONG_SLEEVE, "long sleeve", "sleeve length"),
]
PATTERNED = (TOP, JACKET, PANTS, SKIRT, DRESS)  # garments that get a pattern attribute
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
    if key in ("top", "top_long"):
        if key == "top":
            sleeve = [(-0.11, 0.17), (-0.17, 0.19), (-0.175, 0.28), (-0.12, 0.28)]
        else:  # down to the wrist, leaving the hand bare
            sleeve = [(-0.11, 0.17), (-0.165, 0.185), (-0.18, 0.42), (-0.135, 0.42), (-0.115, 0.25)]
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


def _contrasting(colour: tuple[int, int, int], other: tuple[int, int, int]) -> tuple[int, int, int]:
    """``other``, or near-black / near-white when its brightness is too close to ``colour``'s for a pattern
    to show (also in grey)."""
    if abs(sum(colour) - sum(other)) / 3 >= 60:
        return other
    return (20, 20, 20) if sum(colour) / 3 > 128 else (235, 235, 235)


def _pattern_fill(
    width: int, height: int, colour: tuple, second: tuple, pattern: int, band: int, u: float
) -> object:
    """An RGB image of the whole canvas painted with a garment's pattern (pasted through its mask)."""
    from PIL import Image, ImageDraw

    fill = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(fill)
    if pattern == STRIPE:
        for y in range(0, height, 2 * band):
            draw.rectangle([0, y, width, y + band - 1], fill=second)
    elif pattern == DOT:
        radius = max(3.0, 0.025 * u)
        step = 3.2 * radius
        for row, y in enumerate(np.arange(radius, height, step)):
            for x in np.arange(radius + (step / 2 if row % 2 else 0), width, step):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=second)
    return fill


def draw_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    long_sleeves: Iterator[bool] | None = None,
) -> tuple[np.ndarray, list[tuple[int, tuple[int, ...], np.ndarray]]]:
    """One synthetic image: [H, W, 3] uint8 and a list of (category, attribute ids, visible mask [H, W]
    bool). ``rng`` places the figures, garments, colours and patterns; ``long_sleeves`` gives, top after
    uncovered top, whether it has long sleeves (default: short, long, short, ...; pass one iterator for a
    whole sample to balance the two)."""
    from PIL import Image, ImageDraw

    long_sleeves = itertools.cycle([False, True]) if long_sleeves is None else long_sleeves
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
    instances: list[tuple[int, tuple[int, ...]]] = []
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
        outfit = _garments(rng)
        covered = any(category == JACKET for category, _ in outfit)
        for category, key in outfit:
            colour = _colour(rng)
            u_pattern = rng.random()
            second = _contrasting(colour, _colour(rng))
            band = 2 * int(rng.integers(4, 9)) if u_pattern < 0.3 else 0
            attrs: list[int] = []
            if category in PATTERNED:
                pattern = STRIPE if band else DOT if u_pattern < 0.6 else PLAIN
                attrs.append(pattern)
            else:
                pattern = PLAIN
            if category == TOP:
                # Under a jacket the sleeves are hidden: no sleeve label.
                long = True if covered else next(long_sleeves)
                key = "top_long" if long else "top"
                if not covered:
                    attrs.append(LONG_SLEEVE if long else SHORT_SLEEVE)
            layer = Image.new("L", (width, height), 0)
            layer_draw = ImageDraw.Draw(layer)
            for kind, geometry in _shapes(key, cx, top, u):
                getattr(layer_draw, kind)(geometry, fill=255)
            canvas.paste(_pattern_fill(width, height, colour, second, pattern, band, u), (0, 0), layer)
            instances.append((category, tuple(sorted(attrs))))
            labels.paste(len(instances), (0, 0), layer)

    image = np.asarray(canvas, dtype=np.int16)
    image = np.clip(image + rng.normal(0, 4, size=image.shape), 0, 255).astype(np.uint8)
    label_map = np.asarray(labels)
    out = []
    for k, (category, attrs) in enumerate(instances, 1):
        mask = label_map == k
        if mask.sum() >= 20:
            out.append((category, attrs, mask))
    return image, out


def _spend_retired_draws(rng: np.random.Generator, category: int) -> None:
    """Draws what the sample's former random (invisible) attribute labels drew, so that every later figure,
    garment and colour stays where it was and class metrics on the sample stay comparable."""
    if category in (DRESS, SKIRT) and rng.random() < 0.5:
        rng.choice([1, 2, 3]), rng.choice([4, 5])
    elif category in (TOP, PANTS) and rng.random() < 0.3:
        rng.choice([7, 8])


def label_descriptions() -> dict:
    """``label_descriptions.json`` content in the competition's structure."""
    return {
        "info": {
            "year": 2019,
            "version": "1.0",
            "description": "Synthetic sample in the iMaterialist Fashion 2019 (FGVC6) "
            "label_descriptions.json structure: real category list, the sample's drawn attributes",
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
    long_sleeves = itertools.cycle([False, True])
    image_dir = os.path.join(out_dir, "train")
    os.makedirs(image_dir, exist_ok=True)
    rows = []
    names = []
    for i in range(n_images):
        height, width = SIZES[int(rng.integers(len(SIZES)))]
        image, instances = draw_image(rng, height, width, long_sleeves)
        name = hashlib.md5(f"fashion-sample-{seed}-{i}".encode()).hexdigest() + ".jpg"
        Image.fromarray(image).save(os.path.join(image_dir, name), quality=quality)
        names.append(name)
        for category, attrs, mask in instances:
            _spend_retired_draws(rng, category)
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
