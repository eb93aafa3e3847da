"""Attribute head: its own fully connected layers or the classifier's (shared), trained on the shipped sample.

    python bench/attributes.py [--epochs 12] [--own-size 128] [--seed 0]

Trains the "sample" preset (small backbone, 128x128, from scratch) twice with the same data, seed and
schedule: ATTRIBUTE_FC_LAYERS_SIZE = 0 (one dense layer on the classifier's fully connected features) and
= --own-size (the head's own ROI Align and two fully connected layers). Prints, for each, the mean
per-attribute AP of matched instances (fashion.evaluation.attributes), its micro F1 at 0.5, the class mAP@0.5
(mrcnn.metrics.compute_ap, mean over images) on the held-out images and on the training images, and the CPU
seconds (user + sys) of the training.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fashion  # noqa: E402,F401
from fashion.config import make_config  # noqa: E402
from fashion.datasets import load_dataset, split  # noqa: E402
from fashion.evaluation.attributes import attribute_metrics, match_instances  # noqa: E402
from fashion.make_sample import DEFAULT_OUT as SAMPLE  # noqa: E402
from fashion.schedules import get_schedule, run_schedule, with_epochs  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def evaluate(model, config, dataset) -> dict:
    from mrcnn.data.ground_truth import load_image_gt
    from mrcnn.metrics import compute_ap

    scores, gt, weights, aps = [], [], [], []
    for image_id in dataset.image_ids:
        image, _, class_ids, boxes, masks, attrs, attr_weights = load_image_gt(
            dataset, config, image_id, with_attributes=True
        )
        keep = class_ids > 0
        class_ids, boxes, masks, attrs, attr_weights = (
            class_ids[keep],
            boxes[keep],
            masks[..., keep],
            attrs[keep],
            attr_weights[keep],
        )
        if not len(class_ids):
            continue
        r = model.detect([image])[0]
        aps.append(compute_ap(boxes, class_ids, masks, r["rois"], r["class_ids"], r["scores"], r["masks"])[0])
        for p, g in match_instances(class_ids, masks, r["class_ids"], r["scores"], r["masks"]):
            scores.append(r["attributes"][p])
            gt.append(attrs[g] > 0.5)
            weights.append(attr_weights[g])
    names = dataset.model_attribute_names
    a = len(names)
    scores = np.asarray(scores).reshape(-1, a)
    metrics = attribute_metrics(
        scores, scores >= 0.5, np.asarray(gt).reshape(-1, a), np.asarray(weights).reshape(-1, a), names, 0.5
    )
    return {
        "mAP50": float(np.mean(aps)),
        "attr_mAP": metrics["mAP"],
        "micro_f1": metrics["micro_f1"],
        "matched": metrics["num_matched"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--own-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="shared,own")
    args = p.parse_args()

    import keras

    from mrcnn.model import MaskRCNN

    dataset = load_dataset("imaterialist", SAMPLE, classes="thesis11", max_dim=128)
    dataset.select_attributes("all")
    dataset.prepare()
    train, val = split(dataset, 0.2, seed=args.seed)
    schedule = with_epochs(get_schedule("sample"), args.epochs)
    print(
        f"{len(train.image_info)} train / {len(val.image_info)} held-out images, attributes {train.model_attribute_names}"
    )
    for variant in args.variants.split(","):
        size = 0 if variant == "shared" else args.own_size
        overrides = dict(NUM_ATTRIBUTES=train.num_attributes, ATTRIBUTE_FC_LAYERS_SIZE=size)
        config = make_config("sample", num_classes=dataset.num_classes, **overrides)
        keras.utils.set_random_seed(args.seed)
        with tempfile.TemporaryDirectory() as logs:
            model = MaskRCNN("training", config, logs)
            start = cpu_seconds()
            run_schedule(model, schedule, train, None, verbose=0, workers=1, log=lambda _: None)
            seconds = cpu_seconds() - start
            losses = _last_losses(model.log_dir)
            path = os.path.join(logs, "last.h5")
            model.save_weights(path)
            inference = MaskRCNN(
                "inference",
                make_config("sample", num_classes=dataset.num_classes, inference=True, **overrides),
                logs,
            )
            inference.load_weights(path, by_name=True)
            held_out = evaluate(inference, inference.config, val)
            seen = evaluate(inference, inference.config, train)
        print(
            f"{variant:6} (ATTRIBUTE_FC_LAYERS_SIZE={size}): held-out attr mAP {_f(held_out['attr_mAP'])} "
            f"micro-F1 {_f(held_out['micro_f1'])} class mAP@0.5 {_f(held_out['mAP50'])} "
            f"({held_out['matched']} matched) | train attr mAP {_f(seen['attr_mAP'])} "
            f"class mAP@0.5 {_f(seen['mAP50'])} ({seen['matched']} matched) | last epoch {losses} | "
            f"training CPU {seconds:.0f} s",
            flush=True,
        )


def _last_losses(log_dir: str) -> str:
    """The last epoch's mrcnn_class_loss and mrcnn_attr_loss from the run's history.csv."""
    import csv

    with open(os.path.join(log_dir, "history.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return ", ".join(f"{k} {float(last[k]):.3f}" for k in ("mrcnn_class_loss", "mrcnn_attr_loss"))


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
