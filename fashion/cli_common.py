"""What the fashion command-line tools share: class names from a preset's class subset, the inference model and
its weights, image reading, and the post-processing options.

Used by ``fashion/evaluate.py`` and ``fashion/infer.py``. Class ids follow :mod:`fashion.categories`: model
class ``k`` is the ``k``-th category of the subset in source-id order, 0 the background, exactly as
``fashion/train.py`` (through :func:`fashion.datasets.load_dataset`) registers them, so a checkpoint trained
with ``--preset P --classes C`` is read with the same two options here.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

from fashion.categories import (
    DEEPFASHION2_CATEGORIES,
    IMATERIALIST_CATEGORIES,
    Category,
    UnknownClassError,
    resolve_classes,
    subset_names,
)
from fashion.config import PRESETS, get_preset, make_config
from fashion.datasets import FORMATS
from fashion.postprocess import PostprocessOptions, parse_max_per_class

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LOGS = os.path.join(REPO_ROOT, "logs")
EXIT_USAGE = 2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

__all__ = [
    "CLIError",
    "DEFAULT_LOGS",
    "EXIT_USAGE",
    "IMAGE_EXTENSIONS",
    "add_model_arguments",
    "add_postprocess_arguments",
    "add_precision_argument",
    "build_inference_model",
    "category_table",
    "check_weights_argument",
    "clean_class_names",
    "inference_overrides",
    "load_inference_weights",
    "postprocess_options",
    "precision_choice",
    "read_image",
    "resolve_categories",
    "run_cli",
]


class CLIError(RuntimeError):
    """A problem the user can fix (the message says how); the tools print it and exit with status 2."""


def run_cli(run, args: argparse.Namespace) -> int:
    """A command's ``main``: ``run(args)``'s exit status, or, for a :class:`CLIError`, its message on stderr
    and EXIT_USAGE."""
    try:
        return run(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


# --------------------------------------------------------------------------------------------- arguments
def add_model_arguments(parser: argparse.ArgumentParser, precision_default: str = "auto") -> None:
    """--weights, --preset, --classes, --format, --logs, --name, --min-confidence, --max-instances,
    --precision (default ``precision_default``)."""
    parser.add_argument(
        "--weights", required=True, help="PATH to a Keras-2 .h5 checkpoint, or 'last' (newest run in --logs)"
    )
    parser.add_argument(
        "--preset",
        default="thesis001",
        choices=sorted(PRESETS),
        help="seed recipe the model was trained with",
    )
    parser.add_argument(
        "--classes",
        help=f"class subset the model was trained on ({', '.join(subset_names())}) or names/ids separated by "
        "';' (default: the preset's)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="dataset format / category table (default: the preset's)"
    )
    parser.add_argument(
        "--logs", default=DEFAULT_LOGS, help="log folder searched by --weights last (default logs/)"
    )
    parser.add_argument("--name", help="config NAME of the training run (default 'fashion')")
    parser.add_argument(
        "--min-confidence", type=float, help="DETECTION_MIN_CONFIDENCE of the model (default: the preset's)"
    )
    parser.add_argument(
        "--max-instances", type=int, help="DETECTION_MAX_INSTANCES of the model (default: the preset's)"
    )
    add_precision_argument(parser, precision_default)


def add_precision_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """--precision float32|bfloat16|float16|auto (see :mod:`mrcnn.precision`). infer defaults to auto (speed;
    detections within issue #12's bounds on trained weights), evaluate to float32 (its figures are then the
    model's own on every machine); README "Precision" has the figures."""
    from mrcnn.precision import CHOICES

    parser.add_argument(
        "--precision",
        choices=CHOICES,
        default=default,
        help=f"numeric precision of the model (default {default}): auto = float16 on a GPU with tensor cores, "
        "bfloat16 on a CPU with AMX or AVX512-BF16, float32 elsewhere; weights stay float32",
    )


def precision_choice(args: argparse.Namespace) -> tuple[str, str]:
    """(precision name, why) of --precision on this machine, e.g. ("bfloat16", "auto: the CPU has amx_bf16");
    print it with the start-up line: ``describe_runtime(name) + f" ({why})"``."""
    from mrcnn.precision import resolve_precision

    return resolve_precision(getattr(args, "precision", None) or "float32")


def add_postprocess_arguments(parser: argparse.ArgumentParser) -> None:
    """--max-per-class, --min-area, --min-score (see :func:`fashion.postprocess.postprocess`)."""
    parser.add_argument(
        "--max-per-class",
        help="keep at most K most confident instances per class: K for every class, NAME=K for one, entries "
        "separated by ';' (e.g. 'shoe=2' or '3;shoe=2')",
    )
    parser.add_argument("--min-area", type=int, help="drop instances whose mask has fewer pixels")
    parser.add_argument("--min-score", type=float, help="drop instances scoring below this")


def inference_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from --name, --min-confidence, --max-instances, --precision (MIXED_PRECISION, "auto"
    resolved to this machine's choice)."""
    overrides: dict[str, Any] = {}
    if hasattr(args, "precision"):
        overrides["MIXED_PRECISION"] = precision_choice(args)[0]
    if getattr(args, "name", None):
        overrides["NAME"] = args.name
    if getattr(args, "min_confidence", None) is not None:
        overrides["DETECTION_MIN_CONFIDENCE"] = float(args.min_confidence)
    if getattr(args, "max_instances", None) is not None:
        if args.max_instances < 1:
            raise CLIError(f"--max-instances {args.max_instances}: must be at least 1")
        overrides["DETECTION_MAX_INSTANCES"] = int(args.max_instances)
    return overrides


def postprocess_options(args: argparse.Namespace, class_names: list[str]) -> PostprocessOptions:
    """The :class:`PostprocessOptions` of --max-per-class, --min-area, --min-score; ``class_names`` indexed by
    class id, full category names (see :func:`fashion.postprocess.parse_max_per_class`)."""
    try:
        default, caps = parse_max_per_class(getattr(args, "max_per_class", None), class_names)
    except ValueError as e:
        raise CLIError(str(e)) from e
    return PostprocessOptions(
        min_score=getattr(args, "min_score", None),
        min_area=getattr(args, "min_area", None),
        max_per_class=caps,
        max_default=default,
    )


# --------------------------------------------------------------------------------------------- classes
def category_table(fmt: str) -> tuple[Category, ...]:
    """The built-in categories of a dataset format: DeepFashion2's 13, else iMaterialist's 46 (which
    Fashionpedia shares). ``make_config`` counts classes from the same tables."""
    return DEEPFASHION2_CATEGORIES if fmt == "deepfashion2" else IMATERIALIST_CATEGORIES


def resolve_categories(preset: str, classes: str | None = None, fmt: str | None = None) -> list[Category]:
    """The categories of the model's classes 1..K: ``classes`` (default: the preset's subset) of the format's
    table (default: the preset's format), in source-id order. Raises CLIError for unknown classes."""
    p = get_preset(preset)
    try:
        return resolve_classes(classes or p.classes, category_table(fmt or p.fmt))
    except UnknownClassError as e:
        raise CLIError(f"--classes: {e}") from e


def clean_class_names(categories: list[Category]) -> list[str]:
    """``["BG", name, ...]`` indexed by class id, each name cut at its first comma ("shirt, blouse" -> "shirt"),
    as Matterport's ``Dataset.class_names``."""
    return ["BG"] + [c.name.split(",")[0] for c in categories]


# --------------------------------------------------------------------------------------------- model
def build_inference_model(
    preset: str, num_classes: int, logs: str, overrides: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """(MaskRCNN in inference mode, its config) for ``preset`` with ``num_classes`` (background included)."""
    from mrcnn.model import MaskRCNN

    config = make_config(preset, num_classes=num_classes, inference=True, **(overrides or {}))
    return MaskRCNN(mode="inference", config=config, model_dir=logs), config


def check_weights_argument(choice: str) -> None:
    """Fails fast (CLIError) on a --weights value that cannot work, before anything slow is built."""
    if choice in ("coco", "imagenet", "none"):
        raise CLIError(f"--weights {choice}: needs a fashion checkpoint (a PATH to an .h5, or 'last')")
    if choice != "last" and not os.path.isfile(choice):
        raise CLIError(f"--weights {choice!r}: no such file (use a checkpoint path or 'last')")


def load_inference_weights(model: Any, choice: str) -> str:
    """Loads --weights (a path, or 'last': the newest checkpoint of the config's NAME in the model's log
    folder) by name; returns the path. Raises CLIError with advice when it cannot."""
    if choice == "last":
        try:
            path = model.find_last()
        except FileNotFoundError as e:
            raise CLIError(f"--weights last: {e}. Train first or pass --weights PATH.") from e
    else:
        check_weights_argument(choice)
        path = choice
    try:
        model.load_weights(path, by_name=True)
    except OSError as e:
        raise CLIError(f"--weights {path}: not a readable Keras-2 .h5 weights file ({e})") from e
    except ValueError as e:
        raise CLIError(
            f"--weights {path} does not fit a model with {model.config.NUM_CLASSES - 1} classes and the "
            f"{model.config.BACKBONE} backbone: {e}\nPass the --preset and --classes the model was trained with."
        ) from e
    return path


# --------------------------------------------------------------------------------------------- images
def read_image(path: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of an image file at its stored size (no EXIF rotation, as the datasets'
    annotations assume). Raises OSError (or a PIL error) for a missing or corrupt file."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
