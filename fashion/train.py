"""Train Mask R-CNN on a fashion dataset with one of the seed documents' recipes.

    python fashion/train.py --dataset fashion/sample --preset sample --weights none      # the shipped sample
    python fashion/train.py --dataset /data/imaterialist --preset thesis001 --weights coco
    python fashion/train.py --dataset /data/imaterialist --preset thesis001 --weights last   # resume

The run: index the dataset (class subset, bad rows counted and skipped), hold out --val-split of the images,
cap/oversample the training images, build the preset's config, print the plan, load weights, train the
schedule's stages (Keras progress bars; a checkpoint per epoch under <logs>/<name><timestamp>/), then evaluate
the trained weights, in memory, on the validation images with fashion/evaluate.py's code (COCO box and mask AP,
mAP@50, F1 and the other thesis metrics), print the table and write it to <log folder>/metrics.json.

--weights last resumes the newest run of this config NAME in --logs that has a complete checkpoint: it
continues in the stage and at the epoch where that run stopped, in the same log folder, with the schedule
given on the command line (pass the same --schedule/--epochs as before; a mismatch with the run's saved
plan.json is reported). --weights PATH starts a new run at epoch 0 from those weights; add --resume to continue
PATH's run after its epoch instead. Every new run gets a folder of its own.

Faults: a NaN or infinite loss stops training at once, naming the epoch and step, without writing a checkpoint
of it (exit 1); Ctrl-C stops at once, names the last complete checkpoint and prints the command that resumes
(exit 130); a run killed at any moment resumes with --weights last without losing or repeating an epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable, not fashion/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import fashion  # noqa: E402,F401  (imports mrcnn, which must precede imgaug)
from fashion.augment import AUGMENTATIONS, get_augmentation  # noqa: E402
from fashion.categories import UnknownClassError, subset_names  # noqa: E402
from fashion.cli_common import (  # noqa: E402
    DEFAULT_LOGS,
    CLIError,
    Interrupted,
    check_output_path,
    run_cli,
    start_runtime,
)
from fashion.config import PRESETS, get_preset, make_config  # noqa: E402
from fashion.datasets import FORMATS, cap_per_class, load_dataset, oversample, split  # noqa: E402
from fashion.schedules import SCHEDULES, describe, get_schedule, run_schedule, with_epochs  # noqa: E402

# Left out with the class-specific layers when a checkpoint does not fit: its attributes may differ too.
ATTRIBUTE_OUTPUT_LAYERS = ("mrcnn_attr_logits",)


class TrainError(CLIError):
    """A problem the user can fix (message says how); main() prints it and exits with status 2."""


class TrainingFailed(CLIError):
    """Training stopped on a fault of the run itself (a diverged loss); main() prints it and exits with 1."""

    exit_code = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashion/train.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Presets: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    p.add_argument("--dataset", required=True, help="dataset folder (or COCO json file)")
    p.add_argument("--format", choices=FORMATS, help="dataset format (default: the preset's)")
    p.add_argument("--images", help="image folder when not the format's default place")
    p.add_argument(
        "--preset", default="thesis001", choices=sorted(PRESETS), help="seed recipe (default thesis001)"
    )
    p.add_argument(
        "--classes",
        help=f"class subset ({', '.join(subset_names())}) or names/ids separated by ';' "
        "(default: the preset's)",
    )
    p.add_argument(
        "--attributes",
        help="garment attributes the model learns to predict: all, none, or names/ids separated by ';' "
        "(default: the preset's; 'none' builds no attribute head)",
    )
    p.add_argument(
        "--weights", default="coco", help="coco | imagenet | last | none | PATH to an .h5 (default coco)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --weights PATH: continue PATH's run after its epoch (default: a new run from epoch 0)",
    )
    p.add_argument(
        "--schedule", choices=sorted(SCHEDULES), help="multi-stage schedule (default: the preset's)"
    )
    p.add_argument(
        "--epochs",
        help="new total epochs (stages scaled in proportion) or comma-separated end epoch of each stage",
    )
    p.add_argument("--steps-per-epoch", type=int, help="override STEPS_PER_EPOCH")
    p.add_argument("--validation-steps", type=int, help="override VALIDATION_STEPS")
    p.add_argument("--augment", choices=AUGMENTATIONS, help="augmentation scheme (default: the preset's)")
    p.add_argument("--val-split", type=float, default=0.1, help="fraction of images held out (default 0.1)")
    p.add_argument(
        "--cap", type=int, help="at most this many images recruited per class (default: the preset's)"
    )
    p.add_argument("--oversample-min", type=int, help="repeat images of classes with fewer images up to this")
    p.add_argument("--limit", type=int, help="use only the first N images of the dataset")
    p.add_argument("--logs", default=DEFAULT_LOGS, help="log/checkpoint folder (default ./logs)")
    p.add_argument(
        "--weights-dir",
        default="weights",
        help="where downloaded weights (coco, imagenet) live (default ./weights)",
    )
    p.add_argument("--name", help="config NAME (log folder and checkpoint prefix; default 'fashion')")
    p.add_argument("--eval-limit", type=int, help="evaluate on at most N validation images (default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the balancing")
    p.add_argument("--workers", type=int, default=1, help="data loading threads")
    p.add_argument(
        "--progress",
        type=int,
        choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 bar (default), 2 per epoch",
    )
    p.add_argument(
        "--verbose",
        type=int,
        nargs="?",
        const=-1,
        help="show TensorFlow's own log lines (hidden by default); '--verbose N' (N = 0, 1, 2, as before) also "
        "sets --progress N",
    )
    return p


# --------------------------------------------------------------------------------------------- data
def prepare_data(args: argparse.Namespace, preset: Any, max_dim: int) -> tuple[Any, Any, Any]:
    """(full dataset, train, val), indexed and prepared."""
    fmt = args.format or preset.fmt
    classes = args.classes or preset.classes
    try:
        dataset = load_dataset(
            fmt,
            args.dataset,
            classes=classes,
            max_dim=max_dim,
            skip_unreadable=True,
            image_dir=args.images,
            limit=args.limit,
        )
    except UnknownClassError as e:
        raise TrainError(f"--classes {classes!r}: {e}") from e
    except (ValueError, OSError) as e:
        raise TrainError(f"cannot load the {fmt} dataset at {args.dataset}: {e}") from e
    select_attributes(dataset, args.attributes or preset.attributes)
    dataset.check_images()
    if not dataset.image_info:
        raise TrainError(
            f"no usable images in {args.dataset} for classes {classes!r}:\n{dataset.warnings.summary()}"
        )
    dataset.prepare()
    try:
        train, val = split(dataset, args.val_split, seed=args.seed)
    except ValueError as e:
        raise TrainError(str(e)) from e
    cap = args.cap if args.cap is not None else preset.cap
    if cap:
        train = cap_per_class(train, cap, seed=args.seed)
    if args.oversample_min:
        train = oversample(train, min_images=args.oversample_min, seed=args.seed)
    return dataset, train, val


def select_attributes(dataset: Any, spec: str) -> None:
    """Restrict ``dataset``'s attributes to ``spec`` (--attributes; the model gets NUM_ATTRIBUTES of them).
    Raises TrainError naming --attributes for attributes the dataset does not have."""
    from fashion.datasets.attributes import AttributeSelectionError

    try:
        dataset.select_attributes(spec)
    except AttributeSelectionError as e:
        raise TrainError(f"--attributes {spec!r}: {e}") from e


# --------------------------------------------------------------------------------------------- weights
def catalogue_entry(choice: str, backbone: Any) -> Any:
    """The weights catalogue entry (:mod:`mrcnn.catalogue`) --weights names, None for a path, none or last.
    ``imagenet`` is the ImageNet ResNet of ``backbone``'s depth (ResNet101 for the 101-layer backbones)."""
    from mrcnn.catalogue import WEIGHTS, imagenet_weights

    if choice == "imagenet":
        return imagenet_weights(backbone)
    return WEIGHTS.get(choice) if choice in WEIGHTS else None


