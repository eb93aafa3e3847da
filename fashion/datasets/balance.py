"""Train/validation split and class balancing of fashion datasets (by image, without decoding masks).

- :func:`split` holds out a random fraction of images for validation. Split *before* balancing so that
  repeated images never leak into validation.
- :func:`cap_per_class`: thesis 000 "limit 10000 samples for each class". Images are visited in random order;
  an image is kept when at least one of its classes has fewer than ``cap`` kept images so far, and then counts
  for every class it contains. So every class ends with ``min(cap, available)`` or more images, and a common
  class can exceed ``cap`` only through images recruited by a rarer class it co-occurs with.
- :func:`oversample`: deck 002 "resampled training data to include more images" of chosen weak classes.
  Either repeat every image containing the chosen classes ``factor`` times in all, or repeat images of each
  class with fewer than ``min_images`` images until it reaches about ``min_images``.

All functions take and return datasets made by the fashion loaders (:class:`FashionDataset`); the inputs are
left unchanged and the outputs are prepared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from fashion.datasets.base import FashionDataset


def split(
    dataset: FashionDataset, val_fraction: float, seed: int = 0
) -> tuple[FashionDataset, FashionDataset]:
    """(train, val): a random ``val_fraction`` of the images (at least one when > 0) held out."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(dataset.image_info)
    order = np.random.default_rng(seed).permutation(n)
    n_val = 0 if val_fraction == 0 else min(n - 1, max(1, round(n * val_fraction)))
    if n_val < 1 and val_fraction > 0:
        raise ValueError(f"cannot hold out validation images from a dataset of {n} image(s)")
    val_ids = np.sort(order[:n_val])
    train_ids = np.sort(order[n_val:])
    return dataset.subset(train_ids), dataset.subset(val_ids)


def _class_sets(dataset: FashionDataset) -> list[set[int]]:
    return [set(dataset.image_class_ids(i).tolist()) for i in range(len(dataset.image_info))]


def cap_per_class(dataset: FashionDataset, cap: int, seed: int = 0) -> FashionDataset:
    """Keeps images until each class has ``cap`` images (see module docstring). Returns a new dataset."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    sets = _class_sets(dataset)
    counts: dict[int, int] = {}
    kept = []
    for i in np.random.default_rng(seed).permutation(len(sets)).tolist():
        if any(counts.get(c, 0) < cap for c in sets[i]):
            kept.append(i)
            for c in sets[i]:
                counts[c] = counts.get(c, 0) + 1
    result = dataset.subset(sorted(kept))
    result.stats["images_dropped_by_cap"] = len(sets) - len(kept)
    return result


def _class_ids(dataset: FashionDataset, classes: Iterable[int | str]) -> set[int]:
    """Internal ids of classes given as internal ids or names (full or Matterport's short form)."""
    ids = set()
    for c in classes:
        if isinstance(c, (int, np.integer)):
            ids.add(int(c))
            continue
        matches = [
            i for i, info in enumerate(dataset.class_info) if c in (info["name"], info["name"].split(",")[0])
        ]
        if not matches:
            raise ValueError(
                f"unknown class {c!r}; classes: {[info['name'] for info in dataset.class_info[1:]]}"
            )
        ids.update(matches)
    return ids


def oversample(
    dataset: FashionDataset,
    classes: Iterable[int | str] | None = None,
    factor: float | None = None,
    min_images: int | None = None,
    seed: int = 0,
) -> FashionDataset:
    """Repeats images of rare or chosen classes. Returns a new dataset (repeats get ids ``"<id>#<k>"``).

    classes + factor: every image containing one of ``classes`` (internal ids or names) appears ``factor``
        times in all (a fractional factor repeats a random share of them once more).
    min_images: every class with fewer than ``min_images`` images gets its images repeated (round robin)
        until it has ``min_images``; repeats also count for the other classes in those images.
    """
    rng = np.random.default_rng(seed)
    sets = _class_sets(dataset)
    ids = list(range(len(sets)))
    if classes is not None:
        if factor is None or factor < 1:
            raise ValueError("oversample(classes=...) needs factor >= 1")
        chosen = _class_ids(dataset, classes)
        hits = [i for i, s in enumerate(sets) if s & chosen]
        whole, frac = int(math.floor(factor)), factor - math.floor(factor)
        ids += hits * (whole - 1)
        extra = rng.permutation(hits)[: round(frac * len(hits))].tolist()
        ids += extra
    if min_images is not None:
        counts = {c: 0 for c in dataset.class_image_counts()}
        for i in ids:
            for c in sets[i]:
                counts[c] += 1
        # Rarest first, so a repeat made for a rare class also counts towards the next ones.
        for c in sorted(counts, key=lambda c: counts[c]):
            have = [i for i, s in enumerate(sets) if c in s]
            if not have or counts[c] >= min_images:
                continue
            order = rng.permutation(have).tolist()
            k = 0
            while counts[c] < min_images:
                i = order[k % len(order)]
                ids.append(i)
                for other in sets[i]:
                    counts[other] += 1
                k += 1
    result = dataset.subset(sorted(ids))
    result.stats["images_added_by_oversampling"] = len(ids) - len(sets)
    return result
