"""The optimizer's state in checkpoints, so that a resumed ``MaskRCNN.train`` goes on exactly where it stopped.

A checkpoint written by training holds, beside the weights, the state of the SGD optimizer that produced them
(:func:`mrcnn.training.make_optimizer`): each trainable variable's momentum slot, the iteration count and, for
float16 training, the ``LossScaleOptimizer``'s loss scale and its step counter. Without them a resumed run
would start its momentum at zero and its iteration count at 0, and so take other steps than a run that was
never stopped.

File layout: one group ``optimizer_state`` at the file's root, written in the same atomic write as the weights
(:func:`mrcnn.weights.save_weights_h5`). It is not listed in the root attribute ``layer_names``, so Keras 2's
``load_weights``, Keras 3's legacy HDF5 loader and :func:`mrcnn.weights.load_weights_h5` never read it.

==================================== =======================================================================
``optimizer_state`` attribute        value
==================================== =======================================================================
``version``                          1
``optimizer``                        the optimizer's class name ("SGD")
``iterations``                       optimizer steps taken in the ``train()`` call that wrote the file
``epoch``                            the epoch (1-based) the state is from, the checkpoint's
``train_until``                      the ``epochs`` argument of that ``train()`` call
``layers``                           its ``layers`` argument ("heads", "all", a regular expression)
``variable_names``                   the trainable variables, by their weight's path in the same file
                                     (``conv1/conv1/kernel:0``, ``rpn_model/rpn_conv_shared/kernel:0``)
``loss_scale``, ``loss_scale_steps`` a ``LossScaleOptimizer``'s dynamic scale and step counter
==================================== =======================================================================

and one dataset per variable at ``optimizer_state/momentum/<variable name>`` (float32, the variable's shape).

Each ``train()`` call starts its optimizer anew (as Matterport's did); a resumed call takes the checkpoint's
state only when it continues the same call (see :func:`resume_decision`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import h5py
import numpy as np

if TYPE_CHECKING:
    import keras

GROUP = "optimizer_state"
VERSION = 1
_SLOT_KINDS = {"SGD": ("momentum",)}  # optimizer class -> its per-variable slots (attribute name + "s")


@dataclasses.dataclass
class OptimizerState:
    """An optimizer's state. slots: {slot kind ("momentum"): {variable name: array of the variable's shape}};
    variable_names: the trainable variables in optimizer order; loss_scale / loss_scale_steps: None without a
    ``LossScaleOptimizer``; epoch, train_until, layers: see the module docstring."""

    optimizer: str
    iterations: int
    variable_names: list[str]
    slots: dict[str, dict[str, np.ndarray]]
    epoch: int | None = None
    train_until: int | None = None
    layers: str | None = None
    loss_scale: float | None = None
    loss_scale_steps: int | None = None

    def named_values(self):
        """(group, name, array) of every slot, for :func:`mrcnn.weights.non_finite_weights`."""
        for kind, values in self.slots.items():
            for name, value in values.items():
                yield f"{GROUP}/{kind}", name, value


def _numpy(variable) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable))


def _core(optimizer):
    """The optimizer that holds the slots: the one a ``LossScaleOptimizer`` wraps, or ``optimizer``."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def variable_names(network: keras.Model) -> dict[int, str]:
    """{id(variable): its dataset path in a weights file} of every weight of ``network``: ``<layer group>/<weight
    name>`` (:func:`mrcnn.weights.weighted_layer_groups`), e.g. ``conv1/conv1/kernel:0``; unlike Keras' variable
    paths these do not depend on what else the process has built."""
    from mrcnn.weights import weighted_layer_groups

    return {
        id(variable): f"{group}/{name}"
        for group, weights in weighted_layer_groups(network)
        for name, variable in weights
    }


def capture(
    optimizer: keras.optimizers.Optimizer,
    network: keras.Model,
    epoch: int | None = None,
    train_until: int | None = None,
    layers: str | None = None,
) -> OptimizerState | None:
    """The state of a built ``optimizer`` training (some of) ``network``'s weights; None for an optimizer of a
    kind this module does not know (only SGD, possibly in a ``LossScaleOptimizer``) or one not built."""
    core = _core(optimizer)
    kinds = _SLOT_KINDS.get(type(core).__name__)
    if kinds is None or not core.built:
        return None
    names_by_id = variable_names(network)
    variables = list(core._trainable_variables)
    names = [names_by_id.get(id(v), v.path) for v in variables]
    slots = {}
    for kind in kinds:
        slot_list = list(getattr(core, kind + "s", None) or [])
        if not slot_list:  # SGD without momentum has no slots
            continue
        slots[kind] = {
            name: _numpy(slot_list[core._get_variable_index(v)]) for name, v in zip(names, variables)
        }
    state = OptimizerState(
        optimizer=type(core).__name__,
        iterations=int(_numpy(core.iterations)),
        variable_names=names,
        slots=slots,
        epoch=epoch,
        train_until=train_until,
        layers=layers,
    )
    if optimizer is not core:
        state.loss_scale = float(_numpy(optimizer.dynamic_scale))
        state.loss_scale_steps = int(_numpy(optimizer.step_counter))
    return state


