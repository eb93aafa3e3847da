"""Compatibility shims for third-party packages that lag behind numpy 2.

imgaug 0.4.0 (the version Matterport's augmentation examples use) still reads attributes that numpy 2
removed: ``np.sctypes`` at import time and ``np.complex`` in the frequency-noise parameters behind
``iaa.Clouds``, ``iaa.Fog`` and ``iaa.FrequencyNoiseAlpha``. :func:`patch_numpy_for_imgaug` puts them back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["patch_numpy_for_imgaug"]


def _sctypes() -> dict[str, list[type]]:
    # numpy 1.x's np.sctypes, built from the scalar types numpy 2 still has.
    return {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": [np.float16, np.float32, np.float64, np.longdouble],
        "complex": [np.complex64, np.complex128, np.clongdouble],
        "others": [bool, object, bytes, str, np.void],
    }


# Attribute name -> factory for the value numpy 1.x had. Only set when numpy lacks the attribute.
_RESTORED = {
    "sctypes": _sctypes,
    "complex": lambda: complex,
    "bool": lambda: np.bool_,
}


def patch_numpy_for_imgaug() -> list[str]:
    """Restore the numpy attributes imgaug 0.4.0 needs; a no-op for those numpy already has.

    Safe to call any number of times. Call it before ``import imgaug`` (``import mrcnn`` does).

    Returns:
        The names of the attributes this call added to the ``numpy`` module (empty when nothing was missing).
    """
    added = []
    for name, factory in _RESTORED.items():
        if not hasattr(np, name):
            setattr(np, name, factory())
            added.append(name)
    return added
