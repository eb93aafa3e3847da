"""What the fashion command-line tools share: which model a checkpoint is (from its metadata, or from the preset
and class options for files without it), the inference model and its weights, a quiet start-up that says what
it runs on, image reading, and the post-processing options.

Used by ``fashion/evaluate.py`` and ``fashion/infer.py``. A checkpoint written by this package records its class
names, preset, dataset format and config (see :mod:`mrcnn.metadata`), so ``--weights PATH`` alone is enough;
an explicit ``--preset``, ``--classes`` or ``--format`` that contradicts the file is an error naming both. For
files without metadata (Matterport's), class ids follow :mod:`fashion.categories`: model class ``k`` is the
``k``-th category of the subset in source-id order, 0 the background, exactly as ``fashion/train.py`` (through
:func:`fashion.datasets.load_dataset`) registers them, so such a checkpoint trained with ``--preset P --classes
C`` is read with the same two options here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

import numpy as np

from fashion.categories import (
    Category,
    UnknownClassError,
    resolve_classes,
    subset_names,
)
from fashion.config import PRESETS, FashionConfig, get_preset, inference_config
from fashion.datasets import DATASET_FORMATS, FORMATS
from fashion.postprocess import PostprocessOptions, parse_max_per_class
from mrcnn.config import ConfigError

# Relative paths: the folders of the current directory, wherever the package is installed.
DEFAULT_LOGS = "logs"
DEFAULT_PRESET = "thesis001"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

__all__ = [
    "CLIError",
    "DEFAULT_LOGS",
    "EXIT_USAGE",
    "IMAGE_EXTENSIONS",
    "ModelChoice",
    "add_model_arguments",
    "add_postprocess_arguments",
    "add_verbose_argument",
    "build_inference_model",
    "category_table",
    "check_weights_argument",
    "clean_class_names",
    "inference_overrides",
    "load_inference_weights",
    "postprocess_options",
    "read_image",
    "resolve_categories",
    "resolve_model",
    "run_cli",
    "start_runtime",
]


class CLIError(RuntimeError):
    """A problem the user can fix (the message says how); the tools print it and exit with status 2."""


def run_cli(run, args: argparse.Namespace) -> int:
    """A command's ``main``: ``run(args)``'s exit status; for a user error (:class:`CLIError`, or a
    ``ConfigError`` from a setting the arguments made) its message on stderr and EXIT_USAGE; for Ctrl-C a
    line on stderr and EXIT_INTERRUPTED, without a traceback."""
    try:
        return run(args)
    except (CLIError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """--verbose: show TensorFlow's start-up log lines (hidden by default)."""
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own log lines (hidden by default)"
    )


def start_runtime(verbose: bool = False, precision: str | None = None) -> str:
    """Import TensorFlow (its C++ start-up lines hidden unless ``verbose``) and print one line saying what
    the command runs on (CPU features and oneDNN, or the GPUs) and in which precision. Returns the line."""
    from mrcnn.runtime import describe_runtime, import_tensorflow

    tf = import_tensorflow(quiet=not verbose)
    if not verbose:
        tf.get_logger().setLevel("ERROR")
    line = describe_runtime(precision)
    print(line[0].upper() + line[1:], flush=True)
    return line