def resolve_weights(choice: str, weights_dir: str, backbone: Any = "resnet101") -> str | None:
    """The file --weights names: a path, or a weights catalogue entry (``coco``, ``imagenet``; see
    :func:`catalogue_entry`) looked for in ``weights_dir`` and the default cache and downloaded once into
    ``weights_dir``; None for none/last (resolved later). ``backbone``: the run's Config.BACKBONE.

    Runs before the model is built, so a failed download stops the run at once. Raises TrainError with advice.
    """
    from mrcnn.catalogue import WEIGHTS

    if choice in ("none", "last"):
        return None
    entry = catalogue_entry(choice, backbone)
    if entry is not None:
        try:
            return entry.fetch(weights_dir)
        except Exception as e:  # no network, proxy, wrong size ...
            raise TrainError(
                f"could not download {entry.description} to {os.path.join(weights_dir, entry.filename)}: "
                f"{type(e).__name__}: {e}\n"
                "Offline? Use --weights none to start from scratch, or --weights PATH with a local .h5 "
                f"(or copy {entry.filename} into {weights_dir} and --weights {choice} finds it)."
            ) from e
    if os.path.isdir(choice):
        raise TrainError(
            f"--weights {choice!r} is a folder; pass a checkpoint .h5 inside it (or --weights last with --logs)"
        )
    if not os.path.exists(choice):
        known = ", ".join(WEIGHTS)
        raise TrainError(f"--weights {choice!r}: no such file (use {known}, last, none or a path)")
    return choice


