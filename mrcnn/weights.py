"""Read and write Keras-2 HDF5 weight files in Matterport's layout, with h5py.

Layout (as ``keras.Model.save_weights`` of Keras 2 writes it, e.g. ``mask_rcnn_coco.h5``):

- root attribute ``layer_names``: every top-level layer name (bytes), in model order; a full-model save
  puts all of this under a ``model_weights`` group instead of the root.
- one group per layer with attribute ``weight_names`` (``"conv1/kernel:0"``, ...; empty for layers
  without weights) and one dataset per weight at ``<group>/<weight_name>``.
- a nested model (``rpn_model``) is one group whose weight names are its sublayers' weights,
  ``"rpn_conv_shared/kernel:0"``, ...

Within a layer, weights are in Keras order: Conv kernel, bias; BN gamma, beta, moving_mean,
moving_variance; Dense kernel, bias; Conv2DTranspose kernel (kh, kw, out, in), bias.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

import h5py
import numpy as np

if TYPE_CHECKING:  # keras (and TensorFlow) load only when weights are read into or written from a model
    import keras

logger = logging.getLogger(__name__)

# HDF5 object headers hold at most 64 KiB; Keras 2 splits longer attributes into name0, name1, ...
_HDF5_OBJECT_HEADER_LIMIT = 64512


class WeightsMismatchError(ValueError):
    """The file's weights do not fit the model. ``mismatches``: [(layer, weight, file_shape, model_shape)]."""

    def __init__(self, message: str, mismatches: list | None = None):
        super().__init__(message)
        self.mismatches = mismatches or []


class WeightsFileError(OSError):
    """The weights file cannot be read or is not in the Keras-2 HDF5 layout."""


class NonFiniteWeightsError(ValueError):
    """Weights hold NaN or infinite values: a file refused by ``load_weights_h5`` (``path`` set), or a model
    whose checkpoint ``save_weights_h5(check_finite=True)`` refused to write (``path`` the file not written).

    ``bad``: [(layer, weight, number of non-finite values, size)], every offending weight.
    """

    def __init__(self, message: str, path: str | None = None, bad: list | None = None):
        super().__init__(message)
        self.path = path
        self.bad = bad or []


def non_finite_weights(named_values) -> list[tuple[str, str, int, int]]:
    """[(layer, weight, non-finite count, size)] of the floating-point arrays among ``named_values``, an
    iterable of (layer, weight, array)."""
    bad = []
    for layer, weight, value in named_values:
        value = np.asarray(value)
        if value.dtype.kind != "f":
            continue
        finite = np.isfinite(value)
        if not finite.all():
            bad.append((layer, weight, int(value.size - np.count_nonzero(finite)), int(value.size)))
    return bad


def describe_non_finite(bad: list[tuple[str, str, int, int]], limit: int = 3) -> str:
    """'layer 'conv1' weight conv1/kernel:0 (12 of 864 values), ...' for the first ``limit`` entries."""
    parts = [
        f"layer {layer!r} weight {weight} ({n} of {size} values)" for layer, weight, n, size in bad[:limit]
    ]
    more = f" and {len(bad) - limit} more weights" if len(bad) > limit else ""
    return ", ".join(parts) + more


@dataclasses.dataclass
class LoadReport:
    """Outcome of ``load_weights_h5``: top-level layer (group) names in each category."""

    path: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # excluded by the caller
    missing_in_file: list[str] = dataclasses.field(default_factory=list)  # model layers the file lacks
    unused_in_file: list[str] = dataclasses.field(default_factory=list)  # file layers the model lacks

    @property
    def skipped_attribute_layers(self) -> list[str]:
        """The file's attribute-head layers (``mrcnn_attr_*``) the model has no place for (a model built with
        NUM_ATTRIBUTES = 0 loading a checkpoint of a model with the head): left out of the load."""
        return [name for name in self.unused_in_file if is_attribute_head_layer(name)]

    def summary(self) -> str:
        text = (
            f"Loaded weights from {self.path}: {len(self.loaded)} layers loaded, "
            f"{len(self.skipped)} excluded, "
            f"{len(self.missing_in_file)} missing in file, {len(self.unused_in_file)} unused in file"
        )
        skipped = self.skipped_attribute_layers
        if skipped:
            text += f"; the file's attribute head was skipped ({', '.join(skipped)}): the model has none"
        return text


# The attribute head's layers (Config.NUM_ATTRIBUTES > 0) are optional: a model without the head loads a file
# with it, and a model with the head loads a file without it (Matterport's COCO weights), even by position.
ATTRIBUTE_HEAD_PREFIX = "mrcnn_attr_"


def is_attribute_head_layer(name: str) -> bool:
    """Whether top-level layer ``name`` belongs to the optional attribute head."""
    return name.startswith(ATTRIBUTE_HEAD_PREFIX)


