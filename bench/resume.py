"""How exactly a resumed run continues: 2 epochs in one run vs 1 epoch, a new process, and 1 resumed epoch.

    python bench/resume.py                   # tiny model on synthetic shapes, 2 epochs of 4 steps each
    python bench/resume.py --steps 8 --roi-sampling off

Every leg runs in a process of its own (as a real resume does) with ``keras.utils.set_random_seed(seed)`` and
``tf.config.experimental.enable_op_determinism()``:

- ``straight``: ``MaskRCNN.train(epochs=2)``; run twice, the difference between the two is the floor (0 when the
  machine and TensorFlow are deterministic);
- ``first``: the same call stopped (as by a kill) after epoch 1's checkpoint;
- ``resumed``: a new process loads that checkpoint (``load_weights``, as ``--weights last`` does) and trains
  epoch 2, restoring the optimizer state the checkpoint holds;
- ``resumed without optimizer state``: the same from a copy of the checkpoint whose ``optimizer_state`` group
  is deleted (what every resume did before checkpoints held it: momentum from zero).

It prints the largest absolute and the relative (L2) difference of all the weights after epoch 2 against the
straight run's, and the epoch-2 losses of each. ``--roi-sampling off`` removes the randomness of the ROI
sampling in the graph (ROI_POSITIVE_RATIO = 1 with TRAIN_ROIS_PER_IMAGE >= POST_NMS_ROIS_TRAINING keeps every
positive proposal and samples no negatives), to tell its share of what remains.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import pathlib
import sys

sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))

import argparse
import json
import shutil
import subprocess
import tempfile
import time


class _Stop(Exception):
    pass


def _config(args):
    from mrcnn.testing import tiny_config

    overrides = {"STEPS_PER_EPOCH": args.steps, "LEARNING_MOMENTUM": 0.9}
    if args.roi_sampling == "off":
        overrides.update(ROI_POSITIVE_RATIO=1.0, TRAIN_ROIS_PER_IMAGE=64, POST_NMS_ROIS_TRAINING=64)
    return tiny_config(**overrides)


def run_leg(args) -> None:
    """One leg in this process; writes {"history": ...} to ``args.out`` (the weights are the checkpoints)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    from mrcnn.data.synthetic import ShapesDataset
    from mrcnn.model import MaskRCNN

    config = _config(args)
    train_set = ShapesDataset.build(12, 64, 64, seed=1)
    val_set = ShapesDataset.build(4, 64, 64, seed=2)
    model = MaskRCNN("training", config, args.logs)
    callbacks = []
    if args.leg == "first":

        class StopAfterFirst(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1:
                    raise _Stop

        callbacks.append(StopAfterFirst())
    elif args.leg == "resumed":
        model.load_weights(args.checkpoint, by_name=True)
    rows = {}

    steps = []

    class Losses(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(float((logs or {}).get("loss", float("nan"))))

        def on_epoch_end(self, epoch, logs=None):
            rows[epoch + 1] = {k: float(v) for k, v in (logs or {}).items()}
            rows[epoch + 1]["step_losses"] = steps[:]
            steps.clear()

    callbacks.append(Losses())
    try:
        model.train(
            train_set, val_set, 0.01, epochs=2, layers="all", workers=1, verbose=0, custom_callbacks=callbacks
        )
    except _Stop:
        pass
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"history": rows, "last": model.last_checkpoint}, f)


def _leg(args, leg: str, logs: str, out: str, checkpoint: str | None = None) -> dict:
    command = [sys.executable, __file__, "--leg", leg, "--logs", logs, "--out", out]
    command += ["--seed", str(args.seed), "--steps", str(args.steps), "--roi-sampling", args.roi_sampling]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    subprocess.run(command, check=True)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _weights(path: str) -> dict:
    import h5py

    from mrcnn.weights import _file_groups, _weights_root

    with h5py.File(path, "r") as f:
        root = _weights_root(f, path)
        return {
            f"{group}/{name}": ds[()] for group, weights in _file_groups(root, path) for name, ds in weights
        }


def _difference(a: dict, b: dict) -> tuple[float, float]:
    """(largest |a - b| over all weights, ||a - b|| / ||a|| over all weights together)."""
    import numpy as np

    largest, squared, norm = 0.0, 0.0, 0.0
    for name, value in a.items():
        diff = np.asarray(value, np.float64) - np.asarray(b[name], np.float64)
        largest = max(largest, float(np.max(np.abs(diff))) if diff.size else 0.0)
        squared += float(np.sum(diff**2))
        norm += float(np.sum(np.asarray(value, np.float64) ** 2))
    return largest, (squared / norm) ** 0.5 if norm else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4, help="steps per epoch")
    parser.add_argument("--roi-sampling", choices=("on", "off"), default="on")
    parser.add_argument("--keep", help="keep the legs' folders in this folder")
    parser.add_argument("--leg", help=argparse.SUPPRESS)
    parser.add_argument("--logs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.leg:
        run_leg(args)
        return 0

    import h5py

    from mrcnn.optimizer_state import GROUP

    work = args.keep or tempfile.mkdtemp(prefix="resume_bench_")
    try:
        started = time.time()
        straight = _leg(args, "straight", f"{work}/a", f"{work}/a.json")
        again = _leg(args, "straight", f"{work}/b", f"{work}/b.json")
        first = _leg(args, "first", f"{work}/c", f"{work}/c.json")
        checkpoint = first["last"]
        bare_folder = f"{work}/d/{os.path.basename(os.path.dirname(checkpoint))}"
        shutil.copytree(os.path.dirname(checkpoint), bare_folder)
        bare = os.path.join(bare_folder, os.path.basename(checkpoint))
        with h5py.File(bare, "a") as f:
            del f[GROUP]
        resumed = _leg(args, "resumed", f"{work}/c", f"{work}/r.json", checkpoint)
        without = _leg(args, "resumed", f"{work}/d", f"{work}/w.json", bare)
        reference = _weights(straight["last"])
        print(
            f"\ntiny model, 2 epochs of {args.steps} steps, seed {args.seed}, ROI sampling {args.roi_sampling}, "
            f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')} ({time.time() - started:.0f} s)"
        )
        print(f"{'run':40} {'max |dw|':>10} {'rel L2':>10} {'epoch-2 loss':>14} {'val_loss':>10}")
        for name, leg in (
            ("straight (the reference)", straight),
            ("straight again (determinism floor)", again),
            ("resumed with optimizer state", resumed),
            ("resumed without optimizer state", without),
        ):
            largest, relative = _difference(reference, _weights(leg["last"]))
            row = leg["history"]["2"]
            print(
                f"{name:40} {largest:10.3g} {relative:10.3g} {row['loss']:14.6f} {row.get('val_loss', 0):10.6f}"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
