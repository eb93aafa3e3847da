"""Multi-worker training: two worker processes on 127.0.0.1 under ``MultiWorkerMirroredStrategy`` (TF_CONFIG).

1. (slow) Two workers with one image each take the same step as one worker with both images (the principle and the
   settings of ``test_distribute.py``: frozen BatchNorm, ROI sampling that keeps every positive, the loss
   terms averaged over per-image counts that are equal for every image; the three terms averaged over a
   per-replica number of positives are weighted 0). The bound on the weights is the one of that test.
2. (slow) With :class:`mrcnn.training.MultiWorkerBackupAndRestore`, one worker killed (SIGKILL) in the middle
   of epoch 2 and both restarted: the restart trains epochs 2 and 3 only, in the same run folder, with one
   checkpoint and one history row per epoch, and removes the backup at the end.

Each worker is a fresh Python process (the strategy must be made before any other TensorFlow work): minutes on
2 cores, so both are slow tests. CI runs 3., the callback's backup and restore in one process on a small Keras
model: a run stopped in the middle of an epoch and started again ends with the weights of a run never stopped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, os, signal, sys
    import tensorflow as tf
    multi = "TF_CONFIG" in os.environ
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi else None  # first, before other TF work
    import keras
    import numpy as np
    from mrcnn import model as modellib
    from mrcnn.config import Config
    from mrcnn.data.synthetic import ShapesDataset
    from mrcnn.testing import TINY_SETTINGS
    from mrcnn.training import MultiWorkerBackupAndRestore

    task = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    epochs = int(os.environ["EPOCHS"])
    Tiny = type("Tiny", (Config,), dict(
        TINY_SETTINGS,
        NAME="mw",
        POST_NMS_ROIS_TRAINING=32,
        TRAIN_ROIS_PER_IMAGE=32,
        ROI_POSITIVE_RATIO=1.0,
        STEPS_PER_EPOCH=int(os.environ["STEPS"]),
        TRAIN_BN=False,
        GRADIENT_CLIP_NORM=0.5,
        IMAGES_PER_GPU=1 if multi else 2,
        LOSS_WEIGHTS=dict(rpn_class_loss=1.0, mrcnn_class_loss=1.0, rpn_bbox_loss=0.0, mrcnn_bbox_loss=0.0,
                          mrcnn_mask_loss=0.0),
    ))
    model = modellib.MaskRCNN("training", Tiny(), os.environ["LOGS"], strategy=strategy)
    model.load_weights(model.find_last() if os.environ.get("RESUME") else os.environ["INIT"], by_name=True)
    print("START", model.epoch, flush=True)
    np.savez(os.path.join(os.environ["OUT"], f"start-{task}.npz"), *model.keras_model.get_weights())

    class Report(keras.callbacks.Callback):
        epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            print("EPOCH", epoch, flush=True)

        def on_train_batch_begin(self, batch, logs=None):
            if os.environ.get("KILL_AT") == f"{task}:{self.epoch}:{batch}":
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = [Report()]
    if os.environ.get("BACKUP"):
        callbacks.insert(0, MultiWorkerBackupAndRestore(os.environ["BACKUP"]))
    history = model.train(ShapesDataset.build(2, 64, 64, seed=4), None, learning_rate=0.01, epochs=epochs,
                          layers="all", workers=1, verbose=0, custom_callbacks=callbacks)
    np.savez(os.path.join(os.environ["OUT"], f"weights-{task}.npz"), *model.keras_model.get_weights())
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    print("RESULT" + json.dumps(dict(logs=logs, replicas=model.strategy.num_replicas_in_sync, epoch=model.epoch)))
    """
)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(env_extra, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT), **env_extra)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _workers(env_extra, count=2):
    ports = _free_ports(count)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [
        _start(env_extra, {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(count)
    ]


def _finish(procs, timeout=900):
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out[-3000:] + err[-5000:]
        outputs.append(out)
    return outputs


def _result(out):
    (line,) = [line for line in out.splitlines() if line.startswith("RESULT")]
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def init_weights(tmp_path_factory):
    """Random initial weights every run starts from, in a file outside any run folder (epoch 0)."""
    folder = tmp_path_factory.mktemp("init")
    script = textwrap.dedent(
        """
        import sys, keras
        from mrcnn import model as modellib
        from mrcnn.testing import tiny_config
        keras.utils.set_random_seed(0)
        m = modellib.MaskRCNN("training", tiny_config(NAME="mw"), sys.argv[1])
        m.save_weights(sys.argv[2])
        """
    )
    path = folder / "init.h5"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(path)


@pytest.mark.slow
def test_two_workers_take_the_step_of_one_worker_with_both_images(init_weights, tmp_path):
    common = {"INIT": init_weights, "EPOCHS": "1", "STEPS": "1"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _start({**common, "LOGS": str(tmp_path / "one_logs"), "OUT": str(tmp_path / "one")})
    (out_one,) = _finish([one])
    outs = _finish(_workers({**common, "LOGS": str(tmp_path / "two_logs"), "OUT": str(tmp_path / "two")}))
    single, chief, other = _result(out_one), _result(outs[0]), _result(outs[1])
    assert single["replicas"] == 1 and chief["replicas"] == other["replicas"] == 2
    for key in ("loss", "rpn_class_loss", "mrcnn_class_loss"):
        assert np.isfinite(single["logs"][key]) and single["logs"][key] > 0, key
        np.testing.assert_allclose(chief["logs"][key], single["logs"][key], rtol=1e-5, err_msg=key)

    def weights(name):
        with np.load(tmp_path / name) as f:
            return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]

    start, w1, w2, w2b = (weights(n) for n in ("one/start-0.npz", "one/weights-0.npz", "two/weights-0.npz",
                                                "two/weights-1.npz"))  # fmt: skip
    for a, b in zip(w2, w2b):
        np.testing.assert_array_equal(a, b)  # the two workers hold the same (mirrored) weights
    for a, b in zip(start, weights("two/start-0.npz")):
        np.testing.assert_array_equal(a, b)  # and started where the single worker did
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, start))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2))
    assert moved > 1e-4  # the step did something, and nearly the same thing: the bound of test_distribute.py
    assert diff < 5e-2 * moved, (diff, moved)
    # Only the chief (worker 0) wrote a run folder, with its checkpoint and history.
    (run,) = os.listdir(tmp_path / "two_logs")
    assert {"mask_rcnn_mw_0001.h5", "history.csv"} <= set(os.listdir(tmp_path / "two_logs" / run))


