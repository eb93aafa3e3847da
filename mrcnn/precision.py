"""The numeric precision a model computes in: names, the ``auto`` rule, and how far results move from float32.

Three precisions, one name each everywhere (``--precision`` on the command lines, ``Config.MIXED_PRECISION``):

- ``float32``: everything in float32 (Keras' default policy).
- ``bfloat16``: Keras' ``mixed_bfloat16`` policy. Convolutions and dense layers compute in bfloat16 (8
  significant bits, float32's range); fast on CPUs with AMX or AVX512-BF16, emulated (slower than float32)
  elsewhere.
- ``float16``: Keras' ``mixed_float16`` policy (11 significant bits, range up to 65504); fast on GPUs with
  tensor cores. Training scales the loss (see :func:`mrcnn.training.make_optimizer`).

Under both half precisions the weights stay float32 (in memory and in files), and so do the box math, ROI
align, detection, losses and the heads' output layers (see :func:`mrcnn.modeling.build.keep_float32`).

``auto`` picks float16 on a GPU with tensor cores (compute capability 7.0 or more), bfloat16 on a CPU with AMX
or AVX512-BF16 (read from the CPU flags by :mod:`mrcnn.runtime`), and float32 elsewhere;
:func:`resolve_precision` says which and why.

:func:`compare_detections` measures what a precision does to ``detect()``'s results against float32's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from mrcnn.runtime import CpuInfo, cpu_info, has_bf16_hardware

__all__ = [
    "AUTO",
    "CHOICES",
    "MIXED_PRECISION_VALUES",
    "PRECISIONS",
    "DetectionAgreement",
    "GpuInfo",
    "compare_detections",
    "gpu_info",
    "keras_policy",
    "precision_name",
    "resolve_precision",
]

PRECISIONS = ("float32", "bfloat16", "float16")
AUTO = "auto"
CHOICES = (*PRECISIONS, AUTO)
_KERAS_POLICIES = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# What Config.MIXED_PRECISION accepts: None (float32), Keras' policy names, the short names and "auto".
MIXED_PRECISION_VALUES = (None, "mixed_float16", "mixed_bfloat16", *CHOICES)
# Tensor cores (fast float16 matrix work) arrived with compute capability 7.0 (Volta).
TENSOR_CORE_CAPABILITY = (7, 0)


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """A visible GPU: its name and CUDA compute capability (None when TensorFlow does not report one)."""

    name: str
    compute_capability: tuple[int, int] | None

    @property
    def has_tensor_cores(self) -> bool:
        return self.compute_capability is not None and self.compute_capability >= TENSOR_CORE_CAPABILITY


def gpu_info() -> list[GpuInfo]:
    """The GPUs TensorFlow sees (imports it quietly, see :func:`mrcnn.runtime.import_tensorflow`)."""
    from mrcnn.runtime import import_tensorflow

    tf = import_tensorflow()
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001 - details are optional
            details = {}
        capability = details.get("compute_capability")
        found.append(
            GpuInfo(
                details.get("device_name", gpu.name),
                tuple(int(v) for v in capability) if capability else None,
            )
        )
    return found


def precision_name(value: str | None) -> str:
    """The precision name ("float32", "bfloat16", "float16") of a ``Config.MIXED_PRECISION`` value or a
    ``--precision`` choice: None and "float32" are float32, "mixed_bfloat16" is "bfloat16", and so on; "auto"
    is resolved for this machine (:func:`resolve_precision`). Raises ValueError for anything else."""
    if value is None:
        return "float32"
    if value == AUTO:
        return resolve_precision(AUTO)[0]
    for name, policy in _KERAS_POLICIES.items():
        if value in (name, policy):
            return name
    raise ValueError(
        f"unknown precision {value!r}: one of {', '.join(CHOICES)} (or mixed_float16, mixed_bfloat16)"
    )


def keras_policy(value: str | None) -> str | None:
    """The Keras dtype policy for a ``Config.MIXED_PRECISION`` value: None (float32, Keras' default),
    "mixed_bfloat16" or "mixed_float16"."""
    return _KERAS_POLICIES[precision_name(value)]


def resolve_precision(
    choice: str | None, cpu: CpuInfo | None = None, gpus: Sequence[GpuInfo] | None = None
) -> tuple[str, str]:
    """(precision name, why) for a ``--precision`` choice on this machine.

    "auto": float16 when a GPU with tensor cores is visible, bfloat16 on a CPU with AMX or AVX512-BF16,
    float32 otherwise. An explicit choice is kept; the reason then says when it is not what the hardware
    runs fast (bfloat16 without AMX / AVX512-BF16 is emulated and slower than float32; float16 on a CPU has
    no fast kernels at all). ``cpu`` and ``gpus`` default to this machine's (tests pass others).
    """
    cpu = cpu or cpu_info()
    if choice != AUTO:
        name = precision_name(choice)
        if gpus is None and name != "float32":
            gpus = gpu_info()
        return name, _explain(name, cpu, gpus or [])
    if gpus is None:
        gpus = gpu_info()
    if gpus:
        gpu = gpus[0]
        if gpu.has_tensor_cores:
            major, minor = gpu.compute_capability
            return "float16", f"auto: GPU {gpu.name} has tensor cores (compute capability {major}.{minor})"
        return "float32", f"auto: GPU {gpu.name} has no tensor cores (compute capability below 7.0)"
    if has_bf16_hardware(cpu):
        found = [flag for flag in ("amx_bf16", "avx512_bf16") if flag in cpu.flags]
        return "bfloat16", f"auto: the CPU has {' and '.join(found)}"
    return "float32", "auto: no GPU, and the CPU has neither AMX nor AVX512-BF16"


def _explain(name: str, cpu: CpuInfo, gpus: Sequence[GpuInfo]) -> str:
    if name == "bfloat16" and not gpus and not has_bf16_hardware(cpu):
        return "chosen; emulated: no AMX / AVX512-BF16 here, slower than float32"
    if name == "float16" and not gpus:
        return "chosen; no GPU: float16 runs on TensorFlow's generic CPU kernels, slower than float32"
    return "chosen"


# ----------------------------------------------------------------------------------------------- accuracy
@dataclasses.dataclass
class DetectionAgreement:
    """How closely one precision's detections reproduce float32's, over a set of images.

    reference: number of float32 detections; matched: how many of them the other run found too (same class,
    box IoU >= the threshold, each detection matched at most once, greedily by IoU); mask_iou: mean mask IoU of
    the matched pairs; score_diff_mean / score_diff_max: mean and largest absolute score difference of the
    matched pairs; extra: the other run's detections left unmatched.
    """

    reference: int
    matched: int
    mask_iou: float
    score_diff_mean: float
    score_diff_max: float
    extra: int

    @property
    def matched_share(self) -> float:
        """matched / reference (1.0 when float32 found nothing and neither did the other run)."""
        if self.reference == 0:
            return 1.0 if self.extra == 0 else 0.0
        return self.matched / self.reference

    def meets(self, min_matched: float = 0.95, min_mask_iou: float = 0.9) -> bool:
        """Whether the agreement reaches issue #12's bounds (share matched and mean mask IoU)."""
        return self.matched_share >= min_matched and (self.matched == 0 or self.mask_iou >= min_mask_iou)

    def summary(self) -> str:
        return (
            f"{self.matched}/{self.reference} matched ({100 * self.matched_share:.1f}%), mask IoU "
            f"{self.mask_iou:.3f}, score diff mean {self.score_diff_mean:.4f} max {self.score_diff_max:.4f}, "
            f"{self.extra} unmatched extra"
        )


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, (y1, x1, y2, x2)] against b [M, 4] (pixels, as detect() gives): [N, M]."""
    a = a.astype(np.float64)[:, None]
    b = b.astype(np.float64)[None]
    h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = h * w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two [H, W] bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compare_detections(
    reference: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], box_iou: float = 0.9
) -> DetectionAgreement:
    """Match ``other``'s detections to ``reference``'s (both: per-image dicts of ``MaskRCNN.detect``, rois
    [N, (y1, x1, y2, x2)] pixels, class_ids [N], scores [N], masks [H, W, N] bool) and measure the agreement.

    A pair matches when the class is the same and the box IoU is at least ``box_iou``; pairs are taken greedily
    by decreasing IoU, each detection used once.
    """
    if len(reference) != len(other):
        raise ValueError(
            f"{len(reference)} reference results against {len(other)} others: one per image each"
        )
    total = matched = extra = 0
    mask_ious: list[float] = []
    score_diffs: list[float] = []
    for ref, out in zip(reference, other):
        n, m = len(ref["class_ids"]), len(out["class_ids"])
        total += n
        if n == 0 or m == 0:
            extra += m
            continue
        iou = _box_iou(np.asarray(ref["rois"]), np.asarray(out["rois"]))
        iou[np.asarray(ref["class_ids"])[:, None] != np.asarray(out["class_ids"])[None]] = 0.0
        used_ref, used_out = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), m)
            if iou[i, j] < box_iou:
                break
            if i in used_ref or j in used_out:
                continue
            used_ref.add(i)
            used_out.add(j)
            mask_ious.append(_mask_iou(ref["masks"][..., i], out["masks"][..., j]))
            score_diffs.append(abs(float(ref["scores"][i]) - float(out["scores"][j])))
        matched += len(used_ref)
        extra += m - len(used_out)
    return DetectionAgreement(
        reference=total,
        matched=matched,
        mask_iou=float(np.mean(mask_ious)) if mask_ious else float("nan"),
        score_diff_mean=float(np.mean(score_diffs)) if score_diffs else float("nan"),
        score_diff_max=float(np.max(score_diffs)) if score_diffs else float("nan"),
        extra=extra,
    )
