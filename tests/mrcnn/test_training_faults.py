"""Training faults: a diverging loss stops at once without a non-finite checkpoint; Ctrl-C is never lost.

Each training test trains the tiny model for a few one-to-three-step epochs (tens of seconds on 2 cores).
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
from mrcnn.training import CheckpointCallback, TrainingDivergedError
from mrcnn.weights import load_weights_h5


def _checkpoints(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".h5"))


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


def test_ctrl_c_lost_inside_a_checkpoint_write_still_stops_training(tmp_path, monkeypatch):
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