def write(root: h5py.Group, state: OptimizerState) -> None:
    """Write ``state`` as the group ``optimizer_state`` of ``root`` (an open file being written)."""
    from mrcnn.weights import write_name_list

    group = root.create_group(GROUP)
    group.attrs["version"] = VERSION
    group.attrs["optimizer"] = state.optimizer
    group.attrs["iterations"] = np.int64(state.iterations)
    for name in ("epoch", "train_until", "loss_scale_steps"):
        if getattr(state, name) is not None:
            group.attrs[name] = np.int64(getattr(state, name))
    if state.loss_scale is not None:
        group.attrs["loss_scale"] = np.float64(state.loss_scale)
    if state.layers is not None:
        group.attrs["layers"] = state.layers
    write_name_list(group, "variable_names", state.variable_names)
    for kind, values in state.slots.items():
        slots = group.create_group(kind)
        for name in state.variable_names:
            value = values[name]
            if value.dtype.kind == "f" or value.dtype.name == "bfloat16":
                value = value.astype(np.float32, copy=False)
            slots.create_dataset(name, data=value)


def _plain(value):
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read(path: str | os.PathLike) -> OptimizerState | None:
    """The optimizer state stored in the checkpoint at ``path``; None when it holds none (Matterport's files,
    weights saved outside training, checkpoints written before this module existed).

    Raises the errors of :func:`mrcnn.weights.open_weights_file`, and WeightsFileError for a damaged group.
    """
    from mrcnn.weights import WeightsFileError, open_weights_file, read_name_list

    path = os.fspath(path)
    with open_weights_file(path) as f:
        if GROUP not in f:
            return None
        group = f[GROUP]
        attrs = {k: _plain(v) for k, v in group.attrs.items() if not k.startswith("variable_names")}
        try:
            names = read_name_list(group, "variable_names") or []
            slots = {
                kind: {name: np.asarray(group[kind][name][()]) for name in names}
                for kind in group
                if isinstance(group[kind], h5py.Group)
            }
            return OptimizerState(
                optimizer=str(attrs["optimizer"]),
                iterations=int(attrs["iterations"]),
                variable_names=names,
                slots=slots,
                epoch=attrs.get("epoch"),
                train_until=attrs.get("train_until"),
                layers=attrs.get("layers"),
                loss_scale=attrs.get("loss_scale"),
                loss_scale_steps=attrs.get("loss_scale_steps"),
            )
        except (KeyError, OSError) as e:
            raise WeightsFileError(f"Corrupt optimizer state in {path}: {e}") from e


def call_ended(state: OptimizerState | None) -> bool:
    """Whether ``state`` is from the last epoch of the ``train()`` call that wrote it (a finished call)."""
    return bool(
        state is not None
        and state.epoch is not None
        and state.train_until is not None
        and state.epoch >= state.train_until
    )


def resume_decision(state: OptimizerState | None, epoch: int) -> str | None:
    """Why a ``train()`` call starting after ``epoch`` (the checkpoint's) must not take ``state``, or None
    when it continues the call that wrote ``state`` and should.

    A call that trained to its last epoch (``epoch == train_until``) is finished: the next ``train()`` call is
    a new one (the next stage of a schedule) and starts its optimizer anew, as it would in a run never stopped.
    """
    if state is None:
        return "the checkpoint holds no optimizer state (written outside training or by an older version)"
    if state.epoch is not None and state.epoch != epoch:
        return f"its optimizer state is of epoch {state.epoch}, the model is at epoch {epoch}"
    if call_ended(state):
        return (
            f"the train() call that wrote it ended there (epoch {state.epoch}); a new call starts its "
            "optimizer anew"
        )
    return None


def restore(optimizer: keras.optimizers.Optimizer, network: keras.Model, state: OptimizerState) -> str | None:
    """Assign ``state`` to the built ``optimizer`` (slots, iteration count, loss scale) when it is the state
    of an optimizer of the same kind over the same trainable variables of ``network`` (names and shapes);
    otherwise change nothing and return why not (one line)."""
    core = _core(optimizer)
    if type(core).__name__ != state.optimizer:
        return f"the checkpoint's optimizer is {state.optimizer}, this one {type(core).__name__}"
    if (optimizer is not core) != (state.loss_scale is not None):
        return "one of the two optimizers scales the loss (float16) and the other not"
    current = capture(optimizer, network)
    if current is None:
        return f"{type(core).__name__} optimizers keep no state this package restores"
    layers = f" (layers {state.layers!r})" if state.layers else ""
    if current.variable_names != state.variable_names:
        return (
            f"the checkpoint's optimizer trained {len(state.variable_names)} variables{layers}, this one "
            f"trains {len(current.variable_names)} others"
        )
    if set(current.slots) != set(state.slots):
        return (
            f"the checkpoint holds the slots {sorted(state.slots)}, the optimizer has {sorted(current.slots)}"
        )
    for kind, values in current.slots.items():
        for name, value in values.items():
            if tuple(state.slots[kind][name].shape) != tuple(value.shape):
                return (
                    f"{kind} of {name} is {tuple(state.slots[kind][name].shape)} in the checkpoint, "
                    f"{tuple(value.shape)} in the model"
                )
    variables = list(core._trainable_variables)
    for kind in current.slots:
        slot_list = getattr(core, kind + "s")
        for name, variable in zip(state.variable_names, variables):
            slot = slot_list[core._get_variable_index(variable)]
            slot.assign(state.slots[kind][name].astype(slot.dtype, copy=False))
    core.iterations.assign(state.iterations)
    if state.loss_scale is not None:
        optimizer.dynamic_scale.assign(state.loss_scale)
        optimizer.step_counter.assign(state.loss_scale_steps or 0)
    return None
