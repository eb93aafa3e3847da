"""Ground truth for training: resized image, instance masks and boxes, RPN anchor targets.

``load_image_gt`` turns one dataset image into what the model trains on; ``build_rpn_targets`` labels the
anchors for the RPN. ``generate_random_rois`` and ``build_detection_targets`` are Matterport's numpy versions
of the proposal targets, used by ``data_generator(random_rois=..., detection_targets=True)`` for debugging
the heads without the RPN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrcnn.boxes import box_refinement, compute_overlaps, extract_bboxes
from mrcnn.data.augmentation import augment_image_and_masks
from mrcnn.masks import minimize_mask
from mrcnn.pipeline import ImageMeta, ResizeRule, apply_plan, plan_resize, resize_bilinear_exact, resize_masks

# Matterport's RPN IoU thresholds.
RPN_POSITIVE_IOU = 0.7
RPN_NEGATIVE_IOU = 0.3
CROWD_IOU = 0.001


def _describe(dataset: Any, image_id: int) -> str:
    ref = ""
    try:
        ref = dataset.image_reference(image_id)
    except Exception:  # a broken image_reference must not hide the real error
        pass
    info = dataset.image_info[image_id]
    where = f"image id {image_id} (source {info.get('source')!r}, source id {info.get('id')!r}"
    if info.get("path"):
        where += f", path {info['path']!r}"
    if ref:
        where += f", {ref}"
    return where + ")"


def _check_instances(dataset: Any, image_id: int, image: np.ndarray, mask: np.ndarray, class_ids: np.ndarray):
    """Validates load_mask's output. Negative class ids are crowds (Matterport's COCO convention): -id must
    be a valid class. Returns mask [H, W, N] bool and class_ids [N] int32."""
    class_ids = np.asarray(class_ids).reshape(-1)
    if class_ids.size and not np.issubdtype(class_ids.dtype, np.integer):
        if not np.all(np.equal(np.mod(class_ids, 1), 0)):
            raise ValueError(f"non-integer class ids {class_ids} in {_describe(dataset, image_id)}")
    class_ids = class_ids.astype(np.int32)
    mask = np.asarray(mask)
    if class_ids.size == 0 and mask.size == 0:
        return np.zeros(image.shape[:2] + (0,), dtype=bool), class_ids
    bad = (class_ids == 0) | (np.abs(class_ids) >= dataset.num_classes)
    if bad.any():
        raise ValueError(
            f"unknown class id(s) {sorted(set(class_ids[bad].tolist()))} in {_describe(dataset, image_id)}: "
            f"the dataset has classes 1..{dataset.num_classes - 1} (negative ids mark crowds)"
        )
    if mask.ndim != 3 or mask.shape[:2] != image.shape[:2] or mask.shape[2] != class_ids.shape[0]:
        raise ValueError(
            f"load_mask of {_describe(dataset, image_id)} returned mask {mask.shape} and "
            f"{class_ids.shape[0]} class ids for an image of shape {image.shape}"
        )
    return mask.astype(bool, copy=False), class_ids


def _load_instances(dataset: Any, image_id: int, num_attributes: int):
    """(mask, class_ids, attributes [N, A] float32, weights [N, A] float32) from the dataset's
    ``load_mask_and_attribute_targets``, checked against ``num_attributes`` (A)."""
    loader = getattr(dataset, "load_mask_and_attribute_targets", None)
    if loader is None:
        raise TypeError(
            f"{type(dataset).__name__} has no per-instance attributes (no load_mask_and_attribute_targets) but "
            f"the model predicts {num_attributes} (NUM_ATTRIBUTES); use NUM_ATTRIBUTES = 0 or a dataset with "
            "attributes (see mrcnn.data.Dataset.load_attribute_targets)"
        )
    mask, class_ids, attributes, weights = loader(image_id)
    n = np.asarray(class_ids).reshape(-1).shape[0]
    attributes = np.asarray(attributes, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    for name, value in (("attributes", attributes), ("attribute weights", weights)):
        if value.shape != (n, num_attributes) and not (n == 0 and value.size == 0):
            raise ValueError(
                f"{name} of {_describe(dataset, image_id)} have shape {value.shape}; expected "
                f"({n}, {num_attributes}): one row per instance and NUM_ATTRIBUTES = {num_attributes} columns"
            )
    shape = (n, num_attributes)
    return mask, class_ids, attributes.reshape(shape), weights.reshape(shape)


def load_image_gt(
    dataset: Any,
    config: Any,
    image_id: int,
    augment: bool = False,
    augmentation: Any = None,
    use_mini_mask: bool = False,
    seed: int | None = None,
    with_attributes: bool = False,
) -> tuple[np.ndarray, ...]:
    """Loads an image with its ground truth, resized per config and optionally augmented.

    augment: (deprecated, as in Matterport) flip left/right with probability 0.5.
    augmentation: an imgaug augmenter (only the mask-safe ones touch masks, see mrcnn.data.augmentation),
        an AlbumentationsAugmentation, or a callable f(image, masks, seed) -> (image, masks).
    use_mini_mask: return masks cropped to their boxes and resized to config.MINI_MASK_SHAPE.
    seed: makes augmentation reproducible; None draws from the augmenter's (and numpy's) random state.
    with_attributes: also return the instances' attributes (config.NUM_ATTRIBUTES of them, from the dataset's
        ``load_mask_and_attribute_targets``), aligned with class_ids.

    Returns:
        image: [H, W, 3] uint8, resized and padded (H, W from config.IMAGE_RESIZE_MODE).
        image_meta: [IMAGE_META_SIZE] float32, see mrcnn.data.image_meta.
        class_ids: [N] int32 (negative for crowds).
        bbox: [N, (y1, x1, y2, x2)] int32 pixel boxes of the masks.
        mask: [H, W, N] bool, or [mini_h, mini_w, N] bool with use_mini_mask.
        With with_attributes, also attributes [N, A] float32 (multi-hot) and attribute_weights [N, A] float32
        (1 where labelled); geometric augmentation leaves them as they are.
    Instances whose mask is empty after resizing/augmentation are dropped (with their attribute rows), so N may
    be 0. Raises ValueError naming the image for unknown class ids or inconsistent masks or attributes.
    """
    image = dataset.load_image(image_id)
    if with_attributes:
        num_attributes = int(config.NUM_ATTRIBUTES)
        mask, class_ids, attributes, attribute_weights = _load_instances(dataset, image_id, num_attributes)
    else:
        mask, class_ids = dataset.load_mask(image_id)
    mask, class_ids = _check_instances(dataset, image_id, image, mask, class_ids)
    original_shape = image.shape
    # One generator for the random crop, the flip and the augmentation seed when seeded; else global state.
    rng = np.random.default_rng(seed) if seed is not None else None
    # One plan for the image and its masks (the image pipeline's, as detect() molds images).
    plan = plan_resize(image.shape, ResizeRule.from_config(config), rng)
    image = apply_plan(image, plan)
    mask = resize_masks(mask, plan).astype(bool, copy=False)

    if augment:
        if (rng.random() if rng is not None else np.random.random()) < 0.5:
            image = np.fliplr(image)
            mask = np.fliplr(mask)
    if augmentation is not None:
        aug_seed = int(rng.integers(2**31)) if rng is not None else None
        image, mask = augment_image_and_masks(image, mask, augmentation, seed=aug_seed)

    # Drop instances that vanished (resized away, cropped out, moved out by augmentation); an empty mask is
    # the one whose box has no area.
    bbox = extract_bboxes(mask).astype(np.int32)
    keep = (bbox[:, 2] > bbox[:, 0]) & (bbox[:, 3] > bbox[:, 1])
    if not keep.all():
        mask, class_ids, bbox = mask[:, :, keep], class_ids[keep], bbox[keep]
        if with_attributes:
            attributes, attribute_weights = attributes[keep], attribute_weights[keep]

    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    active_class_ids[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1

    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE).astype(bool, copy=False)

    image_meta = ImageMeta(image_id, original_shape, image.shape, plan.window, plan.scale, active_class_ids)
    outputs = (np.ascontiguousarray(image), image_meta.to_vector(), class_ids, bbox, mask)
    if with_attributes:
        return (*outputs, attributes, attribute_weights)
    return outputs


def anchor_overlaps(anchors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every anchor with every box: [A, 4] x [N, 4] -> [A, N] float64.

    Same values as mrcnn.boxes.compute_overlaps, computed one box (column) at a time on contiguous anchor
    coordinates, which is several times faster for the ~10^5 anchors of a 1024 px image.
    """
    anchors = np.asarray(anchors, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    y1, x1, y2, x2 = (np.ascontiguousarray(anchors[:, i]) for i in range(4))
    anchor_area = (y2 - y1) * (x2 - x1)
    overlaps = np.zeros([anchors.shape[0], boxes.shape[0]], dtype=np.float64)
    for j, (by1, bx1, by2, bx2) in enumerate(boxes):
        h = np.minimum(y2, by2)
        h -= np.maximum(y1, by1)
        np.maximum(h, 0, out=h)
        w = np.minimum(x2, bx2)
        w -= np.maximum(x1, bx1)
        np.maximum(w, 0, out=w)
        h *= w  # intersection
        union = anchor_area + (by2 - by1) * (bx2 - bx1) - h
        np.divide(h, union, out=overlaps[:, j], where=union > 0)
    return overlaps


def build_rpn_targets(
    image_shape: Any,
    anchors: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    config: Any,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels anchors for RPN training and computes the box deltas of the positive ones.

    anchors: [A, (y1, x1, y2, x2)] pixels. gt_class_ids: [N] int (negative = crowd). gt_boxes: [N, 4] pixels.
    rng: source of the random subsampling (default: numpy's global generator, as Matterport).

    An anchor is positive (1) when its IoU with a non-crowd box is >= 0.7 or it is the best anchor of some
    box; negative (-1) when its best IoU is < 0.3 and it does not touch a crowd box (IoU < 0.001); else
    neutral (0). Positives are subsampled to RPN_TRAIN_ANCHORS_PER_IMAGE // 2 and negatives to fill
    RPN_TRAIN_ANCHORS_PER_IMAGE.

    Returns:
        rpn_match: [A] int32 in {1, -1, 0}.
        rpn_bbox: [RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh), log(dw))] float32, deltas from each positive
            anchor (in anchor order) to its best-IoU box, divided by RPN_BBOX_STD_DEV; zero-padded.
    """
    rng = np.random if rng is None else rng
    anchors = np.asarray(anchors)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    train_anchors = config.RPN_TRAIN_ANCHORS_PER_IMAGE
    num_anchors = anchors.shape[0]
    rpn_match = np.zeros([num_anchors], dtype=np.int32)
    rpn_bbox = np.zeros([train_anchors, 4], dtype=np.float32)

    crowd = gt_class_ids < 0
    if crowd.any():
        crowd_overlaps = anchor_overlaps(anchors, gt_boxes[crowd])
        no_crowd = crowd_overlaps.max(axis=1) < CROWD_IOU
        gt_boxes = gt_boxes[~crowd]
    else:
        no_crowd = np.ones([num_anchors], dtype=bool)

    if gt_boxes.shape[0] == 0:
        rpn_match[no_crowd] = -1
        anchor_iou_argmax = np.zeros([num_anchors], dtype=np.int64)
    else:
        overlaps = anchor_overlaps(anchors, gt_boxes)
        anchor_iou_argmax = overlaps.argmax(axis=1)
        anchor_iou_max = overlaps[np.arange(num_anchors), anchor_iou_argmax]
        rpn_match[(anchor_iou_max < RPN_NEGATIVE_IOU) & no_crowd] = -1
        # Every box gets its best anchor(s), ties included; a box that no anchor overlaps gets none
        # (Matterport would mark every anchor positive then).
        gt_max = overlaps.max(axis=0)
        best = (overlaps == gt_max[np.newaxis]) & (gt_max[np.newaxis] > 0)
        rpn_match[best.any(axis=1)] = 1
        rpn_match[anchor_iou_max >= RPN_POSITIVE_IOU] = 1

    positives = np.flatnonzero(rpn_match == 1)
    extra = len(positives) - train_anchors // 2
    if extra > 0:
        rpn_match[rng.choice(positives, extra, replace=False)] = 0
    negatives = np.flatnonzero(rpn_match == -1)
    extra = len(negatives) - (train_anchors - int(np.sum(rpn_match == 1)))
    if extra > 0:
        rpn_match[rng.choice(negatives, extra, replace=False)] = 0

    positives = np.flatnonzero(rpn_match == 1)
    if positives.size:
        deltas = box_refinement(anchors[positives], gt_boxes[anchor_iou_argmax[positives]])
        rpn_bbox[: positives.size] = deltas / np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float32)
    return rpn_match, rpn_bbox


def generate_random_rois(
    image_shape: Any,
    count: int,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Random ROIs, as Matterport: 90% spread around the GT boxes (within a box's size of it), the rest
    anywhere in the image.

    image_shape: [H, W, ...]. gt_boxes: [N, 4] int pixels. Returns [count, (y1, x1, y2, x2)] int32 pixel boxes
    with y2 > y1 and x2 > x1.
    """
    rng = np.random.default_rng() if rng is None else rng
    gt_boxes = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    height, width = int(image_shape[0]), int(image_shape[1])
    n = gt_boxes.shape[0]
    per_box = int(0.9 * count / n) if n else 0

    def sample(lo: np.ndarray, hi: np.ndarray, k: int) -> np.ndarray:
        """k sorted pairs per range in [lo, hi) with distinct ends -> [len(lo), k, 2]."""
        span = np.maximum(hi - lo, 2).astype(np.float64)[:, None, None]
        lo = lo.astype(np.float64)[:, None, None]
        a = np.floor(rng.random((lo.shape[0], k, 1)) * span)
        # Second end differs from the first by 1..span-1 (wrapping), so the pair is never degenerate.
        b = np.mod(a + 1 + np.floor(rng.random((lo.shape[0], k, 1)) * (span - 1)), span)
        return np.sort(np.concatenate([a, b], axis=2), axis=2) + lo

    parts = []
    if per_box:
        h = gt_boxes[:, 2] - gt_boxes[:, 0]
        w = gt_boxes[:, 3] - gt_boxes[:, 1]
        ylo, yhi = np.maximum(gt_boxes[:, 0] - h, 0), np.minimum(gt_boxes[:, 2] + h, height)
        xlo, xhi = np.maximum(gt_boxes[:, 1] - w, 0), np.minimum(gt_boxes[:, 3] + w, width)
        ys, xs = sample(ylo, yhi, per_box), sample(xlo, xhi, per_box)
        parts.append(
            np.concatenate([ys[..., :1], xs[..., :1], ys[..., 1:], xs[..., 1:]], axis=2).reshape(-1, 4)
        )
    remaining = count - per_box * n
    if remaining > 0:
        ys = sample(np.array([0]), np.array([height]), remaining)
        xs = sample(np.array([0]), np.array([width]), remaining)
        parts.append(
            np.concatenate([ys[..., :1], xs[..., :1], ys[..., 1:], xs[..., 1:]], axis=2).reshape(-1, 4)
        )
    return np.concatenate(parts).astype(np.int32)


def _resize_float(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D mask to ``shape`` (Matterport's skimage resize) -> float32 in [0, 1]."""
    return resize_bilinear_exact(mask.astype(np.float32), shape).astype(np.float32)


def build_detection_targets(
    rpn_rois: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    gt_masks: np.ndarray,
    config: Any,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Numpy version of the detection-target layer (Matterport's, for debugging and visualisation).

    rpn_rois: [R, 4] int32 pixels. gt_class_ids: [N] int32. gt_boxes: [N, 4] int32 pixels.
    gt_masks: [H, W, N] bool, or mini masks [mh, mw, N] when config.USE_MINI_MASK.
    ROIs with IoU > 0.5 with a box are positives (at most TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO),
    IoU < 0.5 negatives; the total is filled to TRAIN_ROIS_PER_IMAGE (repeating negatives when short).

    Returns:
        rois: [T, 4] int32. class_ids: [T] int32 (0 for negatives).
        bboxes: [T, NUM_CLASSES, 4] float32 deltas / BBOX_STD_DEV in the slot of each positive's class.
        masks: [T, MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES] float32 in the slot of each positive's class.
    """
    rng = np.random.default_rng() if rng is None else rng
    total = config.TRAIN_ROIS_PER_IMAGE
    rpn_rois = np.asarray(rpn_rois, dtype=np.int32)
    gt_class_ids = np.asarray(gt_class_ids, dtype=np.int32)
    gt_boxes = np.asarray(gt_boxes, dtype=np.int32)
    instances = gt_class_ids > 0
    gt_class_ids, gt_boxes, gt_masks = gt_class_ids[instances], gt_boxes[instances], gt_masks[:, :, instances]

    overlaps = compute_overlaps(rpn_rois, gt_boxes)
    if gt_boxes.shape[0]:
        iou_argmax = overlaps.argmax(axis=1)
        iou_max = overlaps[np.arange(rpn_rois.shape[0]), iou_argmax]
    else:
        iou_argmax = np.zeros([rpn_rois.shape[0]], dtype=np.int64)
        iou_max = np.zeros([rpn_rois.shape[0]])
    fg_ids = np.flatnonzero(iou_max > 0.5)
    bg_ids = np.flatnonzero(iou_max < 0.5)

    fg_count = int(total * config.ROI_POSITIVE_RATIO)
    keep_fg = rng.choice(fg_ids, fg_count, replace=False) if fg_ids.size > fg_count else fg_ids
    room = total - keep_fg.size
    keep_bg = rng.choice(bg_ids, room, replace=False) if bg_ids.size > room else bg_ids
    keep = np.concatenate([keep_fg, keep_bg])
    short = total - keep.size
    if short > 0:
        pool = keep_bg if keep_bg.size else keep
        if pool.size == 0:
            raise ValueError("build_detection_targets needs at least one ROI")
        keep = np.concatenate([keep, rng.choice(pool, short, replace=True)])
    is_fg = iou_max[keep] > 0.5

    rois = rpn_rois[keep]
    assignment = iou_argmax[keep]
    class_ids = np.where(is_fg, gt_class_ids[assignment] if gt_boxes.shape[0] else 0, 0).astype(np.int32)

    bboxes = np.zeros([total, config.NUM_CLASSES, 4], dtype=np.float32)
    pos = np.flatnonzero(is_fg)
    if pos.size:
        deltas = box_refinement(rois[pos], gt_boxes[assignment[pos]])
        bboxes[pos, class_ids[pos]] = deltas / np.asarray(config.BBOX_STD_DEV, dtype=np.float32)

    mask_h, mask_w = config.MASK_SHAPE
    masks = np.zeros([total, mask_h, mask_w, config.NUM_CLASSES], dtype=np.float32)
    image_h, image_w = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    for i in pos:
        gt_id = assignment[i]
        class_mask = gt_masks[:, :, gt_id]
        if config.USE_MINI_MASK:
            y1, x1, y2, x2 = gt_boxes[gt_id]
            full = np.zeros([image_h, image_w], dtype=bool)
            full[y1:y2, x1:x2] = np.round(_resize_float(class_mask, (y2 - y1, x2 - x1))).astype(bool)
            class_mask = full
        y1, x1, y2, x2 = rois[i]
        masks[i, :, :, class_ids[i]] = _resize_float(class_mask[y1:y2, x1:x2], (mask_h, mask_w))
    return rois, class_ids, bboxes, masks