@pytest.mark.slow
def test_killed_worker_and_restart_resume_where_the_backup_was(init_weights, tmp_path):
    logs, backup, out = tmp_path / "logs", tmp_path / "backup", tmp_path / "out"
    out.mkdir()
    common = {"INIT": init_weights, "EPOCHS": "3", "STEPS": "2", "LOGS": str(logs), "BACKUP": str(backup),
              "OUT": str(out)}  # fmt: skip
    chief, worker = _workers({**common, "KILL_AT": "1:1:1"})  # worker 1, epoch 2 (0-based 1), its 2nd step
    worker.communicate(timeout=900)
    assert worker.returncode == -signal.SIGKILL
    time.sleep(2)
    chief.kill()  # it waits for its peer in a collective; the cluster is restarted as a whole
    chief.communicate(timeout=60)
    (run,) = os.listdir(logs)
    assert sorted(f for f in os.listdir(logs / run) if f.endswith(".h5")) == ["mask_rcnn_mw_0001.h5"]
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1

    outs = _finish(_workers({**common, "RESUME": "1"}))
    for text in outs:
        assert "START 1" in text  # both continue the run after its checkpoint 1...
        epochs = [int(line.split()[1]) for line in text.splitlines() if line.startswith("EPOCH")]
        assert epochs == [1, 2], epochs  # ...and train epochs 2 and 3 only
    assert os.listdir(logs) == [run]
    files = set(os.listdir(logs / run))
    assert {"mask_rcnn_mw_0001.h5", "mask_rcnn_mw_0002.h5", "mask_rcnn_mw_0003.h5"} <= files
    from mrcnn.history import read_history

    assert [r["epoch"] for r in read_history(logs / run / "history.csv")] == [0, 1, 2]
    assert not backup.exists()  # deleted by the chief when training ended


def test_backup_and_restore_resumes_exactly_where_the_backup_was(tmp_path):
    """One process, a small model trained with SGD and momentum: stopped in epoch 2 (an exception where a kill
    would be) and started again from fresh random weights, fit restores the epoch-1 backup (weights and the
    optimizer's momentum), trains epochs 2 and 3 only, ends with the weights of a run never stopped, and
    removes the backup."""
    import keras

    from mrcnn.training import MultiWorkerBackupAndRestore

    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")

    def fit(seed, epochs_seen, callbacks):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse", run_eagerly=True)

        class Epochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                epochs_seen.append(epoch)

        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[Epochs(), *callbacks])
        return model.get_weights()

    reference = fit(0, [], [])

    class Kill(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self._epoch == 1 and batch == 2:
                raise RuntimeError("killed")

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    backup = tmp_path / "backup"
    first, second = [], []
    with pytest.raises(RuntimeError, match="killed"):
        fit(0, first, [MultiWorkerBackupAndRestore(str(backup)), Kill()])
    assert first == [0, 1]
    assert json.loads((backup / "training_metadata.json").read_text()) == {
        "epoch": 1,
        "weights": "epoch-0001.weights.h5",
    }
    assert sorted(os.listdir(backup)) == ["epoch-0001.weights.h5", "training_metadata.json"]
    resumed = fit(7, second, [MultiWorkerBackupAndRestore(str(backup))])  # other initial weights
    assert second == [1, 2]  # epochs 2 and 3, none lost, none repeated
    for a, b in zip(resumed, reference):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not backup.exists()
