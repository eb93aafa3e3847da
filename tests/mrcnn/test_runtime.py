"""mrcnn.runtime: CPU features, oneDNN state, quiet TensorFlow start-up, the one-line runtime description."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrcnn import runtime

ROOT = Path(__file__).resolve().parents[2]

AMX_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
"""
AVX2_CPUINFO = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"


def _info(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    runtime.cpu_info.cache_clear()
    try:
        return runtime.cpu_info(str(path))
    finally:
        runtime.cpu_info.cache_clear()


def test_cpu_info_reads_model_and_flags(tmp_path):
    info = _info(tmp_path, AMX_CPUINFO)
    assert info.model == "Intel(R) Xeon(R) Platinum 8481C"
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= info.flags
    assert info.vector_summary() == "AVX-512 BF16, AMX BF16"
    assert runtime.has_bf16_hardware(info)
    assert info.has(*runtime.ONEDNN_DEFAULT_FLAGS)


def test_avx2_only_cpu_has_no_bf16_and_no_onednn_default(tmp_path):
    info = _info(tmp_path, AVX2_CPUINFO)
    assert info.vector_summary() == "AVX2 (no AVX-512, no AMX)"
    assert not runtime.has_bf16_hardware(info)
    assert not info.has(*runtime.ONEDNN_DEFAULT_FLAGS)


def test_missing_cpuinfo_gives_empty_flags(tmp_path):
    runtime.cpu_info.cache_clear()
    try:
        info = runtime.cpu_info(str(tmp_path / "absent"))
    finally:
        runtime.cpu_info.cache_clear()
    assert info.flags == frozenset() and info.cores >= 1


def _run(code, **env):
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    full_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=300
    )


@pytest.mark.parametrize("flag, expected", [("0", "oneDNN off"), ("1", "oneDNN on")])
def test_onednn_state_follows_the_environment_and_is_described(flag, expected):
    proc = _run(
        "from mrcnn import runtime; print(runtime.onednn_enabled()); print(runtime.describe_runtime('float32'))",
        TF_ENABLE_ONEDNN_OPTS=flag,
    )
    assert proc.returncode == 0, proc.stderr
    first, line = proc.stdout.strip().splitlines()[-2:]
    assert first == str(flag == "1")
    assert line.startswith("running on CPU: ") and expected in line and line.endswith(", float32")


def test_quiet_import_hides_tensorflow_start_up_lines():
    code = "from mrcnn import runtime; tf = runtime.import_tensorflow(); print(tf.reduce_sum(tf.ones([3])).numpy())"
    quiet = _run(code)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().endswith("3.0")
    assert quiet.stderr.strip() == "", quiet.stderr
    # The lines are there without it (so the check above can fail).
    loud = _run("import tensorflow as tf; tf.config.list_physical_devices('GPU')")
    assert loud.returncode == 0 and loud.stderr.strip() != ""
