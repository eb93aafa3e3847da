"""Training batches: a ``keras.utils.PyDataset`` (``DataLoader``) and Matterport's ``data_generator``.

Both load images with :func:`load_image_gt`, label anchors with :func:`build_rpn_targets`, mold the images and
zero-pad the ground truth to ``MAX_GT_INSTANCES``. Images without instances are skipped.

``DataLoader`` is deterministic: the image order of epoch ``e`` is a permutation drawn from ``seed + e``, and
all randomness of batch ``i`` (augmentation, anchor and instance subsampling) comes from a generator seeded
with ``(seed, e, i)``, so the batches are the same whatever the number of worker threads.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from mrcnn.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.data.ground_truth import (
    build_detection_targets,
    build_rpn_targets,
    generate_random_rois,
    load_image_gt,
)
from mrcnn.pipeline import mold_image

logger = logging.getLogger(__name__)

INPUT_NAMES = (
    "input_image",
    "input_image_meta",
    "input_rpn_match",
    "input_rpn_bbox",
    "input_gt_class_ids",
    "input_gt_boxes",
    "input_gt_masks",
)
# The two further inputs of a model with an attribute head (config.NUM_ATTRIBUTES > 0).
ATTRIBUTE_INPUT_NAMES = ("input_gt_attributes", "input_gt_attribute_weights")


class NoUsableImageError(RuntimeError):
    """A full pass over the dataset found no image that loads and has instances: nothing to train on."""


# data_generator gives up after this many failed images, as Matterport's.
MAX_GENERATOR_ERRORS = 5


def check_attributes(dataset: Any, config: Any) -> None:
    """Raise ValueError unless ``dataset`` gives the config.NUM_ATTRIBUTES attributes a model with an attribute
    head trains on (nothing to check for a model without one: a dataset's attributes are then ignored)."""
    wanted = int(getattr(config, "NUM_ATTRIBUTES", 0))
    if not wanted:
        return
    available = int(getattr(dataset, "num_attributes", 0))
    if available != wanted:
        raise ValueError(
            f"the model predicts {wanted} attributes (NUM_ATTRIBUTES) but {type(dataset).__name__} labels its "
            f"instances with {available}; build the model with NUM_ATTRIBUTES = {available}"
        )


def training_anchors(config: Any) -> np.ndarray:
    """Anchors of config.IMAGE_SHAPE, [A, (y1, x1, y2, x2)] in pixels (what the training model uses)."""
    backbone_shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    return generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES,
        config.RPN_ANCHOR_RATIOS,
        backbone_shapes,
        config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE,
    )


def _describe(dataset: Any, image_id: int) -> str:
    info = dataset.image_info[image_id]
    text = f"image id {image_id} (source {info.get('source')!r}, source id {info.get('id')!r}"
    if info.get("path"):
        text += f", path {info['path']!r}"
    return text + ")"


def _augmentation_for(dataset: Any, image_id: int, augmentation: Any, no_augmentation_sources: Any) -> Any:
    if no_augmentation_sources and dataset.image_info[image_id]["source"] in no_augmentation_sources:
        return None
    return augmentation


def _limit_instances(
    class_ids: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray,
    limit: int,
    rng: Any,
    rows: tuple[np.ndarray, ...] = (),
) -> tuple[np.ndarray, ...]:
    """Keeps a random ``limit`` instances when there are more (Matterport's MAX_GT_INSTANCES rule).

    rows: further per-instance arrays ([N, ...], e.g. attributes) cut the same way and returned after masks.
    """
    if class_ids.shape[0] <= limit:
        return (class_ids, boxes, masks, *rows)
    ids = np.sort(rng.choice(class_ids.shape[0], limit, replace=False))
    return (class_ids[ids], boxes[ids], masks[:, :, ids], *(r[ids] for r in rows))


