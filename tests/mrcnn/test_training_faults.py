"""Training faults: a diverging loss stops at once without a non-finite checkpoint; Ctrl-C is never lost.

CI runs each fault with the callbacks of a training run (:func:`mrcnn.training.run_callbacks`, the list
``MaskRCNN.train`` uses) on a small Keras model, in seconds; the slow tests run the same faults through
``MaskRCNN.train`` on the tiny model (a graph build and trace each, about a minute on 2 cores).
"""

import os
import signal

import h5py
import keras
import numpy as np
import pytest

from mrcnn import training
from mrcnn.data.synthetic import ShapesDataset
from mrcnn.history import read_history
from mrcnn.model import MaskRCNN
from mrcnn.testing import tiny_config
from mrcnn.training import CheckpointCallback, InterruptGuard, TrainingDivergedError, run_callbacks
from mrcnn.weights import load_weights_h5


def _checkpoints(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".h5"))


@pytest.mark.slow
def test_a_diverging_loss_stops_training_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """Epoch 1 at a sane rate, then 1e4 (the issue's recipe): training must stop at the first non-finite
    loss, name the epoch, the step and the loss, and leave only finite checkpoints, as many as the epochs
    completed before, each with its history row."""
    keras.utils.set_random_seed(0)
    model = MaskRCNN("training", tiny_config(STEPS_PER_EPOCH=3, VALIDATION_STEPS=1), str(tmp_path))
    data = ShapesDataset.build(4, 64, 64, seed=1)
    rates = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.001 if epoch == 0 else 1e4)
    with pytest.raises(TrainingDivergedError) as info:
        model.train(
            data, data, learning_rate=0.001, epochs=6, layers="all", verbose=0, custom_callbacks=[rates]
        )
    error = info.value
    assert error.epoch >= 2, "epoch 1 trains at 0.001 and must not diverge"
    good = error.epoch - 1
    message = str(error)
    if error.step is not None:  # the usual way: the loss of a step is NaN or inf
        assert f"training diverged at epoch {error.epoch}, step {error.step}: loss is " in message
        assert not np.isfinite(error.loss)
    else:  # weights turned non-finite in the epoch's last step, before any loss showed it
        assert "weights are not finite" in message
    assert f"stopped without writing a checkpoint of epoch {error.epoch}" in message or error.step is None
    last = os.path.join(model.log_dir, f"mask_rcnn_tiny_{good:04d}.h5")
    assert f"the last good checkpoint is {last}" in message
    assert error.last_checkpoint == last == model.last_checkpoint and model.epoch == good
    assert _checkpoints(model.log_dir) == [f"mask_rcnn_tiny_{e:04d}.h5" for e in range(1, good + 1)]
    for name in _checkpoints(model.log_dir):
        load_weights_h5(model.keras_model, os.path.join(model.log_dir, name))  # refuses non-finite ones
    rows = read_history(os.path.join(model.log_dir, "history.csv"))
    assert [r["epoch"] for r in rows] == list(range(good))
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.001] + [1e4] * (good - 1))
    assert all(np.isfinite(r["loss"]) for r in rows)


