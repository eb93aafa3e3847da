"""Run-length encoding of binary masks in the iMaterialist / Kaggle format.

The format: ``"start length start length ..."`` where pixels are numbered down the columns first
(column-major, i.e. pixel ``(row, col)`` of an ``H x W`` mask has number ``col * H + row + 1``) and numbering
starts at 1.
So the mask ``[[0, 1], [1, 1]]`` (H=2, W=2) is pixels 2, 3, 4 and encodes as ``"2 3"``.

This is *not* pycocotools' RLE (which alternates zero/one run lengths without starts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RLEError(ValueError):
    """A run-length string that is malformed or runs outside its ``height x width`` mask."""


def parse_rle(encoded: str | Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits an encoding into starts (1-based) and lengths, both [R] int64.

    Raises RLEError for an odd number of values, non-integers, starts below 1 or negative lengths.
    """
    if isinstance(encoded, str):
        text = encoded.strip()
        if not text:
            return np.zeros([0], np.int64), np.zeros([0], np.int64)
        try:
            values = np.array(text.split(), dtype=np.int64)
        except ValueError as e:
            raise RLEError(f"run-length string has a non-integer value: {e}") from None
    else:
        values = np.asarray(encoded, dtype=np.int64).reshape(-1)
    if values.size % 2:
        raise RLEError(
            f"run-length string has an odd number of values ({values.size}): starts and lengths pair up"
        )
    starts, lengths = values[0::2], values[1::2]
    if starts.size and starts.min() < 1:
        raise RLEError(f"run start {int(starts.min())} < 1 (starts are 1-based)")
    if lengths.size and lengths.min() < 0:
        raise RLEError(f"negative run length {int(lengths.min())}")
    return starts, lengths


def rle_decode(encoded: str | Sequence[int] | np.ndarray, height: int, width: int) -> np.ndarray:
    """Decodes a run-length string into a mask.

    encoded: ``"start length ..."`` (1-based starts, column-major), or the same numbers as a sequence.
    height, width: mask size in pixels.
    Returns [height, width] bool.
    Raises RLEError when a run ends past ``height * width`` (the message gives the run and the limit).
    """
    starts, lengths = parse_rle(encoded)
    size = int(height) * int(width)
    flat = np.zeros(size, dtype=bool)
    if starts.size:
        ends = starts - 1 + lengths
        worst = int(np.argmax(ends))
        if ends[worst] > size:
            raise RLEError(
                f"run {worst} (start {int(starts[worst])}, length {int(lengths[worst])}) ends at pixel "
                f"{int(ends[worst])}, past height*width = {height}*{width} = {size}"
            )
        # A loop over runs keeps memory at one bool per pixel (a cumulative-sum decode needs 8 bytes per
        # pixel, half a gigabyte for the largest iMaterialist images).
        for s, e in zip((starts - 1).tolist(), ends.tolist()):
            flat[s:e] = True
    # Column-major: the flat vector walks down each column in turn.
    return flat.reshape(int(width), int(height)).T


def rle_encode(mask: np.ndarray) -> str:
    """Encodes a [H, W] mask (bool or 0/1) as ``"start length ..."`` (1-based starts, column-major).

    An empty mask gives ``""``. ``rle_decode(rle_encode(m), *m.shape)`` equals ``m.astype(bool)``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    flat = np.concatenate([[False], mask.astype(bool).ravel(order="F"), [False]])
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = changes[0::2], changes[1::2]
    runs = np.empty(2 * starts.size, dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def rle_area(encoded: str | Sequence[int] | np.ndarray) -> int:
    """Number of pixels covered (sum of run lengths; runs are assumed not to overlap)."""
    _, lengths = parse_rle(encoded)
    return int(lengths.sum())


def rle_last_pixel(encoded: str) -> int:
    """The end (1-based, inclusive) of the last run of a string, converting only the last two numbers.

    For the sorted encodings that Kaggle files contain this is the largest pixel number, which lets a loader
    check 330k rows for overruns cheaply; ``rle_decode`` still checks every run. Returns 0 when empty.
    Raises RLEError for an odd number of values or a non-integer at the end.
    """
    tokens = encoded.split()
    if not tokens:
        return 0
    if len(tokens) % 2:
        raise RLEError(f"run-length string has an odd number of values ({len(tokens)})")
    tail = tokens[-2:]
    try:
        start, length = int(tail[0]), int(tail[1])
    except ValueError as e:
        raise RLEError(f"run-length string has a non-integer value: {e}") from None
    return start - 1 + length