class DataLoader(keras.utils.PyDataset):
    """Batches of training inputs for the Mask R-CNN training model.

    Each item is a dict (B = batch size, A = anchors, G = config.MAX_GT_INSTANCES):
        input_image [B, H, W, 3] float32, molded (mean pixel subtracted).
        input_image_meta [B, IMAGE_META_SIZE] float32.
        input_rpn_match [B, A, 1] int32 in {1, -1, 0}.
        input_rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4] float32.
        input_gt_class_ids [B, G] int32, zero-padded.
        input_gt_boxes [B, G, (y1, x1, y2, x2)] float32 pixel coordinates, zero-padded.
        input_gt_masks [B, mh, mw, G] bool, mini masks (MINI_MASK_SHAPE) when config.USE_MINI_MASK, else
            full-size [H, W].
        With config.NUM_ATTRIBUTES = A > 0 (the dataset's ``load_mask_and_attribute_targets`` gives them):
        input_gt_attributes [B, G, A] float32 multi-hot, input_gt_attribute_weights [B, G, A] float32
            (1 where labelled), zero-padded.

    Batch ``i`` of an epoch takes the images at positions ``i*B ..`` of the epoch's order; an image without
    instances (after augmentation) is replaced by the next image in that order, wrapping around, so a batch is
    always full but an image may appear twice in an epoch. ``skipped`` counts the image loads skipped for
    having no instances, ``errors`` those that failed (raised with ``skip_errors``, or an image id the dataset
    lists in its ``unreadable`` set); a summary is logged at the end of an epoch that met new such images.

    Args:
        dataset: a prepared Dataset.
        config: a Config (BATCH_SIZE is the batch size unless batch_size is given).
        shuffle: shuffle the image order each epoch. augmentation: imgaug augmenter (or see load_image_gt).
        seed: base seed of the order and of all randomness. workers, use_multiprocessing, max_queue_size:
            as keras.utils.PyDataset (threads by default; processes are not needed and not recommended).
        augment: Matterport's deprecated random left/right flip.
        no_augmentation_sources: dataset sources whose images are never augmented.
        skip_errors: skip (and count in ``errors``) images that fail to load instead of raising.
        steps_per_epoch: batches per epoch; default ceil(num_images / batch size).
        initial_epoch: epoch counter to start from (give the model's epoch when resuming training, so that
            a resumed run does not replay the first epochs' order and augmentations).
    """

    def __init__(
        self,
        dataset: Any,
        config: Any,
        shuffle: bool = True,
        augmentation: Any = None,
        seed: int = 0,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        augment: bool = False,
        no_augmentation_sources: Any = None,
        skip_errors: bool = False,
        steps_per_epoch: int | None = None,
        batch_size: int | None = None,
        initial_epoch: int = 0,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if dataset.num_images == 0:
            raise ValueError("DataLoader needs a prepared dataset with at least one image")
        check_attributes(dataset, config)
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.augment = augment
        self.seed = int(seed)
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        self.skip_errors = skip_errors
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.steps_per_epoch = steps_per_epoch
        self.anchors = training_anchors(config)
        self.epoch = int(initial_epoch)
        self.skipped = 0
        self.errors = 0
        self.skipped_image_ids: set[int] = set()
        self.failed_image_ids: set[int] = set()
        self._epoch_skipped = 0
        self._epoch_errors = 0
        self._reported_images = 0
        self._lock = threading.Lock()
        self._order = self._epoch_order(self.epoch)

    # ------------------------------------------------------------------ PyDataset API
    def __len__(self) -> int:
        if self.steps_per_epoch:
            return int(self.steps_per_epoch)
        return max(1, math.ceil(self.dataset.num_images / self.batch_size))

    @property
    def num_batches(self) -> int:
        return len(self)

    def on_epoch_end(self) -> None:
        distinct = len(self.skipped_image_ids | self.failed_image_ids)
        # Once per new problem image, not every epoch for the same ones.
        if (self._epoch_skipped or self._epoch_errors) and distinct > self._reported_images:
            self._reported_images = distinct
            logger.warning(
                "epoch %d: skipped %d image loads without instances and %d that failed to load "
                "(totals so far: %d skipped, %d failed, %d distinct images)",
                self.epoch,
                self._epoch_skipped,
                self._epoch_errors,
                self.skipped,
                self.errors,
                len(self.skipped_image_ids | self.failed_image_ids),
            )
        self._epoch_skipped = self._epoch_errors = 0
        self.epoch += 1
        self._order = self._epoch_order(self.epoch)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if index < 0 or index >= len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        epoch, order = self.epoch, self._order
        rng = np.random.default_rng([self.seed, epoch, index])
        examples = []
        n = len(order)
        position = index * self.batch_size
        misses = 0
        while len(examples) < self.batch_size:
            if misses >= n:
                raise NoUsableImageError(
                    f"no usable image in a full pass over the dataset ({n} images): every image has no "
                    f"instances or fails to load ({len(self.skipped_image_ids)} without instances, "
                    f"{len(self.failed_image_ids)} that failed to load)"
                )
            image_id = int(order[position % n])
            position += 1
            example = self._load(image_id, rng)
            if example is None:
                misses += 1
                continue
            misses = 0
            examples.append(example)
        return self._collate(examples)

    # ------------------------------------------------------------------ internals
    def image_order(self, epoch: int | None = None) -> np.ndarray:
        """[num_images] image ids in the order of epoch ``epoch`` (default: the current one)."""
        return self._order.copy() if epoch is None else self._epoch_order(epoch)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        ids = np.asarray(self.dataset.image_ids)
        if not self.shuffle:
            return ids.copy()
        return np.random.default_rng(self.seed + epoch).permutation(ids)

    def _load(self, image_id: int, rng: np.random.Generator) -> tuple[np.ndarray, ...] | None:
        """One image's arrays, or None when it has no instances (or fails and skip_errors is set)."""
        augmentation = _augmentation_for(
            self.dataset, image_id, self.augmentation, self.no_augmentation_sources
        )
        with_attributes = bool(self.config.NUM_ATTRIBUTES)
        try:
            image, image_meta, class_ids, boxes, masks, *attributes = load_image_gt(
                self.dataset,
                self.config,
                image_id,
                augment=self.augment,
                augmentation=augmentation,
                use_mini_mask=self.config.USE_MINI_MASK,
                seed=int(rng.integers(2**31)),
                with_attributes=with_attributes,
            )
        except Exception as e:
            if not self.skip_errors:
                e.add_note(f"while loading {_describe(self.dataset, image_id)} for the DataLoader")
                raise
            logger.warning("skipping %s: %s: %s", _describe(self.dataset, image_id), type(e).__name__, e)
            with self._lock:
                self.errors += 1
                self._epoch_errors += 1
                self.failed_image_ids.add(image_id)
            return None
        if image_id in getattr(self.dataset, "unreadable", ()):
            # A dataset that skips unreadable files (fashion's skip_unreadable) gives a black image without
            # instances for them: count it as what it is, a failed load (the dataset warned once, naming it).
            with self._lock:
                self.errors += 1
                self._epoch_errors += 1
                self.failed_image_ids.add(image_id)
            return None
        if not np.any(class_ids > 0):
            with self._lock:
                self.skipped += 1
                self._epoch_skipped += 1
                self.skipped_image_ids.add(image_id)
            return None
        class_ids, boxes, masks, *attributes = _limit_instances(
            class_ids, boxes, masks, self.config.MAX_GT_INSTANCES, rng, rows=tuple(attributes)
        )
        rpn_match, rpn_bbox = build_rpn_targets(
            image.shape, self.anchors, class_ids, boxes, self.config, rng=rng
        )
        return (image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks, *attributes)

    def _collate(self, examples: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
        config = self.config
        b, g = len(examples), config.MAX_GT_INSTANCES
        shapes = {ex[0].shape for ex in examples}
        if len(shapes) > 1:
            raise ValueError(
                f"images of one batch differ in shape {sorted(shapes)}; use IMAGE_RESIZE_MODE 'square' or "
                "'crop', or a batch size of 1"
            )
        mask_shape = examples[0][6].shape[:2]
        batch = {
            "input_image": np.zeros((b,) + examples[0][0].shape, dtype=np.float32),
            "input_image_meta": np.zeros((b, examples[0][1].shape[0]), dtype=np.float32),
            "input_rpn_match": np.zeros((b, self.anchors.shape[0], 1), dtype=np.int32),
            "input_rpn_bbox": np.zeros((b, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), dtype=np.float32),
            "input_gt_class_ids": np.zeros((b, g), dtype=np.int32),
            "input_gt_boxes": np.zeros((b, g, 4), dtype=np.float32),
            "input_gt_masks": np.zeros((b,) + mask_shape + (g,), dtype=bool),
        }
        num_attributes = int(config.NUM_ATTRIBUTES)
        if num_attributes:
            for name in ATTRIBUTE_INPUT_NAMES:
                batch[name] = np.zeros((b, g, num_attributes), dtype=np.float32)
        for i, (image, meta, rpn_match, rpn_bbox, class_ids, boxes, masks, *attributes) in enumerate(
            examples
        ):
            n = class_ids.shape[0]
            batch["input_image"][i] = mold_image(image.astype(np.float32), config)
            batch["input_image_meta"][i] = meta
            batch["input_rpn_match"][i, :, 0] = rpn_match
            batch["input_rpn_bbox"][i] = rpn_bbox
            batch["input_gt_class_ids"][i, :n] = class_ids
            batch["input_gt_boxes"][i, :n] = boxes
            batch["input_gt_masks"][i, :, :, :n] = masks
            for name, rows in zip(ATTRIBUTE_INPUT_NAMES, attributes):
                batch[name][i, :n] = rows
        return batch


def data_generator(
    dataset: Any,
    config: Any,
    shuffle: bool = True,
    augment: bool = False,
    augmentation: Any = None,
    random_rois: int = 0,
    batch_size: int = 1,
    detection_targets: bool = False,
    no_augmentation_sources: Any = None,
) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Matterport's endless training generator, yielding ``(inputs, outputs)`` lists.

    inputs: [images [B,H,W,3] float32 molded, image_meta [B,META] float32, rpn_match [B,A,1] int32,
    rpn_bbox [B,RPN_TRAIN_ANCHORS_PER_IMAGE,4] float32, gt_class_ids [B,G] int32, gt_boxes [B,G,4] int32,
    gt_masks [B,mh,mw,G] bool]; with config.NUM_ATTRIBUTES = A > 0 also gt_attributes [B,G,A] and
    gt_attribute_weights [B,G,A] float32 (the model's inputs in order); with random_rois also rpn_rois
    [B,random_rois,4] int32, and with
    detection_targets also rois [B,T,4] int32. outputs: [] or, with detection_targets, [class_ids [B,T,1],
    bbox [B,T,NUM_CLASSES,4], mask [B,T,MASK_SHAPE...,NUM_CLASSES]].

    Uses numpy's global random state, as Matterport. Images without instances are skipped; an image that
    fails to load is logged (with its name) and skipped, and the error is raised after 5 such failures.
    """
    anchors = training_anchors(config)
    check_attributes(dataset, config)
    with_attributes = bool(getattr(config, "NUM_ATTRIBUTES", 0))
    image_ids = np.copy(dataset.image_ids)
    rng = np.random.default_rng(np.random.randint(2**31))
    image_index = -1
    error_count = 0
    collected: list[tuple[np.ndarray, ...]] = []
    while True:
        image_index = (image_index + 1) % len(image_ids)
        if shuffle and image_index == 0:
            np.random.shuffle(image_ids)
        image_id = int(image_ids[image_index])
        try:
            image, image_meta, class_ids, boxes, masks, *attributes = load_image_gt(
                dataset,
                config,
                image_id,
                augment=augment,
                augmentation=_augmentation_for(dataset, image_id, augmentation, no_augmentation_sources),
                use_mini_mask=config.USE_MINI_MASK,
                with_attributes=with_attributes,
            )
            if not np.any(class_ids > 0):
                continue
            rpn_match, rpn_bbox = build_rpn_targets(image.shape, anchors, class_ids, boxes, config)
            example: tuple[np.ndarray, ...] = ()
            if random_rois:
                rpn_rois = generate_random_rois(image.shape, random_rois, class_ids, boxes, rng=rng)
                example = (rpn_rois,)
                if detection_targets:
                    example += build_detection_targets(rpn_rois, class_ids, boxes, masks, config, rng=rng)
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception:
            logger.exception("Error processing %s", _describe(dataset, image_id))
            error_count += 1
            if error_count > MAX_GENERATOR_ERRORS:
                raise
            continue
        class_ids, boxes, masks, *attributes = _limit_instances(
            class_ids, boxes, masks, config.MAX_GT_INSTANCES, np.random, rows=tuple(attributes)
        )
        collected.append(
            (image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks, *attributes) + example
        )
        if len(collected) < batch_size:
            continue
        yield _generator_batch(collected, anchors, config, random_rois, detection_targets)
        collected = []


def _generator_batch(
    examples: list[tuple[np.ndarray, ...]],
    anchors: np.ndarray,
    config: Any,
    random_rois: int,
    detection_targets: bool,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    b, g = len(examples), config.MAX_GT_INSTANCES
    first = examples[0]
    images = np.zeros((b,) + first[0].shape, dtype=np.float32)
    metas = np.zeros((b, first[1].shape[0]), dtype=np.float32)
    rpn_match = np.zeros((b, anchors.shape[0], 1), dtype=np.int32)
    rpn_bbox = np.zeros((b, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), dtype=np.float32)
    gt_class_ids = np.zeros((b, g), dtype=np.int32)
    gt_boxes = np.zeros((b, g, 4), dtype=np.int32)
    gt_masks = np.zeros((b,) + first[6].shape[:2] + (g,), dtype=bool)
    for i, ex in enumerate(examples):
        n = ex[4].shape[0]
        images[i] = mold_image(ex[0].astype(np.float32), config)
        metas[i] = ex[1]
        rpn_match[i, :, 0] = ex[2]
        rpn_bbox[i] = ex[3]
        gt_class_ids[i, :n] = ex[4]
        gt_boxes[i, :n] = ex[5]
        gt_masks[i, :, :, :n] = ex[6]
    inputs = [images, metas, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks]
    k = 7  # where the optional parts of an example start
    num_attributes = int(getattr(config, "NUM_ATTRIBUTES", 0))
    if num_attributes:
        for j in (k, k + 1):
            rows = np.zeros((b, g, num_attributes), dtype=np.float32)
            for i, ex in enumerate(examples):
                rows[i, : ex[j].shape[0]] = ex[j]
            inputs.append(rows)
        k += 2
    outputs: list[np.ndarray] = []
    if random_rois:
        inputs.append(np.stack([ex[k] for ex in examples]))
        if detection_targets:
            inputs.append(np.stack([ex[k + 1] for ex in examples]))
            outputs = [
                np.stack([ex[k + 2] for ex in examples])[..., np.newaxis],
                np.stack([ex[k + 3] for ex in examples]),
                np.stack([ex[k + 4] for ex in examples]),
            ]
    return inputs, outputs
