"""Input pipeline speed: images per second of the training data path.

    python bench/data.py                  # the default table, about a minute and a half on 2 CPU cores
    python bench/data.py --seconds 2      # shorter (noisier) runs
    python bench/data.py --sizes 512      # one image size

Rows:
    gt+rpn:        load_image_gt (draw, resize, masks, mini masks) + build_rpn_targets, one image at a time.
    gt+rpn +aug:   the same with Fliplr(0.5) + Affine(rotate=(-15, 15)) + GaussianBlur((0, 1)).
    loader w=1/2:  DataLoader batches of 2 (with the augmentation, molding, padding) through Keras's
                   PyDataset iteration, 1 or 2 worker threads.
Images are ShapesDataset images of the given size (1-4 shapes), resized in "square" mode to the same size,
anchors for the ResNet strides with scales (32, 64, 128, 256, 512) at 1024 and half of that at 512.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# isort: off
import mrcnn  # noqa: E402,F401  (patches numpy for imgaug; must precede the imgaug import)

# isort: on

import imgaug.augmenters as iaa  # noqa: E402
import numpy as np  # noqa: E402

from mrcnn.config import Config  # noqa: E402
from mrcnn.data.ground_truth import build_rpn_targets, load_image_gt  # noqa: E402
from mrcnn.data.loader import DataLoader, training_anchors  # noqa: E402
from mrcnn.data.synthetic import ShapesDataset  # noqa: E402


def make_config(size: int) -> Config:
    scale0 = 32 if size >= 1024 else 16

    class BenchConfig(Config):
        NAME = "bench_data"
        NUM_CLASSES = 4
        IMAGES_PER_GPU = 2
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        RPN_ANCHOR_SCALES = tuple(scale0 * 2**i for i in range(5))

    return BenchConfig()


def augmentation() -> iaa.Augmenter:
    return iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(rotate=(-15, 15)), iaa.GaussianBlur(sigma=(0.0, 1.0))])


def bench_gt(dataset: ShapesDataset, config: Config, aug, seconds: float) -> float:
    anchors = training_anchors(config)
    rng = np.random.default_rng(0)
    count, start = 0, time.perf_counter()
    while True:
        image_id = count % dataset.num_images
        image, _, class_ids, boxes, _ = load_image_gt(
            dataset, config, image_id, augmentation=aug, use_mini_mask=config.USE_MINI_MASK, seed=count
        )
        build_rpn_targets(image.shape, anchors, class_ids, boxes, config, rng=rng)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and count >= 3:
            return count / elapsed


def bench_loader(dataset: ShapesDataset, config: Config, workers: int, seconds: float) -> float:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    # One long epoch, so that pool start-up and the end-of-epoch drain stay out of the measurement.
    loader = DataLoader(
        dataset,
        config,
        augmentation=augmentation(),
        workers=workers,
        max_queue_size=4,
        steps_per_epoch=10_000,
    )
    adapter = PyDatasetAdapter(loader, shuffle=False)
    adapter.on_epoch_begin()
    images, start, elapsed = 0, None, 0.0
    for batch in adapter.get_numpy_iterator():
        if start is None:  # the first batch includes pool start-up
            start = time.perf_counter()
            continue
        images += batch["input_image"].shape[0]
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and images >= 4:
            break
    adapter.on_epoch_end()
    return images / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per cell")
    args = parser.parse_args()

    rows = [("gt+rpn", None), ("gt+rpn +aug", "aug"), ("loader w=1", 1), ("loader w=2", 2)]
    results: dict[tuple[str, int], float] = {}
    for size in args.sizes:
        config = make_config(size)
        dataset = ShapesDataset.build(16, size, size, seed=0)
        for name, kind in rows:
            if kind is None:
                results[name, size] = bench_gt(dataset, config, None, args.seconds)
            elif kind == "aug":
                results[name, size] = bench_gt(dataset, config, augmentation(), args.seconds)
            else:
                results[name, size] = bench_loader(dataset, config, kind, args.seconds)
            print(f"  {name:<12} {size:>5}px  {results[name, size]:7.1f} img/s", file=sys.stderr, flush=True)

    print(f"\nimages/second ({args.seconds:g} s per cell)")
    print(f"{'':<14}" + "".join(f"{f'{s}px':>10}" for s in args.sizes))
    for name, _ in rows:
        print(f"{name:<14}" + "".join(f"{results[name, s]:>10.1f}" for s in args.sizes))


if __name__ == "__main__":
    main()