def load_initial_weights(model: Any, choice: str, path: str | None, resume: bool = False) -> str:
    """Loads the weights named by --weights (``path`` from :func:`resolve_weights`); returns a description.

    ``last`` continues the newest run with a complete checkpoint (its folder and epoch count). A PATH starts a
    new run at epoch 0, unless ``resume``: then it continues PATH's run (its folder when PATH lies in a run
    folder, else a new one) after the epoch PATH records. A checkpoint with non-finite weights is refused.
    """
    from mrcnn.weights import NonFiniteWeightsError

    if choice == "none":
        return "none (random initialisation)"
    try:
        return _load_initial_weights(model, choice, path, resume)
    except NonFiniteWeightsError as e:
        raise TrainError(f"--weights {choice}: {e}{_earlier_checkpoint_hint(e.path)}") from e


def _earlier_checkpoint_hint(path: str | None) -> str:
    """Advice naming the checkpoint before ``path`` in its run folder, when there is one."""
    from mrcnn.runs import run_checkpoints

    if not path:
        return ""
    checkpoints = [p for _, p in run_checkpoints(os.path.dirname(path) or ".")]
    names = [os.path.abspath(p) for p in checkpoints]
    if os.path.abspath(path) not in names or names.index(os.path.abspath(path)) == 0:
        return ""
    earlier = checkpoints[names.index(os.path.abspath(path)) - 1]
    return f"\nThe run's previous checkpoint is {earlier}: continue from it with --weights {earlier} --resume"


def _load_initial_weights(model: Any, choice: str, path: str | None, resume: bool) -> str:
    from mrcnn.catalogue import HEAD_LAYERS

    if choice == "last":
        try:
            path = model.find_last()
        except FileNotFoundError as e:
            raise TrainError(f"--weights last: {e}. Start a run first (e.g. --weights none).") from e
        model.load_weights(path, by_name=True)
        return f"last checkpoint {path} (resuming after epoch {model.epoch})"
    entry = catalogue_entry(choice, model.config.BACKBONE)
    if entry is not None:
        exclude = entry.exclude_for(model.config.NUM_CLASSES)
        model.load_weights(path, by_name=True, exclude=list(exclude))
        return f"{entry.description} {path}" + (f" (without {', '.join(exclude)})" if exclude else "")
    try:
        model.load_weights(path, by_name=True)
        described = f"{path}"
    except OSError as e:
        raise TrainError(f"--weights {path}: not a readable Keras-2 .h5 weights file ({e})") from e
    except ValueError as e:
        if resume:
            raise TrainError(f"--weights {path} --resume: the checkpoint does not fit this model: {e}") from e
        # Usually another class (or attribute) count: load everything but the class-specific heads.
        print(f"Note: {e}\n      loading {path} without the class- and attribute-specific layers instead")
        excluded = [*HEAD_LAYERS, *ATTRIBUTE_OUTPUT_LAYERS]
        model.load_weights(path, by_name=True, exclude=excluded)
        described = f"{path} (without {', '.join(excluded)})"
    if not resume:
        model.set_log_dir()  # weights only: a new run from epoch 0 of the schedule
        return described + " (a new run from epoch 0; --resume continues its run instead)"
    if model.epoch == 0:  # not inside a run folder: the epoch the file records
        recorded = getattr(model.checkpoint_metadata, "epoch", None)
        if not recorded:
            raise TrainError(
                f"--resume: {path} records no epoch (not a training checkpoint of this package); leave out "
                "--resume to start a new run from its weights"
            )
        model.epoch = int(recorded)
    return described + f" (resuming after epoch {model.epoch})"


