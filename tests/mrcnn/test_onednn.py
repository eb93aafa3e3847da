"""The oneDNN path, forced on in a subprocess (TF_ENABLE_ONEDNN_OPTS=1), so a plain local run on a CPU without
AVX-512/AMX (where TensorFlow leaves oneDNN off) covers it too.

1. The TensorFlow behaviour we avoid: with oneDNN on, a fused Conv2D + BiasAdd + FusedBatchNorm + Relu rejects
   an input with zero rows (``../shared/repro/onednn/tf_minimal.py`` shows the same).
2. Our graphs never give it one: detect() on images without detections and a training step without a
   positive ROI run (the cases of ``test_zero_rows.py``), and the reported checkpoint evaluates when its
   reproduction folder is present.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPRO = ROOT.parent / "shared" / "repro" / "onednn"


def _run(code: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


ZERO_ROWS_CONV = """
    import tensorflow as tf
    from mrcnn.runtime import onednn_enabled
    assert onednn_enabled(), "TF_ENABLE_ONEDNN_OPTS=1 did not turn oneDNN on"
    x = tf.zeros([0, 14, 14, 256])
    kernel = tf.random.normal([3, 3, 256, 64])
    ones, zeros = tf.ones([64]), tf.zeros([64])

    @tf.function
    def conv_bn_relu(x):
        y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), zeros)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, ones, zeros, zeros, ones, is_training=False)
        return tf.nn.relu(y)

    try:
        print("RESULT", conv_bn_relu(x).shape)
    except tf.errors.InvalidArgumentError as e:
        print("RESULT fails")
"""


def test_tensorflow_rejects_zero_rows_with_onednn():
    proc = _run(ZERO_ROWS_CONV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1]
    if result != "RESULT fails":
        pytest.skip(
            f"this TensorFlow no longer rejects zero rows with oneDNN ({result}); MIN_HEAD_ROWS is moot"
        )


OUR_GRAPHS = """
    import keras, numpy as np, tensorflow as tf, tempfile
    from mrcnn import model as modellib
    from mrcnn.data.synthetic import ShapesDataset
    from mrcnn.runtime import onednn_enabled
    from mrcnn.testing import tiny_config
    from mrcnn.training import TrainingLoader, TrainingModel
    assert onednn_enabled()

    for precision in (None, "mixed_bfloat16"):
        config = tiny_config(MIXED_PRECISION=precision, DETECTION_MIN_CONFIDENCE=0.0)
        model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp())
        layer = model.keras_model.get_layer("mrcnn_class_logits")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.eye(1, bias.shape[0], 0, dtype=bias.dtype)[0] * 8])
        images = [ShapesDataset.build(2, 64, 64, seed=3).load_image(i) for i in range(2)]
        results = model.detect(images)
        assert [len(r["class_ids"]) for r in results] == [0, 0], results

        config = tiny_config(MIXED_PRECISION=precision)
        model = modellib.MaskRCNN("training", config, tempfile.mkdtemp())
        batch = TrainingLoader(ShapesDataset.build(2, 64, 64, seed=1), config, shuffle=False, workers=1)[0]
        batch["input_gt_class_ids"] = np.zeros_like(batch["input_gt_class_ids"])
        trainer = TrainingModel(model.keras_model, config)
        trainer.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
        logs = tf.function(trainer.train_step)({k: tf.constant(v) for k, v in batch.items()})
        assert all(np.isfinite(float(v)) for v in logs.values()), logs
    print("RESULT ok")
"""


@pytest.mark.skipif(
    bool(os.environ.get("CI")),
    reason="CI (.ci/run) runs test_zero_rows.py itself with oneDNN on in one of its two passes",
)
def test_our_graphs_run_without_rows_with_onednn():
    proc = _run(OUR_GRAPHS)
    assert proc.returncode == 0 and "RESULT ok" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.skipif(not (REPRO / "mask_rcnn_fashion_0001.h5").exists(), reason=f"no reproduction in {REPRO}")
def test_reported_checkpoint_evaluates_with_onednn(tmp_path):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "fashion/evaluate.py",
            "--weights",
            str(REPRO / "mask_rcnn_fashion_0001.h5"),
            "--dataset",
            "fashion/sample",
            "--preset",
            "sample",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "eval.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "oneDNN on" in proc.stdout and (tmp_path / "eval.json").exists()
