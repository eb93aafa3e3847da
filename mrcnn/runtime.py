"""What this process runs on (CPU features, oneDNN, GPUs) and a quiet TensorFlow start-up.

TensorFlow decides at start-up whether its CPU kernels go through oneDNN: on Linux x86 it does by default when
the CPU has AVX-512 VNNI or BF16, AVX-VNNI or AMX (most current cloud CPUs), and ``TF_ENABLE_ONEDNN_OPTS=0|1``
overrides that. The two paths run different kernels (and fusions), so a bug report or a benchmark figure means
little without saying which one ran: :func:`describe_runtime` gives that in one line.

Importing TensorFlow prints C++ log lines to stderr before its logging is configured (``cudart_stub.cc``,
``cpu_feature_guard.cc``, and on a machine without a GPU an error-level ``failed call to cuInit``), which
``TF_CPP_MIN_LOG_LEVEL`` does not silence. :func:`import_tensorflow` can hide them: it points file descriptor 2
at a temporary file while TensorFlow loads and looks for GPUs, and replays what was written if that fails.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CpuInfo",
    "cpu_info",
    "describe_runtime",
    "has_bf16_hardware",
    "import_tensorflow",
    "onednn_enabled",
]

# CPU features for which TensorFlow turns oneDNN on by default (Linux x86), as /proc/cpuinfo names them.
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
# Features that make bfloat16 matrix work faster than float32 on a CPU.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


class CpuInfo:
    """The CPU's model name, logical core count and feature flags (lower case, as /proc/cpuinfo lists them)."""

    def __init__(self, model: str, cores: int, flags: frozenset[str]):
        self.model = model
        self.cores = cores
        self.flags = flags

    def has(self, *flags: str) -> bool:
        """Whether the CPU has any of ``flags``."""
        return any(flag in self.flags for flag in flags)

    def vector_summary(self) -> str:
        """The widest vector and matrix features, e.g. "AVX-512 BF16, AMX" or "AVX2 (no AVX-512, no AMX)"."""
        parts = []
        if self.has("avx512f"):
            parts.append("AVX-512" + (" BF16" if self.has("avx512_bf16") else ""))
        if self.has("amx_tile"):
            parts.append("AMX" + (" BF16" if self.has("amx_bf16") else ""))
        if parts:
            return ", ".join(parts)
        if self.has("avx2"):
            return "AVX2 (no AVX-512, no AMX)"
        return "no AVX2"

    def __repr__(self) -> str:
        return f"CpuInfo(model={self.model!r}, cores={self.cores}, flags={len(self.flags)})"


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """The CPU of this machine, read from ``path`` (Linux); flags are empty where that file does not exist."""
    model, flags = "", set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    import platform

    return CpuInfo(model or platform.processor() or "unknown CPU", os.cpu_count() or 1, frozenset(flags))


def has_bf16_hardware(info: CpuInfo | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16); elsewhere bfloat16 is emulated."""
    return (info or cpu_info()).has(*BF16_FLAGS)


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def onednn_enabled() -> bool:
    """Whether TensorFlow's CPU kernels use oneDNN in this process.

    Asks TensorFlow when it is importable; otherwise applies its rule: ``TF_ENABLE_ONEDNN_OPTS`` when set, else
    on for CPUs with any of :data:`ONEDNN_DEFAULT_FLAGS`.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port  # private, but the only direct answer

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - any failure falls back to TensorFlow's documented rule
        explicit = _env_flag("TF_ENABLE_ONEDNN_OPTS")
        return explicit if explicit is not None else cpu_info().has(*ONEDNN_DEFAULT_FLAGS)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Any]:
    """Point file descriptor 2 at a temporary file for the block (C++ writes there too, not only Python)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow(quiet: bool = True) -> Any:
    """Import TensorFlow (and find its devices) and return the module.

    quiet: hide the C++ log lines TensorFlow writes while it starts (see the module docstring) and set
        ``TF_CPP_MIN_LOG_LEVEL=3`` unless the caller set it. If the import fails, what TensorFlow wrote is
        printed before the error propagates. quiet=False imports it as usual.
    """
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_captured() as capture:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, not at import
        except BaseException:
            capture.seek(0)
            written = capture.read().decode("utf-8", "replace")
            ok = False
        else:
            ok = True
    if not ok:
        sys.stderr.write(written)
        raise
    return tf


def describe_runtime(precision: str | None = None) -> str:
    """One line saying what the computation runs on, e.g.

    ``"running on CPU: AMD EPYC (2 cores, AVX2 (no AVX-512, no AMX)), oneDNN off, float32"`` or
    ``"running on GPU: NVIDIA H200 (1 device), float16"``. Imports TensorFlow (quietly) to list the GPUs.
    ``precision``: the precision to report, when the caller has chosen one.
    """
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except Exception:  # noqa: BLE001 - details are optional
                names.append(gpu.name)
        where = f"GPU: {names[0]} ({len(gpus)} device{'s' if len(gpus) > 1 else ''})"
    else:
        info = cpu_info()
        onednn = "oneDNN on" if onednn_enabled() else "oneDNN off"
        where = f"CPU: {info.model} ({info.cores} cores, {info.vector_summary()}), {onednn}"
    return f"running on {where}" + (f", {precision}" if precision else "")