def _leaf_weights(layer) -> list[tuple[str, keras.Variable]]:
    """(``<leaf layer>/<weight>:0``, variable) of a nested model, recursively, deduplicated."""
    import keras

    out, seen = [], set()
    for sub in layer.layers:
        pairs = (
            _leaf_weights(sub)
            if isinstance(sub, keras.Model)
            else [(f"{sub.name}/{w.name}:0", w) for w in sub.weights]
        )
        for name, w in pairs:
            if id(w) not in seen:
                seen.add(id(w))
                out.append((name, w))
    return out


def weighted_layer_groups(model: keras.Model) -> list[tuple[str, list[tuple[str, keras.Variable]]]]:
    """Top-level layers that have weights, in ``model.layers`` order, as (group name, [(weight name, var)]).

    A nested ``keras.Model`` (``rpn_model``) is one group named after it, holding its sublayers' weights as
    ``<sublayer>/<weight>:0``; any other layer gives ``<layer>/<weight>:0``.
    """
    import keras

    groups = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            weights = _leaf_weights(layer)
        else:
            weights = [(f"{layer.name}/{w.name}:0", w) for w in layer.weights]
        if weights:
            groups.append((layer.name, weights))
    return groups


def copy_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy the weights of ``target``'s layers from ``source``'s layers of the same names, in memory (e.g. a
    training model's into an inference model of the same config: the layers with weights are the same).

    Layers are matched as the ``.h5`` files match them (:func:`weighted_layer_groups`: top-level layers,
    the nested RPN as one group). Returns the names of the layers copied. Raises WeightsMismatchError, with
    ``target`` untouched, when ``source`` lacks one of ``target``'s layers or a weight's shape differs.
    """
    available = dict(weighted_layer_groups(source))
    pairs = []
    for name, weights in weighted_layer_groups(target):
        if name not in available:
            raise WeightsMismatchError(
                f"layer {name!r} has weights in the target model but not in the source"
            )
        theirs = dict(available[name])
        for weight_name, variable in weights:
            other = theirs.get(weight_name)
            if other is None or tuple(other.shape) != tuple(variable.shape):
                found = "missing" if other is None else tuple(other.shape)
                raise WeightsMismatchError(
                    f"layer {name!r}: weight {weight_name} is {tuple(variable.shape)} in the target model, "
                    f"{found} in the source"
                )
            pairs.append((variable, other))
    for variable, other in pairs:
        variable.assign(np.asarray(other.numpy(), dtype=variable.dtype))
    return [name for name, _ in weighted_layer_groups(target)]


# --- HDF5 attribute helpers ---------------------------------------------------------------------------


def write_name_list(group: h5py.Group, name: str, values: list[str]) -> None:
    """Write ``values`` as a bytes-array attribute ``name`` of ``group``, split into ``name0``, ``name1``, ...
    when longer than an HDF5 object header holds (as Keras 2 does)."""
    data = np.array([v.encode("utf8") for v in values], dtype=f"S{max([len(v) for v in values] + [1])}")
    num_chunks = 1
    while data.nbytes / num_chunks > _HDF5_OBJECT_HEADER_LIMIT:
        num_chunks += 1
    if num_chunks == 1:
        group.attrs[name] = data
    else:
        for i, chunk in enumerate(np.array_split(data, num_chunks)):
            group.attrs[f"{name}{i}"] = chunk


def read_name_list(group: h5py.Group, name: str) -> list[str] | None:
    """The attribute as a list of str (also chunked ``name0``, ``name1``, ...); None when absent."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    elif f"{name}0" in group.attrs:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    values = []
    for chunk in chunks:
        for v in np.atleast_1d(np.asarray(chunk)).ravel():
            if isinstance(v, bytes | np.bytes_):
                values.append(v.decode("utf8"))
            elif isinstance(v, str):
                values.append(v)
            # Keras 2 writes an empty float array for layers without weights: nothing to add.
    return values


# --- saving --------------------------------------------------------------------------------------------


def _file_value(value: np.ndarray) -> np.ndarray:
    """Floating weights go to files as float32 whatever the model computes in (bfloat16 and float16 models
    included), so a file loads into a model of any precision."""
    if value.dtype.kind == "f" or value.dtype.name == "bfloat16":  # numpy does not count bfloat16 as "f"
        return value.astype(np.float32, copy=False)
    return value


def save_weights_h5(
    model: keras.Model,
    path: str | os.PathLike,
    metadata=None,
    check_finite: bool = False,
    optimizer_state=None,
) -> None:
    """Write ``model``'s weights to ``path`` in the Keras-2 HDF5 layout (as Matterport's files).

    Every top-level layer gets a group (empty ``weight_names`` for layers without weights); floating weights
    are written as float32 whatever the model's precision (bfloat16 variables included), so a file loads into a
    model of any precision.
    ``metadata``: a :class:`mrcnn.metadata.CheckpointMetadata` written as root attributes.
    ``optimizer_state``: a :class:`mrcnn.optimizer_state.OptimizerState` written as the group ``optimizer_state``
    (not a layer: Keras-2 readers and :func:`load_weights_h5` ignore it).
    ``check_finite``: refuse (``NonFiniteWeightsError``, nothing written) when a weight (or an optimizer slot)
    holds NaN or inf.

    The file is written to ``path + '.tmp'``, flushed to disk and renamed over ``path``: a reader (or a run
    killed at any moment) sees the old file or the whole new one, never a partial one. On any exception,
    KeyboardInterrupt included, the temporary file is removed and the exception goes on.
    """
    import keras

    path = os.fspath(path)
    tmp_path = path + ".tmp"
    groups = dict(weighted_layer_groups(model))
    layer_names = [layer.name for layer in model.layers]
    values = {
        layer_name: [
            (name, _file_value(keras.ops.convert_to_numpy(w))) for name, w in groups.get(layer_name, [])
        ]
        for layer_name in layer_names
    }
    if check_finite:
        named = [(layer, name, value) for layer, weights in values.items() for name, value in weights]
        if optimizer_state is not None:
            named += list(optimizer_state.named_values())
        bad = non_finite_weights(named)
        if bad:
            raise NonFiniteWeightsError(
                f"not writing {path}: the model's weights are not finite: {describe_non_finite(bad)}",
                path=path,
                bad=bad,
            )
    try:
        with h5py.File(tmp_path, "w") as f:
            write_name_list(f, "layer_names", layer_names)
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = str(keras.__version__).encode("utf8")
            if metadata is not None:
                from mrcnn.metadata import write_metadata

                write_metadata(f, metadata)
            for layer_name in layer_names:
                g = f.create_group(layer_name)
                weights = values[layer_name]
                write_name_list(g, "weight_names", [name for name, _ in weights])
                for name, value in weights:
                    g.create_dataset(name, data=value)
            if optimizer_state is not None:
                from mrcnn import optimizer_state as state_file

                state_file.write(f, optimizer_state)
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync_folder(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def _fsync(path: str) -> None:
    """Flush a written file's data to the disk, so that a rename after it never exposes an empty file after a
    power loss (the rename is atomic, the data behind it is not unless synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- reading -------------------------------------------------------------------------------------------


def open_weights_file(path: str) -> h5py.File:
    """Open a weights file for reading; FileNotFoundError / IsADirectoryError / WeightsFileError say why not."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"Weights path {path} is a folder; pass a .h5 file inside it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise WeightsFileError(f"Cannot read weights file {path} (not HDF5 or corrupt): {e}") from e


def _weights_root(f: h5py.File, path: str) -> h5py.Group:
    """The group holding ``layer_names``: the root, or ``model_weights`` of a full-model save."""
    if read_name_list(f, "layer_names") is not None:
        return f
    if "model_weights" in f and read_name_list(f["model_weights"], "layer_names") is not None:
        return f["model_weights"]
    raise WeightsFileError(f"Not a Keras-2 HDF5 weights file (no 'layer_names' attribute): {path}")


def _file_groups(root: h5py.Group, path: str) -> list[tuple[str, list[tuple[str, h5py.Dataset]]]]:
    """[(layer name, [(weight name, dataset)])] for every layer listed in the file, in file order."""
    out = []
    for layer_name in read_name_list(root, "layer_names"):
        try:
            g = root[layer_name]
            names = read_name_list(g, "weight_names") or []
            out.append((layer_name, [(n, g[n]) for n in names]))
        except KeyError as e:
            raise WeightsFileError(f"Corrupt weights file {path}: layer {layer_name!r}: {e}") from e
    return out


def read_layout(path: str | os.PathLike) -> list[tuple[str, str, tuple[int, ...]]]:
    """[(group, weight name, shape)] of every weight in the file, in file order (the reference TSV's rows)."""
    path = os.fspath(path)
    with open_weights_file(path) as f:
        root = _weights_root(f, path)
        return [
            (layer, name, tuple(int(d) for d in ds.shape))
            for layer, weights in _file_groups(root, path)
            for name, ds in weights
        ]


def _check_pairs(layer: str, file_weights, model_weights) -> list[tuple]:
    """Mismatches between one file group and one model group, matched by position."""
    if len(file_weights) != len(model_weights):
        return [
            (
                layer,
                f"<{len(file_weights)} weights in file: {[n for n, _ in file_weights]}>",
                None,
                f"<{len(model_weights)} weights in model: {[n for n, _ in model_weights]}>",
            )
        ]
    out = []
    for (file_name, ds), (model_name, var) in zip(file_weights, model_weights):
        file_shape = tuple(int(d) for d in ds.shape)
        model_shape = tuple(int(d) for d in var.shape)
        if file_shape != model_shape:
            out.append((layer, f"{model_name} (file: {file_name})", file_shape, model_shape))
    return out


def load_weights_h5(
    model: keras.Model,
    path: str | os.PathLike,
    by_name: bool = False,
    exclude=None,
    check_finite: bool = True,
) -> LoadReport:
    """Load a Keras-2 HDF5 weights file (Matterport layout, with or without a ``model_weights`` group).

    by_name=False: the file's layers that have weights are matched, in order, with the model's
        (``weighted_layer_groups``); their counts must agree (Keras 2 semantics). The attribute head's
        layers (``mrcnn_attr_*``) are the exception: matched by name, and reported where one side lacks them
        (``missing_in_file``, or ``unused_in_file`` and ``skipped_attribute_layers``).
    by_name=True: groups are matched by top-level layer name (the nested ``rpn_model`` included); model
        layers absent from the file and file layers absent from the model are reported, not errors.
    exclude: top-level layer names to leave untouched; as in Matterport, giving it implies by_name=True.
    Shapes are checked for every layer before any weight is assigned: on a mismatch,
    ``WeightsMismatchError`` names the layer, the weight and both shapes, and the model is unchanged.
    check_finite: refuse a file whose loaded weights hold NaN or inf (``NonFiniteWeightsError`` naming the
    file and the weights; the model is unchanged).
    Returns a ``LoadReport``; a one-line summary is logged.
    """
    path = os.fspath(path)
    exclude = set([exclude] if isinstance(exclude, str) else (exclude or []))
    if exclude:
        by_name = True
    report = LoadReport(path=path)
    model_groups = weighted_layer_groups(model)

    with open_weights_file(path) as f:
        root = _weights_root(f, path)
        file_groups = [(name, w) for name, w in _file_groups(root, path) if w]
        pairs = []  # (layer name, file weights, model weights)
        if by_name:
            file_by_name = dict(file_groups)
            model_names = {name for name, _ in model_groups}
            for name, weights in model_groups:
                if name in exclude:
                    report.skipped.append(name)
                elif name not in file_by_name:
                    report.missing_in_file.append(name)
                else:
                    pairs.append((name, file_by_name[name], weights))
            report.unused_in_file = [name for name, _ in file_groups if name not in model_names]
        else:
            # The optional attribute head is matched by name (either side may lack it); the rest by position,
            # as Keras 2 does.
            file_head = {n: w for n, w in file_groups if is_attribute_head_layer(n)}
            model_head = [(n, w) for n, w in model_groups if is_attribute_head_layer(n)]
            for name, weights in model_head:
                if name in file_head:
                    pairs.append((name, file_head[name], weights))
                else:
                    report.missing_in_file.append(name)
            report.unused_in_file = [n for n in file_head if n not in dict(model_head)]
            file_groups = [(n, w) for n, w in file_groups if not is_attribute_head_layer(n)]
            model_groups = [(n, w) for n, w in model_groups if not is_attribute_head_layer(n)]
            if len(file_groups) != len(model_groups):
                raise WeightsMismatchError(
                    f"Weights file {path} has {len(file_groups)} layers with weights but the model has "
                    f"{len(model_groups)}; load with by_name=True to match layers by name"
                )
            for (_file_name, file_weights), (model_name, model_weights) in zip(file_groups, model_groups):
                pairs.append((model_name, file_weights, model_weights))

        mismatches = [m for name, fw, mw in pairs for m in _check_pairs(name, fw, mw)]
        if mismatches:
            lines = [
                f"  layer {layer!r}, weight {weight}: file shape {fs}, model shape {ms}"
                for layer, weight, fs, ms in mismatches[:20]
            ]
            more = f"\n  ... and {len(mismatches) - 20} more" if len(mismatches) > 20 else ""
            raise WeightsMismatchError(
                f"Weights in {path} do not fit the model (nothing was loaded):\n" + "\n".join(lines) + more,
                mismatches,
            )

        values = [
            (layer, file_name, var, np.asarray(ds[()]))
            for layer, fw, mw in pairs
            for (file_name, ds), (_, var) in zip(fw, mw)
        ]
        if check_finite:
            bad = non_finite_weights((layer, name, value) for layer, name, _, value in values)
            if bad:
                raise NonFiniteWeightsError(
                    f"{path} holds non-finite weights (NaN or inf; nothing was loaded): "
                    f"{describe_non_finite(bad)}. It was written by a diverged training run: use an earlier "
                    "checkpoint.",
                    path=path,
                    bad=bad,
                )
        for _, _, var, value in values:
            var.assign(value.astype(var.dtype, copy=False))
        report.loaded = [name for name, _, _ in pairs]

    logger.info(report.summary())
    return report