# --------------------------------------------------------------------------------------------- evaluation
def evaluate_trained(
    model: Any, inference_config: Any, dataset: Any, limit: int | None = None, verbose: bool = True
) -> dict:
    """fashion/evaluate.py's evaluation (:func:`fashion.evaluate.evaluate_model`: COCO box and mask AP, the
    thesis metrics, ...) of the training ``model``'s current weights, copied in memory into an inference model
    of ``inference_config`` (nothing is reloaded from disk), on the first ``limit`` images of ``dataset``.

    Returns fashion/evaluate.py's JSON structure: ``summary`` (the headline numbers, flat) and the detail.
    """
    from fashion.evaluate import evaluate_model, summary

    inference_model = model.for_inference(inference_config)
    if limit:
        dataset = dataset.subset(list(dataset.image_ids)[:limit])
    result, skipped = evaluate_model(inference_model, dataset, progress=verbose)
    return {"summary": summary(result), **result, "skipped_images": skipped}


# --------------------------------------------------------------------------------------------- main
def _plan(args, preset, schedule, config, dataset, train, val, augmentation_name, start_epoch) -> str:
    lines = [
        "=" * 78,
        f"Plan: preset {preset.name} ({preset.description})",
        f"  data      {args.dataset} [{args.format or preset.fmt}], classes {args.classes or preset.classes} "
        f"({config.NUM_CLASSES - 1} + background)",
        f"  attributes {_describe_attributes(dataset)}",
        f"  images    {len(dataset.image_info)} usable -> {len(train.image_info)} train "
        f"(after cap/oversampling), {len(val.image_info)} validation",
        f"  model     {config.BACKBONE}, {config.IMAGE_SHAPE.tolist()} {config.IMAGE_RESIZE_MODE}, anchors "
        f"{tuple(config.RPN_ANCHOR_SCALES)}, batch {config.BATCH_SIZE}, {config.STEPS_PER_EPOCH} steps/epoch,"
        " "
        f"loss weights {config.LOSS_WEIGHTS}",
        f"  weights   {args.weights}; logs {args.logs}; starting after epoch {start_epoch}",
        f"  schedule  {args.schedule or preset.schedule}, augmentation {augmentation_name}:",
        describe(schedule, start_epoch, augmentation_name),
    ]
    if dataset.warnings.total:
        lines.append(f"  data problems ({dataset.warnings.total}, rows/files skipped):")
        lines.extend("    " + line for line in dataset.warnings.summary().splitlines())
    lines.append("=" * 78)
    return "\n".join(lines)


def _describe_attributes(dataset: Any) -> str:
    names = list(dataset.model_attribute_names)
    if not names:
        return "none (no attribute head)"
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    return f"{len(names)}: {shown}"


