"""Per-instance attribute scores (a model with ``Config.NUM_ATTRIBUTES > 0``) as names.

``MaskRCNN.detect`` gives each detection's attribute probabilities as ``attributes [N, A]``; the model's
``attribute_names`` (from its training data or checkpoint) name the columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["attributes_above"]


def attributes_above(
    scores: np.ndarray, names: Sequence[str], threshold: float = 0.5
) -> list[list[tuple[str, float]]]:
    """For each row of ``scores`` [N, A] (probabilities in [0, 1]), the (name, score) pairs of the attributes
    whose score is at least ``threshold``, highest score first (ties in attribute order).

    names: [A] attribute names by column. Raises ValueError when their count differs from A.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"attribute scores must be [N, A], got shape {scores.shape}")
    if len(names) != scores.shape[1]:
        raise ValueError(f"{len(names)} attribute names for {scores.shape[1]} attribute scores per detection")
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        out.append([(str(names[a]), float(row[a])) for a in order if row[a] >= threshold])
    return out
