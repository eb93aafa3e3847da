"""The optimizer state in checkpoints (mrcnn.optimizer_state): written with the weights, ignored by weight readers,
restored only into an optimizer of the same kind over the same variables."""

import h5py
import keras
import numpy as np
import pytest

from mrcnn import optimizer_state
from mrcnn.testing import tiny_config
from mrcnn.training import make_optimizer
from mrcnn.weights import NonFiniteWeightsError, load_weights_h5, read_layout, save_weights_h5


def _model(seed=0):
    """A flat model with Matterport-like names and a nested model (named like the RPN's weights)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="input_x")
    x = keras.layers.Dense(5, name="fpn_dense")(inputs)
    nested_in = keras.Input((5,))
    nested = keras.Model(nested_in, keras.layers.Dense(3, name="rpn_inner")(nested_in), name="rpn_model")
    x = nested(x)
    outputs = keras.layers.Dense(2, name="mrcnn_out")(x)
    return keras.Model(inputs, outputs)


def _trained(model, optimizer, steps=3):
    """``steps`` SGD steps on a fixed regression; returns ``optimizer`` (built, with non-zero slots)."""
    model.compile(optimizer=optimizer, loss="mse")
    x = np.random.default_rng(1).normal(size=(8, 6)).astype("float32")
    y = np.random.default_rng(2).normal(size=(8, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=steps, verbose=0)
    return optimizer


@pytest.fixture(scope="module")
def trained():
    """(model, its SGD optimizer with momentum after 3 steps): shared, never changed by the tests."""
    model = _model()
    return model, _trained(model, keras.optimizers.SGD(0.01, momentum=0.9))


def _momenta(optimizer):
    core = getattr(optimizer, "inner_optimizer", optimizer)
    return [keras.ops.convert_to_numpy(m) for m in core.momentums]


def test_state_round_trips_through_a_checkpoint_and_restores_exactly(tmp_path, trained):
    model, optimizer = trained
    state = optimizer_state.capture(optimizer, model, epoch=3, train_until=5, layers="heads")
    assert state.iterations == 3
    # Keyed by the weight's path in the weights file (group / weight name), nested models included.
    assert state.variable_names == [
        f"{group}/{weight}"
        for group, weight in [
            ("fpn_dense", "fpn_dense"),
            ("rpn_model", "rpn_inner"),
            ("mrcnn_out", "mrcnn_out"),
        ]
        for weight in (f"{weight}/kernel:0", f"{weight}/bias:0")
    ]
    assert all(np.any(m != 0) for m in state.slots["momentum"].values())
    path = tmp_path / "ckpt.h5"
    save_weights_h5(model, path, optimizer_state=state, check_finite=True)

    read = optimizer_state.read(path)
    assert (read.optimizer, read.iterations, read.epoch, read.train_until, read.layers) == (
        "SGD",
        3,
        3,
        5,
        "heads",
    )
    assert read.variable_names == state.variable_names
    for name, value in state.slots["momentum"].items():
        np.testing.assert_array_equal(read.slots["momentum"][name], value, err_msg=name)

    fresh_model = _model(seed=1)
    load_weights_h5(fresh_model, path)
    fresh = keras.optimizers.SGD(0.01, momentum=0.9)
    fresh.build(fresh_model.trainable_variables)
    assert optimizer_state.restore(fresh, fresh_model, read) is None
    assert int(fresh.iterations.numpy()) == 3
    for restored, original in zip(_momenta(fresh), _momenta(optimizer)):
        np.testing.assert_array_equal(restored, original)


def test_weight_readers_ignore_the_state_group(tmp_path, trained):
    """Keras 3's legacy HDF5 loader (Keras 2's layout), by position and by name, and ours read the weights only."""
    model, optimizer = trained
    path = str(tmp_path / "ckpt.h5")
    save_weights_h5(model, path, optimizer_state=optimizer_state.capture(optimizer, model))
    with h5py.File(path, "r") as f:
        assert optimizer_state.GROUP in f and optimizer_state.GROUP not in [
            n.decode() for n in f.attrs["layer_names"]
        ]
    assert not [row for row in read_layout(path) if row[0] == optimizer_state.GROUP]
    expected = [keras.ops.convert_to_numpy(w) for w in model.weights]
    for by_name in (False, True):
        other = _model(seed=2)
        other.load_weights(path, by_name=by_name) if by_name else other.load_weights(path)
        for got, want in zip(other.weights, expected):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)
        ours = _model(seed=3)
        report = load_weights_h5(ours, path, by_name=by_name)
        assert report.unused_in_file == []
        for got, want in zip(ours.weights, expected):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)


def test_loss_scale_optimizer_state_round_trips(tmp_path):
    model = _model()
    optimizer = _trained(model, make_optimizer(tiny_config(MIXED_PRECISION="float16"), 0.01))
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    optimizer.dynamic_scale.assign(1024.0)
    state = optimizer_state.capture(optimizer, model, epoch=1, train_until=2)
    assert state.loss_scale == 1024.0 and state.loss_scale_steps == 3
    path = tmp_path / "ckpt.h5"
    save_weights_h5(model, path, optimizer_state=state)
    fresh = make_optimizer(tiny_config(MIXED_PRECISION="float16"), 0.01)
    fresh.build(model.trainable_variables)
    assert optimizer_state.restore(fresh, model, optimizer_state.read(path)) is None
    assert float(fresh.dynamic_scale.numpy()) == 1024.0 and int(fresh.step_counter.numpy()) == 3
    assert int(fresh.iterations.numpy()) == 3
    for restored, original in zip(_momenta(fresh), _momenta(optimizer)):
        np.testing.assert_array_equal(restored, original)
    plain = keras.optimizers.SGD(0.01, momentum=0.9)
    plain.build(model.trainable_variables)
    assert "scales the loss" in optimizer_state.restore(plain, model, optimizer_state.read(path))


def test_state_of_other_trainable_variables_is_refused_and_nothing_changes(tmp_path, trained):
    state = optimizer_state.capture(*reversed(trained), epoch=1, train_until=2, layers="all")
    model = _model()
    model.get_layer("fpn_dense").trainable = False  # another layer group
    fresh = keras.optimizers.SGD(0.01, momentum=0.9)
    fresh.build(model.trainable_variables)
    why = optimizer_state.restore(fresh, model, state)
    assert "6 variables (layers 'all')" in why and "trains 4 others" in why
    assert int(fresh.iterations.numpy()) == 0
    assert all(not np.any(m) for m in _momenta(fresh))


@pytest.mark.parametrize(
    ("epoch", "train_until", "model_epoch", "expected"),
    [
        (3, 5, 3, None),  # the call that wrote it was cut short: continue it
        (5, 5, 5, "ended there"),  # that call was finished: the next one starts anew, as without a resume
        (3, 5, 4, "epoch 3"),  # not the state of the model's epoch
    ],
)
def test_resume_decision(epoch, train_until, model_epoch, expected):
    state = optimizer_state.OptimizerState("SGD", 1, ["a"], {}, epoch=epoch, train_until=train_until)
    why = optimizer_state.resume_decision(state, model_epoch)
    assert why is None if expected is None else expected in why
    assert "no optimizer state" in optimizer_state.resume_decision(None, 3)


def test_non_finite_momentum_is_never_written(tmp_path, trained):
    model, optimizer = trained
    state = optimizer_state.capture(optimizer, model)
    state.slots["momentum"][state.variable_names[0]][0] = np.nan
    with pytest.raises(NonFiniteWeightsError, match="optimizer_state/momentum"):
        save_weights_h5(model, tmp_path / "ckpt.h5", optimizer_state=state, check_finite=True)
    assert not list(tmp_path.iterdir())


def test_a_resume_that_cannot_continue_the_optimizer_says_so_in_one_line(tmp_path, trained, caplog):
    """MaskRCNN.train's resume step, on a checkpoint without optimizer state (an older one): a warning even when
    quiet; on one whose state fits: restored, logged."""
    from mrcnn.model import MaskRCNN

    model, optimizer = trained
    bare, full = str(tmp_path / "bare.h5"), str(tmp_path / "full.h5")
    save_weights_h5(model, bare)
    save_weights_h5(
        model, full, optimizer_state=optimizer_state.capture(optimizer, model, epoch=1, train_until=2)
    )
    resuming = object.__new__(MaskRCNN)  # only what the resume step reads
    resuming.keras_model, resuming.epoch = model, 1
    for path, level, text in ((bare, "WARNING", "holds no optimizer state"), (full, "INFO", "restored from")):
        fresh = keras.optimizers.SGD(0.01, momentum=0.9)
        fresh.build(model.trainable_variables)
        resuming._optimizer_state_from = path
        caplog.clear()
        with caplog.at_level("INFO", logger="mrcnn.model"):
            resuming._resume_optimizer(fresh, verbose=0)
        [record] = [r for r in caplog.records if r.name == "mrcnn.model"]
        assert record.levelname == level and text in record.getMessage() and path in record.getMessage()
        assert "\n" not in record.getMessage()
        assert resuming._optimizer_state_from is None  # taken once: a later train() call starts anew