# --------------------------------------------------------------------------------------------- arguments
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights, --preset, --classes, --format, --logs, --name, --min-confidence, --max-instances."""
    parser.add_argument(
        "--weights", required=True, help="PATH to a Keras-2 .h5 checkpoint, or 'last' (newest run in --logs)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"seed recipe the model was trained with (default: the checkpoint's; {DEFAULT_PRESET} for files "
        "that do not record it)",
    )
    parser.add_argument(
        "--classes",
        help=f"class subset the model was trained on ({', '.join(subset_names())}) or names/ids separated by "
        "';' (default: the checkpoint's classes, else the preset's)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="dataset format / category table (default: the checkpoint's, else the preset's)",
    )
    parser.add_argument(
        "--logs", default=DEFAULT_LOGS, help="log folder searched by --weights last (default ./logs)"
    )
    parser.add_argument("--name", help="config NAME of the training run (default 'fashion')")
    parser.add_argument(
        "--min-confidence", type=float, help="DETECTION_MIN_CONFIDENCE of the model (default: the preset's)"
    )
    parser.add_argument(
        "--max-instances", type=int, help="DETECTION_MAX_INSTANCES of the model (default: the preset's)"
    )


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
    """Config overrides from --name, --min-confidence, --max-instances."""
    overrides: dict[str, Any] = {}
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
    """The built-in categories of a dataset format (its :class:`fashion.datasets.DatasetFormat`'s table):
    DeepFashion2's 13, iMaterialist's 46 for the others (Fashionpedia shares them). ``make_config`` counts
    classes from the same tables."""
    return tuple(DATASET_FORMATS.get(fmt).categories)


def resolve_categories(preset: str, classes: str | None = None, fmt: str | None = None) -> list[Category]:
    """The categories of the model's classes 1..K: ``classes`` (default: the preset's subset) of the format's
    table (default: the preset's format), in source-id order. Raises CLIError for unknown classes."""
    p = get_preset(preset)
    try:
        return resolve_classes(classes or p.classes, category_table(fmt or p.fmt))
    except UnknownClassError as e:
        raise CLIError(f"--classes: {e}") from e


def clean_class_names(names: list[str]) -> list[str]:
    """Class names (by class id, "BG" first) each cut at its first comma ("shirt, blouse" -> "shirt"), as
    Matterport's ``Dataset.class_names``."""
    return [str(n).split(",")[0] for n in names]


# --------------------------------------------------------------------------------------------- model
@dataclasses.dataclass
class ModelChoice:
    """The model a command runs: its checkpoint, and what the checkpoint (or the options, for files without
    metadata) says it is.

    weights: checkpoint path. metadata: its :class:`mrcnn.metadata.CheckpointMetadata`, or None.
    preset, fmt: the recipe and the dataset format. classes: the class spec that registers the model's classes
    in a dataset of that format (source ids or names separated by ';'). class_names: full names by class id,
    "BG" first. source_ids: the dataset's category id by class id (0 for the background).
    """

    weights: str
    metadata: Any
    preset: str
    fmt: str
    classes: str
    class_names: list[str]
    source_ids: list[int]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def config(self, overrides: dict[str, Any] | None = None) -> FashionConfig:
        """The inference config: the checkpoint's recorded settings when it has them, else the preset's."""
        settings = self.metadata.config if self.metadata is not None else None
        try:
            return inference_config(self.preset, self.num_classes, settings=settings, **(overrides or {}))
        except ConfigError as e:
            raise CLIError(f"--weights {self.weights}: {e}") from e


def _weights_path(choice: str, logs: str, name: str | None) -> str:
    if choice == "last":
        from mrcnn.model import find_last_checkpoint

        try:
            return find_last_checkpoint(logs, name or FashionConfig.NAME)
        except FileNotFoundError as e:
            raise CLIError(f"--weights last: {e}. Train first or pass --weights PATH.") from e
    check_weights_argument(choice)
    return choice


def _contradiction(option: str, given: str, path: str, recorded: str) -> CLIError:
    return CLIError(
        f"{option} {given} contradicts the checkpoint {path}, which records {recorded}; leave {option} out "
        "(the checkpoint says what it is)"
    )


def _classes_match(spec: str, meta_categories: list[Category], fmt: str) -> bool:
    """Whether the class spec ``spec`` selects exactly the checkpoint's categories (by name), read against the
    checkpoint's own categories or against the format's built-in table (named subsets such as thesis11)."""
    wanted = [c.name for c in meta_categories]
    for table in (meta_categories, list(category_table(fmt))):
        try:
            if [c.name for c in resolve_classes(spec, table)] == wanted:
                return True
        except UnknownClassError:
            continue
    return False


def resolve_model(args: argparse.Namespace) -> ModelChoice:
    """The model --weights names (a path or 'last'), with --preset, --classes and --format checked against
    what the checkpoint records. Raises CLIError for a missing or unreadable file and for contradictions.
    Needs no TensorFlow."""
    from mrcnn.metadata import read_metadata
    from mrcnn.weights import WeightsFileError

    path = _weights_path(args.weights, getattr(args, "logs", DEFAULT_LOGS), getattr(args, "name", None))
    try:
        meta = read_metadata(path)
    except (OSError, WeightsFileError) as e:
        raise CLIError(f"--weights {path}: {e}") from e
    given_preset, given_fmt = getattr(args, "preset", None), getattr(args, "format", None)
    given_classes = getattr(args, "classes", None)
    recorded_preset = meta.preset if meta is not None else None
    recorded_fmt = meta.dataset_format if meta is not None else None
    if given_preset and recorded_preset and given_preset != recorded_preset:
        raise _contradiction("--preset", given_preset, path, f"preset {recorded_preset}")
    if given_fmt and recorded_fmt and given_fmt != recorded_fmt:
        raise _contradiction("--format", given_fmt, path, f"dataset format {recorded_fmt}")
    preset = recorded_preset if recorded_preset in PRESETS else (given_preset or DEFAULT_PRESET)
    fmt = recorded_fmt or given_fmt or get_preset(preset).fmt

    if meta is None or not meta.class_names:  # the preset's classes, or --classes
        categories = resolve_categories(preset, given_classes, fmt)
        return ModelChoice(
            weights=path,
            metadata=meta,
            preset=preset,
            fmt=fmt,
            classes=given_classes or get_preset(preset).classes,
            class_names=["BG"] + [c.name for c in categories],
            source_ids=[0] + [c.id for c in categories],
        )

    source_ids = list(meta.class_source_ids or [])
    if len(source_ids) != len(meta.class_names):
        source_ids = [0] * len(meta.class_names)
    categories = [Category(i, name, "") for i, name in zip(source_ids[1:], meta.class_names[1:])]
    if given_classes and not _classes_match(given_classes, categories, fmt):
        names = "; ".join(meta.class_names[1:])
        raise _contradiction("--classes", repr(given_classes), path, f"the classes {names}")
    ids_known = meta.class_source_ids is not None and len(set(source_ids[1:])) == len(source_ids) - 1
    classes = ";".join(str(i) for i in source_ids[1:]) if ids_known else ";".join(meta.class_names[1:])
    return ModelChoice(
        weights=path,
        metadata=meta,
        preset=preset,
        fmt=fmt,
        classes=classes,
        class_names=list(meta.class_names),
        source_ids=source_ids,
    )


def build_inference_model(choice: ModelChoice, logs: str, config: Any = None) -> Any:
    """MaskRCNN in inference mode with the checkpoint's weights for ``choice`` (``config``: default
    ``choice.config()``)."""
    from mrcnn.model import MaskRCNN

    model = MaskRCNN(mode="inference", config=config or choice.config(), model_dir=logs)
    load_inference_weights(model, choice.weights)
    if model.class_names is None:
        model.class_names = list(choice.class_names)
    return model


def check_weights_argument(choice: str) -> None:
    """Fails fast (CLIError) on a --weights value that cannot work, before anything slow is built."""
    if choice in ("coco", "imagenet", "none"):
        raise CLIError(f"--weights {choice}: needs a fashion checkpoint (a PATH to an .h5, or 'last')")
    if choice != "last" and os.path.isdir(choice):
        raise CLIError(f"--weights {choice!r} is a folder; pass a checkpoint .h5 inside it (or 'last')")
    if choice != "last" and not os.path.isfile(choice):
        raise CLIError(f"--weights {choice!r}: no such file (use a checkpoint path or 'last')")


def load_inference_weights(model: Any, path: str) -> str:
    """Loads the checkpoint at ``path`` by name; returns the path. Raises CLIError with advice when it cannot."""
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