@pytest.mark.slow
def test_ctrl_c_lost_inside_a_checkpoint_write_still_stops_training(tmp_path, monkeypatch, python_sigint):
    """Python drops a KeyboardInterrupt raised inside a __del__ method ("Exception ignored in ..."), which
    h5py and TensorFlow run during a write: simulated here by swallowing the first one. Training must still
    stop after that checkpoint, with the checkpoint complete and recorded."""
    real_save = training.save_weights_h5
    calls = []

    def save_losing_an_interrupt(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                pass  # lost, as in a __del__
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_weights_h5", save_losing_an_interrupt)
    model = MaskRCNN("training", tiny_config(STEPS_PER_EPOCH=1), str(tmp_path))
    data = ShapesDataset.build(2, 64, 64, seed=1)
    with pytest.raises(KeyboardInterrupt):
        model.train(data, None, learning_rate=0.001, epochs=3, layers="heads", verbose=0)
    assert len(calls) == 1, "training went on after Ctrl-C"
    assert model.epoch == 1 and model.last_checkpoint == calls[0]
    assert _checkpoints(model.log_dir) == ["mask_rcnn_tiny_0001.h5"]
    assert not [f for f in os.listdir(model.log_dir) if f.endswith(".tmp")]
    with h5py.File(calls[0]) as f:
        assert int(f.attrs["epoch"]) == 1
    assert [r["epoch"] for r in read_history(os.path.join(model.log_dir, "history.csv"))] == [0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the guard put Python's back


class _SmallRun:
    """A small Keras regression trained with the callbacks of a training run, in ``folder``: checkpoints
    ``ckpt_NNNN.h5``, ``history.csv``; ``last`` follows the last complete checkpoint as ``MaskRCNN`` does."""

    def __init__(self, folder):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        self.network = keras.Model(inputs, keras.layers.Dense(1, name="dense")(inputs))
        self.network.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", run_eagerly=True)
        self.folder = str(folder)
        self.last = None

    def fit(self, epochs, extra=()):
        x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
        y = 10 * x.sum(axis=1, keepdims=True)
        interrupts = InterruptGuard()

        def saved(epoch, path):
            self.last = path

        callbacks = run_callbacks(
            self.network,
            interrupts,
            os.path.join(self.folder, "ckpt_{epoch:04d}.h5"),
            last_checkpoint=lambda: self.last,
            on_save=saved,
            history_path=os.path.join(self.folder, "history.csv"),
        )
        with interrupts:
            self.network.fit(x, y, batch_size=2, epochs=epochs, verbose=0, callbacks=[*callbacks, *extra])
            interrupts.check()


def test_run_callbacks_stop_a_diverging_loss_at_its_step_and_keep_the_last_good_checkpoint(tmp_path):
    run = _SmallRun(tmp_path)
    rates = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 if epoch == 0 else 1e12)
    with pytest.raises(TrainingDivergedError) as info:
        run.fit(4, [rates])
    error = info.value
    last = os.path.join(tmp_path, "ckpt_0001.h5")
    assert error.epoch == 2 and error.step is not None and not np.isfinite(error.loss)
    assert f"training diverged at epoch 2, step {error.step}: loss is " in str(error)
    assert "stopped without writing a checkpoint of epoch 2" in str(error)
    assert f"the last good checkpoint is {last}" in str(error) and error.last_checkpoint == last
    assert _checkpoints(tmp_path) == ["ckpt_0001.h5"]
    load_weights_h5(run.network, last)  # finite: it loads
    rows = read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == [0] and rows[0]["learning_rate"] == pytest.approx(0.01)


def test_run_callbacks_stop_after_the_checkpoint_when_a_ctrl_c_was_lost_in_its_write(
    tmp_path, monkeypatch, python_sigint
):
    """The Ctrl-C is raised inside the first checkpoint write and swallowed there (as Python does in a
    __del__): training must still stop after that checkpoint, complete and recorded."""
    real_save = training.save_weights_h5
    calls = []

    def save_losing_an_interrupt(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                pass  # lost, as in a __del__
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_weights_h5", save_losing_an_interrupt)
    run = _SmallRun(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(3)
    assert len(calls) == 1, "training went on after Ctrl-C"
    assert run.last == calls[0] and _checkpoints(tmp_path) == ["ckpt_0001.h5"]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert [r["epoch"] for r in read_history(tmp_path / "history.csv")] == [0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the guard put Python's back


def test_checkpoint_callback_refuses_non_finite_weights(tmp_path):
    inputs = keras.Input((3,))
    network = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    callback = CheckpointCallback(
        network,
        str(tmp_path / "ckpt_{epoch:04d}.h5"),
        history_path=str(tmp_path / "history.csv"),
        last_checkpoint=str(tmp_path / "ckpt_0004.h5"),
    )
    callback.on_epoch_end(4, {"loss": 1.0})
    assert os.path.exists(tmp_path / "ckpt_0005.h5")
    kernel = network.get_layer("dense").kernel
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    with pytest.raises(
        TrainingDivergedError, match=r"epoch 6.*not finite.*last good checkpoint is .*ckpt_0005"
    ):
        callback.on_epoch_end(5, {"loss": 1.0})
    assert sorted(os.listdir(tmp_path)) == ["ckpt_0005.h5", "history.csv"]
    assert [r["epoch"] for r in read_history(tmp_path / "history.csv")] == [4]  # 0-based: checkpoint 5
