"""Matterport's ``log``: print a label and, optionally, an array's shape, range and dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["log"]


def log(text: str, array: Any = None) -> None:
    """Print ``text``; with ``array`` (numpy or anything ``np.asarray`` accepts, e.g. a tensor) also its
    shape, min, max and dtype, in Matterport's layout::

        image                    shape: (128, 128, 3)         min:    0.00000  max:  255.00000  uint8
    """
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        text += f"shape: {str(array.shape):20}  "
        if array.size:
            text += f"min: {array.min():10.5f}  max: {array.max():10.5f}"
        else:
            text += f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    print(text)
