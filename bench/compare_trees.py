"""detect() and a training step of two checkouts of this repository, alternated in one run (a before/after check).

    git worktree add /tmp/before <commit>
    python bench/compare_trees.py /tmp/before .            # two rounds, CPU seconds (median of repeats)

Each (round, tree) runs in a fresh process that imports only that tree's packages: ResNet50 at 256x256, 4
classes, random weights (seed 0), DETECTION_MIN_CONFIDENCE 0 (so 100 detections and a full mask head), and one
"heads" training step on synthetic shapes. CPU seconds (user + system of the process), which a loaded machine
inflates less than wall time. Uses only API both trees must have: Config, MaskRCNN, ShapesDataset and
mrcnn.training's TrainingLoader / TrainingModel / make_optimizer / set_trainable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from mrcnn.runtime import cpu_info

CHILD = r"""
import statistics, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import keras, tensorflow as tf
import mrcnn
assert mrcnn.__file__.startswith(sys.argv[1]), mrcnn.__file__
from mrcnn.config import Config
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.model import MaskRCNN
from mrcnn.training import TrainingLoader, TrainingModel, make_optimizer, set_trainable

class BenchConfig(Config):
    NAME = "compare"; NUM_CLASSES = 4; BACKBONE = "resnet50"; IMAGE_MIN_DIM = 256; IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256); IMAGES_PER_GPU = 1; DETECTION_MIN_CONFIDENCE = 0.0

def cpu_median(fn, n):
    times = []
    for _ in range(n):
        start = time.process_time(); fn(); times.append(time.process_time() - start)
    return statistics.median(times)

keras.utils.set_random_seed(0)
dataset = ShapesDataset.build(4, 256, 256, seed=0)
image = dataset.load_image(0)
detector = MaskRCNN("inference", BenchConfig(), tempfile.mkdtemp())
detector.detect([image]); detector.detect([image])
detect = cpu_median(lambda: detector.detect([image]), int(sys.argv[2]))
keras.utils.set_random_seed(0)
config = BenchConfig()
model = MaskRCNN("training", config, tempfile.mkdtemp())
set_trainable(model.keras_model, "heads")
batch = {k: tf.constant(v) for k, v in TrainingLoader(dataset, config, shuffle=False, workers=1)[0].items()}
trainer = TrainingModel(model.keras_model, config)
trainer.compile(optimizer=make_optimizer(config, 0.001), jit_compile=False)
step = tf.function(trainer.train_step); step(batch); step(batch)
train = cpu_median(lambda: step(batch), int(sys.argv[2]))
print(f"RESULT {detect:.4f} {train:.4f}")
"""


def run_tree(tree: str, repeats: int) -> tuple[float, float]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, os.path.abspath(tree), str(repeats)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.abspath(tree),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{tree}: the benchmark failed\n{proc.stderr[-3000:]}")
    detect, train = (float(v) for v in lines[-1].split()[1:])
    return detect, train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", help="checkout of the old code")
    parser.add_argument("after", help="checkout of the new code")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two trees (default 2)")
    parser.add_argument("--repeats", type=int, default=6, help="timed calls per measurement (default 6)")
    args = parser.parse_args(argv)
    cpu = cpu_info()
    print(f"CPU: {cpu.model}, {cpu.cores} cores, {cpu.vector_summary()}")
    print(f"{'round':>5}  {'tree':<8} {'detect CPU s/image':>18} {'heads step CPU s':>16}")
    for round_ in range(1, args.rounds + 1):
        for name, tree in (("before", args.before), ("after", args.after)):
            detect, train = run_tree(tree, args.repeats)
            print(f"{round_:>5}  {name:<8} {detect:>18.3f} {train:>16.3f}", flush=True)


if __name__ == "__main__":
    main()
