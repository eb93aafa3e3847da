"""``fashion-serve``: start the fashion-parsing service on a trained checkpoint.

    fashion-serve --weights last                       # the newest checkpoint in ./logs, on 127.0.0.1:8000
    fashion-serve --weights run/mask_rcnn_fashion_0012.h5 --port 8080 --max-batch 8
    python -m fashion.serve --weights last --host 0.0.0.0   # reachable from other machines: say so explicitly

The checkpoint says what the model is (classes, attributes, backbone, image size); the model loads once,
before the port opens, then a warm-up detection runs while /healthz already answers and /readyz says 503.
Ctrl-C or SIGTERM stops taking connections and finishes the requests in flight first.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from fashion.cli_common import (
    CLIError,
    add_model_arguments,
    add_verbose_argument,
    build_inference_model,
    inference_overrides,
    resolve_model,
    run_cli,
    start_runtime,
)
from fashion.serve.app import ServiceSettings

__all__ = [
    "AUTO_BATCH",
    "PRECISIONS",
    "auto_max_batch",
    "build_parser",
    "check_port",
    "main",
    "mixed_precision_policy",
    "model_overrides",
    "precision_name",
    "settings_from",
]

PRECISIONS = ("float32", "bfloat16", "float16", "auto")
AUTO_BATCH = 8  # --max-batch auto where batches pay (GPU, oneDNN)


def mixed_precision_policy(precision: str) -> str | None:
    """Config.MIXED_PRECISION for serve's own --precision choice ("auto" is float32 here).

    A stand-in used only while :func:`fashion.cli_common.add_model_arguments` has no --precision of its own:
    once the shared option (issue #12, ``mrcnn/precision.py``) is merged, :func:`model_overrides` takes
    MIXED_PRECISION from :func:`fashion.cli_common.inference_overrides` and this function is unused.
    """
    policies = {"float32": None, "auto": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
    try:
        return policies[precision]
    except KeyError:
        raise CLIError(f"--precision {precision!r}: one of {', '.join(PRECISIONS)}") from None


def precision_name(mixed_precision: str | None) -> str:
    """The precision a Config.MIXED_PRECISION computes in: "float32", "bfloat16" or "float16" (Keras' policy
    names and the short names both read)."""
    names = {None: "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
    return names.get(mixed_precision, str(mixed_precision))


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of the model options, as infer makes them
    (:func:`fashion.cli_common.inference_overrides`), with MIXED_PRECISION from --precision."""
    overrides = inference_overrides(args)
    if "MIXED_PRECISION" not in overrides:  # the shared options do not read --precision (yet): serve's own
        overrides["MIXED_PRECISION"] = mixed_precision_policy(args.precision)
    return overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fashion-serve",
        description="Serve a trained fashion Mask R-CNN over HTTP: JSON API, PNG overlays and an upload page.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    add_model_arguments(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    if p.get_default("precision") is None:  # until the shared model options include --precision
        p.add_argument(
            "--precision",
            choices=PRECISIONS,
            default="float32",
            help="numeric precision of the model (default float32; auto is float32 for now)",
        )
    defaults = ServiceSettings()
    p.add_argument(
        "--max-batch",
        type=_batch_option,
        default="auto",
        help=f"most images per detect() call, or 'auto' (default): {AUTO_BATCH} on a GPU or with oneDNN's CPU "
        "kernels, 1 with TensorFlow's default CPU kernels (whose cost per image does not fall with the batch)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help="how long a batch waits for more images once it has one (default 10 ms)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=defaults.max_queue,
        help="most images waiting for the model; more get 503 + Retry-After (default 32)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=defaults.max_upload_bytes / 2**20,
        help="largest request body in MiB (default 20)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=defaults.max_pixels,
        help="largest image width x height, checked before decoding (default 50 000 000)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=defaults.request_timeout_s,
        help="seconds a request waits for the model before 504 (default 60)",
    )
    add_verbose_argument(p)
    return p


def _batch_option(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: an integer or 'auto'") from None


def auto_max_batch() -> tuple[int, str]:
    """The largest batch that pays on this machine, and why (imports TensorFlow).

    Measured with bench/serve.py and a detect() profile on a 2-core AVX2 CPU: with TensorFlow's default CPU
    kernels (Eigen) an image costs as much or more inside a batch of 8 as alone (in a profile, the backbone's
    convolutions took about 3x longer per image), so batching buys nothing there; with oneDNN's kernels (TensorFlow's default
    on CPUs with AVX-512 VNNI/BF16 or AMX) an image costs about 0.6x inside a batch of 8, where GPUs gain more.
    """
    from mrcnn.runtime import import_tensorflow, onednn_enabled

    tf = import_tensorflow()
    if tf.config.list_physical_devices("GPU"):
        return AUTO_BATCH, "auto: a GPU"
    if onednn_enabled():
        return AUTO_BATCH, "auto: oneDNN's CPU kernels gain from batches"
    return 1, "auto: TensorFlow's default CPU kernels gain nothing from batches; --max-batch N overrides"


def settings_from(args: argparse.Namespace, max_batch: int | None = None) -> ServiceSettings:
    """The ServiceSettings of the options (``max_batch``: instead of --max-batch, e.g. when it is 'auto');
    CLIError for a value out of range."""
    if max_batch is None:
        if args.max_batch == "auto":
            raise ValueError("--max-batch auto: resolve it with auto_max_batch() and pass max_batch")
        max_batch = int(args.max_batch)
    checks = [
        ("--max-batch", max_batch, max_batch >= 1),
        ("--max-wait-ms", args.max_wait_ms, args.max_wait_ms >= 0),
        ("--max-queue", args.max_queue, args.max_queue >= 1),
        ("--max-upload-mb", args.max_upload_mb, args.max_upload_mb > 0),
        ("--max-pixels", args.max_pixels, args.max_pixels >= 1),
        ("--timeout", args.timeout, args.timeout > 0),
        ("--port", args.port, 0 <= args.port <= 65535),
    ]
    for option, value, ok in checks:
        if not ok:
            raise CLIError(f"{option} {value}: out of range")
    return ServiceSettings(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_pixels),
        request_timeout_s=float(args.timeout),
        max_batch=int(max_batch),
        max_wait_ms=float(args.max_wait_ms),
        max_queue=int(args.max_queue),
        shutdown_timeout_s=max(30.0, float(args.timeout)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from fashion.serve.app import create_app
    from fashion.serve.model import ServedModel, model_info

    fixed_batch = args.max_batch if args.max_batch != "auto" else None
    settings_from(args, 1 if fixed_batch is None else fixed_batch)  # options checked before anything slow
    check_port(args.host, args.port)
    choice = resolve_model(args)  # fails fast (exit 2) before anything slow
    overrides = model_overrides(args)
    precision = precision_name(choice.config(overrides).MIXED_PRECISION)
    start_runtime(args.verbose, precision)
    max_batch, why = auto_max_batch() if fixed_batch is None else (fixed_batch, "--max-batch")
    settings = settings_from(args, max_batch)
    config = choice.config({**overrides, "IMAGES_PER_GPU": settings.max_batch, "GPU_COUNT": 1})
    if str(config.IMAGE_RESIZE_MODE) != "square" and settings.max_batch > 1:
        print(
            f"Note: IMAGE_RESIZE_MODE {config.IMAGE_RESIZE_MODE!r} molds images to different sizes: each image "
            "runs alone (batches need 'square')",
            flush=True,
        )
    model = build_inference_model(choice, args.logs, config)
    served = ServedModel(model)
    info = model_info(choice, config, precision, settings.max_batch if served.batches else 1)

    def warm_up() -> None:
        started = time.perf_counter()
        served.warm_up()
        print(f"Ready: warm-up detection done in {time.perf_counter() - started:.1f} s", flush=True)

    app = create_app(served, info, settings, warm_up=warm_up)
    print(
        f"Model: {info.name} (preset {info.preset}, {info.backbone}, {len(info.class_names) - 1} classes"
        f"{f', {len(info.attribute_names)} attributes' if info.attribute_names else ''}), "
        f"batches of up to {info.max_batch} ({why})\n"
        f"Serving on http://{_url_host(args.host)}:{args.port}/ (API docs at /docs; Ctrl-C stops)",
        flush=True,
    )
    logger = logging.getLogger("fashion.serve")
    if not logger.handlers:  # its lines (model failures, the stop line) on stderr, beside uvicorn's
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        access_log=bool(args.verbose),
    )
    return 0


def check_port(host: str, port: int) -> None:
    """CLIError when ``host:port`` cannot be listened on (in use, no such address), before the model loads."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise CLIError(f"cannot listen on {_url_host(host)}:{port}: {e.strerror or e}") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