def _check_resumed_plan(path: str, plan: dict) -> None:
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    keys = ("preset", "schedule", "stages", "classes", "attributes")
    diff = [k for k in keys if saved.get(k) != plan.get(k)]
    if diff:
        print(
            f"Warning: resuming with a different {', '.join(diff)} than the run's {path}; continuing as asked"
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.progress is None:
        args.progress = args.verbose if args.verbose in (0, 1, 2) else 1
    return run_cli(_run, args)


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument that can be checked before anything slow, checked: exit 2 naming it."""
    for option, value, least in (
        ("--steps-per-epoch", args.steps_per_epoch, 1),
        ("--validation-steps", args.validation_steps, 1),
        ("--limit", args.limit, 1),
        ("--workers", args.workers, 1),
        ("--eval-limit", args.eval_limit, 1),
        ("--cap", args.cap, 0),
        ("--oversample-min", args.oversample_min, 0),
    ):
        if value is not None and value < least:
            raise TrainError(f"{option} {value}: must be at least {least}")
    if not 0.0 <= args.val_split < 1.0:
        raise TrainError(f"--val-split {args.val_split}: must be at least 0 and below 1")
    if args.resume and args.weights in ("coco", "imagenet", "none"):
        raise TrainError(
            f"--resume needs --weights PATH (a checkpoint of the run to continue) or last, not {args.weights}"
        )
    check_output_path("--logs", args.logs, folder=True)


def _command(args: argparse.Namespace, weights: str | None = None) -> str:
    """The command line of this run, with ``--weights weights --resume`` when ``weights`` is given."""
    import shlex

    argv = list(getattr(args, "argv", []))
    if weights is not None:
        kept, skip = [], False
        for item in argv:
            if skip:
                skip = False
                continue
            if item == "--weights":
                skip = True
                continue
            if item.startswith("--weights=") or item == "--resume":
                continue
            kept.append(item)
        argv = [*kept, "--weights", weights, "--resume"]
    program = sys.argv[0] if sys.argv and sys.argv[0].endswith("train.py") else ""
    if os.path.basename(sys.argv[0] if sys.argv else "").startswith("fashion-train"):
        prefix = ["fashion-train"]
    elif program:
        prefix = ["python", program]
    else:
        prefix = ["python", "-m", "fashion.train"]
    return shlex.join(prefix + argv)


def _interrupted(args: argparse.Namespace, model: Any, phase: str) -> Interrupted:
    """The message of Ctrl-C in ``phase`` ("training" or "evaluation"): what is saved and how to go on."""
    last = getattr(model, "last_checkpoint", None) if model is not None else None
    if phase == "evaluation":
        return Interrupted(
            f"during the final evaluation; training is complete, last checkpoint {last}. Evaluate it with: "
            f"python fashion/evaluate.py --weights {last} --dataset {args.dataset}"
        )
    if model is None:
        return Interrupted("before training started; nothing was written")
    if last is None:
        return Interrupted(
            f"in epoch {model.epoch + 1}, before the run's first checkpoint ({model.log_dir} holds none). Start "
            f"again with: {_command(args)}"
        )
    return Interrupted(
        f"in epoch {model.epoch + 1}; the last complete checkpoint is {last} (epoch {model.epoch}). Resume "
        f"with: {_command(args, last)}"
    )


def _run(args: argparse.Namespace) -> int:
    state: dict[str, Any] = {"model": None, "phase": "training"}
    try:
        return _train(args, state)
    except KeyboardInterrupt:
        raise _interrupted(args, state["model"], state["phase"]) from None


def _train(args: argparse.Namespace, state: dict[str, Any]) -> int:
    _check_arguments(args)
    preset = get_preset(args.preset)
    schedule = get_schedule(args.schedule or preset.schedule)
    if args.epochs:
        try:
            parts = [int(v) for v in str(args.epochs).split(",")]
            schedule = with_epochs(schedule, parts[0] if len(parts) == 1 else parts)
        except ValueError as e:
            raise TrainError(f"--epochs {args.epochs}: {e}") from e
    augmentation_name = args.augment or preset.augmentation
    overrides: dict[str, Any] = {}
    if args.steps_per_epoch is not None:
        overrides["STEPS_PER_EPOCH"] = args.steps_per_epoch
    if args.validation_steps is not None:
        overrides["VALIDATION_STEPS"] = args.validation_steps
    if args.name:
        overrides["NAME"] = args.name
    preset_config = make_config(args.preset, **overrides)
    max_dim = int(preset_config.IMAGE_MAX_DIM)
    weights_path = resolve_weights(
        args.weights, args.weights_dir, preset_config.BACKBONE
    )  # before anything slow

    dataset, train, val = prepare_data(args, preset, max_dim)
    overrides["NUM_ATTRIBUTES"] = dataset.num_attributes
    config = make_config(args.preset, num_classes=dataset.num_classes, **overrides)

    start_runtime(args.verbose is not None, config.MIXED_PRECISION or "float32")
    from mrcnn.data.loader import NoUsableImageError
    from mrcnn.model import MaskRCNN
    from mrcnn.training import TrainingDivergedError

    model = MaskRCNN(mode="training", config=config, model_dir=args.logs)
    model.checkpoint_fields.update(preset=preset.name, dataset_format=args.format or preset.fmt)
    weights = load_initial_weights(model, args.weights, weights_path, resume=args.resume)
    state["model"] = model
    print(_plan(args, preset, schedule, config, dataset, train, val, augmentation_name, model.epoch))
    print(f"Weights: {weights}")

    plan = {
        "preset": preset.name,
        "schedule": args.schedule or preset.schedule,
        "stages": [
            [s.name, s.layers, s.epochs, s.learning_rate, s.final_learning_rate, s.augment] for s in schedule
        ],
        "classes": args.classes or preset.classes,
        "attributes": list(dataset.model_attribute_names),
        "args": vars(args),
    }
    model.claim_log_dir()  # a folder of its own (a new run never shares one), or the resumed run's
    model.prepare_run_folder()  # a resumed run's history.csv made exact, even when nothing is left to train
    plan_path = os.path.join(model.log_dir, "plan.json")
    if (args.weights == "last" or args.resume) and os.path.exists(plan_path):
        _check_resumed_plan(plan_path, plan)
    else:
        with open(plan_path, "w", encoding="utf-8") as f:
            json.dump(plan, f, indent=1)

    if model.epoch >= schedule[-1].epochs:
        print(
            f"The schedule ends at epoch {schedule[-1].epochs} and the model is at {model.epoch}: "
            "nothing to train"
        )
    else:
        try:
            run_schedule(
                model,
                schedule,
                train,
                val if val.num_images else None,
                augmentation=get_augmentation(augmentation_name),
                workers=args.workers,
                verbose=args.progress,
            )
        except NoUsableImageError as e:
            summary = (
                dataset.warnings.summary() if dataset.warnings.total else "no data problems were counted"
            )
            raise TrainError(f"cannot train on {args.dataset}: {e}\nData problems met:\n{summary}") from e
        except TrainingDivergedError as e:
            advice = ""
            if e.last_checkpoint:
                advice = f"\nContinue from the last good checkpoint with: {_command(args, e.last_checkpoint)}"
            raise TrainingFailed(f"{e}{advice}") from e
    state["phase"] = "evaluation"
    if dataset.warnings.total:  # train and val share the full dataset's counter
        print("Data problems met:\n" + dataset.warnings.summary())

    checkpoint = model.last_checkpoint or model.find_last()
    if not val.num_images:
        print(f"No validation images (--val-split {args.val_split}): skipping evaluation. Last: {checkpoint}")
        return 0
    print(
        f"\nEvaluating the trained weights (epoch {model.epoch}) on {len(val.image_info)} validation images ..."
    )
    inference_config = make_config(args.preset, num_classes=dataset.num_classes, inference=True, **overrides)
    metrics = evaluate_trained(
        model, inference_config, val, limit=args.eval_limit, verbose=bool(args.progress)
    )
    metrics["checkpoint"] = checkpoint
    from fashion.evaluation import format_table, write_json

    print(format_table(metrics))
    path = write_json(metrics, os.path.join(model.log_dir, "metrics.json"))
    headline = metrics["summary"]
    print(
        f"Validation ({metrics['num_images']} images): mask AP = {_number(headline['mask_AP'])}, "
        f"mAP@50 = {_number(headline['mAP50'])}; all metrics in {path}"
    )
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
