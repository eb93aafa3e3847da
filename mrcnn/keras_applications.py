"""ImageNet ResNet weights of keras-applications, renamed into Matterport's layer names.

keras-applications' ResNet50/101 files (``keras.applications.ResNet101``'s ``*_notop.h5``) hold the same
bottleneck ResNet as Matterport's backbone (a stride-2 first 1x1 convolution, convolutions with bias), named
``conv{stage}_block{n}_{k}_conv`` / ``_bn``: ``k`` 1, 2, 3 is the main branch's a, b, c, 0 the projection
shortcut. Matterport's names are ``res{stage}{letter}_branch2a|2b|2c|1`` and ``bn{stage}{letter}_branch...``,
the n-th block's letter being the n-th letter of the alphabet; the stem is ``conv1`` / ``bn_conv1``.
:func:`convert_to_matterport` writes such a file in Matterport's names, so it loads by name like the COCO file.

Uses h5py only (no TensorFlow).
"""

from __future__ import annotations

import os
import re

import h5py

from mrcnn.weights import WeightsFileError, _file_groups, _weights_root, open_weights_file, write_name_list

__all__ = ["convert_to_matterport", "matterport_layer_name"]

_BLOCK = re.compile(r"conv([2-5])_block(\d+)_([0-3])_(conv|bn)")
_BRANCH = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}


def matterport_layer_name(name: str) -> str | None:
    """Matterport's name of keras-applications ResNet layer ``name`` (``conv4_block7_2_bn`` ->
    ``bn4g_branch2b``); None for a layer Matterport's backbone does not have."""
    if name == "conv1_conv":
        return "conv1"
    if name == "conv1_bn":
        return "bn_conv1"
    match = _BLOCK.fullmatch(name)
    if match is None:
        return None
    stage, block, branch, kind = match.groups()
    letter = chr(ord("a") + int(block) - 1)
    return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{_BRANCH[branch]}"


def convert_to_matterport(source: str | os.PathLike, target: str | os.PathLike) -> str:
    """Write the keras-applications ResNet weights file ``source`` to ``target`` in Matterport's layer names
    (Keras-2 HDF5 layout; weights in the same order, values unchanged). Layers without a Matterport name are
    left out. Written to ``target + '.tmp'`` and renamed, so an error never leaves a partial file.
    Returns ``target``. Raises WeightsFileError when ``source`` holds no ResNet layer.
    """
    source, target = os.fspath(source), os.fspath(target)
    tmp = target + ".tmp"
    with open_weights_file(source) as f:
        groups = [
            (matterport_layer_name(name), weights)
            for name, weights in _file_groups(_weights_root(f, source), source)
            if weights and matterport_layer_name(name) is not None
        ]
        if not groups:
            raise WeightsFileError(f"{source} holds no keras-applications ResNet layer (conv1_conv, ...)")
        try:
            with h5py.File(tmp, "w") as out:
                write_name_list(out, "layer_names", [name for name, _ in groups])
                out.attrs["backend"] = b"tensorflow"
                out.attrs["converted_from"] = os.path.basename(source).encode("utf8")
                for name, weights in groups:
                    group = out.create_group(name)
                    renamed = [(f"{name}/{weight.split('/')[-1]}", data) for weight, data in weights]
                    write_name_list(group, "weight_names", [weight for weight, _ in renamed])
                    for weight, data in renamed:
                        group.create_dataset(weight, data=data[()])
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    return target
