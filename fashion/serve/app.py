"""The FastAPI application: :func:`create_app` wires a detector to the HTTP API and the upload page.

Endpoints (``/docs`` is the generated OpenAPI page):

- ``POST /v1/parse``: an image (multipart form file or raw body) -> :class:`~fashion.serve.schemas.ParseResponse`.
- ``POST /v1/overlay``: the same image -> PNG with masks, boxes and captions (:func:`fashion.overlay.draw_overlay`).
- ``GET /v1/model``: classes, attributes, backbone, image settings, precision, package version.
- ``GET /healthz``: the process answers. ``GET /readyz``: the model is loaded and its warm-up detection done.
- ``GET /``: the upload page (``static/``: no resource from outside the service).

Every error is JSON (:class:`~fashion.serve.schemas.ErrorResponse`): 400 undecodable image or no image in
the form, 404 / 405, 413 body over ``max_upload_bytes`` or image over ``max_pixels``, 415 not an image, 422 bad
query parameter, 503 queue full or model not ready (with ``Retry-After``), 504 no answer within the request
timeout, 500 a model failure. Decoding, post-processing and drawing run on worker threads and the model on its
own thread (:class:`~fashion.serve.batching.BatchingDetector`), never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashion import postprocess as pp
from fashion.serve import schemas
from fashion.serve.batching import (
    BatchingDetector,
    DetectorClosedError,
    NotReadyError,
    QueueFullError,
)
from fashion.serve.images import DecodedImage, ImageInputError, decode_image
from fashion.serve.model import ModelInfo
from fashion.serve.results import ParseOptions, garments, select_detections

__all__ = ["API_VERSION", "ApiError", "ServiceSettings", "create_app"]

API_VERSION = "v1"
log = logging.getLogger("fashion.serve")

# The page and its scripts may load only from the service itself (and show images they made).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and batching of a service.

    max_upload_bytes: the largest request body (413 above). max_pixels: the largest width x height of an
    image (413 above; checked before decoding). request_timeout_s: how long a request waits for the model
    (504 after). max_batch, max_wait_ms, max_queue: see :class:`~fashion.serve.batching.BatchingDetector`.
    overlay_max_size: default longer side of ``/v1/overlay`` pictures. shutdown_timeout_s: how long shutting
    down waits for queued images.
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    request_timeout_s: float = 60.0
    max_batch: int = 4
    max_wait_ms: float = 10.0
    max_queue: int = 32
    overlay_max_size: int = 800
    shutdown_timeout_s: float = 60.0


class ApiError(Exception):
    """An error answered as :class:`~fashion.serve.schemas.ErrorResponse` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return JSONResponse(
        {"status": status, "error": phrase, "message": message}, status_code=status, headers=headers
    )


class BodyLimitMiddleware:
    """Answers 413 to a request whose body is, or turns out to be, over ``max_bytes``, without reading more
    of it than that (a declared Content-Length is refused before any byte is read)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self, size: int | None = None) -> str:
        if size is None:
            return f"the request body is over the limit of {self.max_bytes} bytes (--max-upload-mb)"
        return f"the request body is {size} bytes, more than the limit of {self.max_bytes} (--max-upload-mb)"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await error_response(413, self._message(declared))(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ApiError(413, self._message())
            return message

        await self.app(scope, limited_receive, send)


# ------------------------------------------------------------------------------------------------- upload
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "the image: a multipart form with one file (any field name), or the raw bytes as the "
        "body. The format is read from the bytes (JPEG, PNG, WebP, BMP, GIF, TIFF); file names and "
        "Content-Type are not trusted.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

_ERRORS_DOC = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in {
        400: "no image in the request, or an image that does not decode",
        413: "request body or image pixel count over the service's limit",
        415: "the bytes are not an image",
        422: "a query parameter is out of range or not understood",
        503: "queue full or model not ready; see Retry-After",
        504: "the model did not answer within the request timeout",
    }.items()
}


async def read_upload(request: Request) -> bytes:
    """The image bytes of a request: the one file of a multipart form, else the whole body."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=16)
        except ApiError:
            raise
        except Exception as e:  # malformed multipart, too many parts
            raise ApiError(400, f"the multipart form cannot be read: {e}") from None
        try:
            files = [value for _, value in form.multi_items() if hasattr(value, "read")]
            if not files:
                raise ApiError(400, "the multipart form has no file: send the image as a file field")
            return await files[0].read()
        finally:
            await form.close()
    return await request.body()


# Query parameters of both POST endpoints: the post-processing options of fashion-infer.
MinScore = Annotated[float | None, Query(ge=0.0, le=1.0, description="drop garments scoring below this")]
MinArea = Annotated[int | None, Query(ge=0, description="drop garments whose mask has fewer pixels")]
MaxInstances = Annotated[
    int | None, Query(ge=1, le=1000, description="keep at most this many, the most confident")
]
MaxPerClass = Annotated[
    str | None,
    Query(
        description="at most K per class: 'K' for every class, 'NAME=K' for one, entries separated by ';' "
        "(e.g. 'shoe=2' or '3;shoe=2'); as fashion-infer --max-per-class"
    ),
]
Polygons = Annotated[bool, Query(description="add each mask's outline polygons")]
AttributeThreshold = Annotated[
    float, Query(ge=0.0, le=1.0, description="list attributes scoring at least this")
]
OverlaySize = Annotated[
    int | None,
    Query(ge=64, le=4096, description="longer side of the picture in pixels (default: the service's)"),
]


# ------------------------------------------------------------------------------------------------- app
def create_app(
    detector: Any,
    info: ModelInfo,
    settings: ServiceSettings | None = None,
    warm_up: Any = None,
) -> FastAPI:
    """The service's FastAPI application.

    Args:
        detector: anything with ``detect(images) -> [detections dict]`` (``MaskRCNN.detect``'s contract, e.g.
            :class:`fashion.serve.model.ServedModel`); called on one inference thread.
        info: what the model is (class and attribute names, precision, ...).
        settings: limits and batching (default :class:`ServiceSettings`).
        warm_up: called once on the inference thread before the service is ready (e.g.
            ``ServedModel.warm_up``); None: ready at once.

    The inference thread starts with the application (its lifespan) and, on shutdown, finishes the images
    already queued before it stops.
    """
    settings = settings or ServiceSettings()
    batcher = BatchingDetector(
        detector.detect,
        max_batch=settings.max_batch,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue=settings.max_queue,
        warm_up=warm_up,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(_preload)
        batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.close, settings.shutdown_timeout_s)
            log.info("Stopped: %d images served in %d detect() calls", batcher.images, batcher.calls)

    app = FastAPI(
        title="fashion-serve",
        version=info.package_version,
        summary="Garments in photos: class, score, box, mask (COCO RLE), attributes.",
        description="Mask R-CNN fashion parsing. POST an image to /v1/parse for JSON or /v1/overlay for a PNG; "
        "the upload page is at /.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.info = info
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    _install_error_handlers(app)

    short_names = info.short_names

    def options_from(
        min_score: float | None,
        min_area: int | None,
        max_instances: int | None,
        max_per_class: str | None,
        polygons: bool = False,
        attribute_threshold: float = 0.5,
    ) -> ParseOptions:
        try:
            default, caps = pp.parse_max_per_class(max_per_class or None, info.class_names)
        except ValueError as e:
            message = str(e).replace("--max-per-class entry", "entry")
            raise ApiError(422, f"query parameter max_per_class: {message}") from None
        return ParseOptions(
            postprocess=pp.PostprocessOptions(
                min_score=min_score, min_area=min_area, max_per_class=caps, max_default=default
            ),
            max_instances=max_instances,
            polygons=polygons,
            attribute_threshold=attribute_threshold,
        )

    async def detect_upload(request: Request) -> tuple[DecodedImage, dict, Any, dict[str, float]]:
        """Read, decode and detect; returns the image, its raw detections, the batch info and timings."""
        start = time.perf_counter()
        data = await read_upload(request)
        try:
            image = await run_in_threadpool(decode_image, data, settings.max_pixels)
        except ImageInputError as e:
            raise ApiError(e.status, e.message) from None
        decoded = time.perf_counter()
        try:
            detections, batch = await batcher.detect(image.pixels, timeout=settings.request_timeout_s)
        except QueueFullError as e:
            raise ApiError(503, str(e), {"Retry-After": str(e.retry_after)}) from None
        except NotReadyError as e:
            headers = {} if e.failed else {"Retry-After": "5"}
            raise ApiError(503, str(e), headers) from None
        except DetectorClosedError as e:
            raise ApiError(503, str(e), {"Retry-After": "5"}) from None
        except TimeoutError:
            raise ApiError(
                504, f"the model did not answer within {settings.request_timeout_s:g} s (the service is busy)"
            ) from None
        except Exception as e:
            log.exception("inference failed")
            raise ApiError(500, f"inference failed: {type(e).__name__}: {e}") from None
        timings = {"start": start, "decode_ms": 1000.0 * (decoded - start)}
        return image, detections, batch, timings

    @app.post(
        f"/{API_VERSION}/parse",
        response_model=schemas.ParseResponse,
        responses=_ERRORS_DOC,
        openapi_extra=_BODY_DOC,
        summary="Garments of an image as JSON",
        tags=["parse"],
    )
    async def parse(
        request: Request,
        min_score: MinScore = None,
        min_area: MinArea = None,
        max_instances: MaxInstances = None,
        max_per_class: MaxPerClass = None,
        polygons: Polygons = False,
        attribute_threshold: AttributeThreshold = 0.5,
    ) -> Response:
        options = options_from(
            min_score, min_area, max_instances, max_per_class, polygons, attribute_threshold
        )
        image, detections, batch, timings = await detect_upload(request)
        post_start = time.perf_counter()

        def build() -> list[dict]:
            kept = select_detections(detections, options)
            return garments(kept, info.class_names, options, info.attribute_names)

        found = await run_in_threadpool(build)
        end = time.perf_counter()
        body = {
            "image": {
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "mode": image.mode,
                "exif_rotated": image.rotated,
            },
            "model": {"name": info.name, "precision": info.precision},
            "timing": {
                "decode_ms": round(timings["decode_ms"], 2),
                "queue_ms": round(1000.0 * batch.queue_s, 2),
                "inference_ms": round(1000.0 * batch.inference_s, 2),
                "postprocess_ms": round(1000.0 * (end - post_start), 2),
                "total_ms": round(1000.0 * (end - timings["start"]), 2),
            },
            "batch_size": batch.batch_size,
            "garments": found,
        }
        # Built by hand (validated by the tests against the schema): pydantic would re-validate every mask.
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    @app.post(
        f"/{API_VERSION}/overlay",
        responses={200: {"content": {"image/png": {}}, "description": "the overlay PNG"}, **_ERRORS_DOC},
        response_class=Response,
        openapi_extra=_BODY_DOC,
        summary="The image with its garments drawn (PNG)",
        tags=["parse"],
    )
    async def overlay(
        request: Request,
        min_score: MinScore = None,
        min_area: MinArea = None,
        max_instances: MaxInstances = None,
        max_per_class: MaxPerClass = None,
        max_size: OverlaySize = None,
    ) -> Response:
        from fashion.overlay import overlay_png

        options = options_from(min_score, min_area, max_instances, max_per_class)
        image, detections, batch, timings = await detect_upload(request)
        longest = max_size or settings.overlay_max_size

        def draw() -> tuple[bytes, int]:
            kept = select_detections(detections, options)
            png = overlay_png(image.pixels, kept, short_names, max_size=longest, min_size=min(512, longest))
            return png, pp.num_detections(kept)

        png, count = await run_in_threadpool(draw)
        return Response(
            png,
            media_type="image/png",
            headers={
                "X-Garments": str(count),
                "X-Batch-Size": str(batch.batch_size),
                "X-Inference-Ms": f"{1000.0 * batch.inference_s:.1f}",
            },
        )

    @app.get(
        f"/{API_VERSION}/model",
        response_model=schemas.ModelDescription,
        summary="What the model is",
        tags=["model"],
    )
    async def model() -> dict:
        return {
            "name": info.name,
            "preset": info.preset,
            "backbone": info.backbone,
            "classes": [
                {"id": k, "name": info.class_names[k], "source_id": int(info.source_ids[k])}
                for k in range(1, len(info.class_names))
            ],
            "attributes": list(info.attribute_names or []),
            "image": {"resize_mode": info.resize_mode, "min_dim": info.min_dim, "max_dim": info.max_dim},
            "precision": info.precision,
            "package_version": info.package_version,
            "max_batch": info.max_batch,
        }

    @app.get(
        "/healthz", response_model=schemas.HealthResponse, summary="The process answers", tags=["health"]
    )
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.HealthResponse,
        responses={503: {"model": schemas.HealthResponse, "description": "loading, or the warm-up failed"}},
        summary="The model is loaded and warmed up",
        tags=["health"],
    )
    async def readyz() -> Response:
        if batcher.ready:
            return JSONResponse({"status": "ready"})
        if batcher.warm_up_error is not None:
            return JSONResponse(
                {"status": "failed", "message": f"warm-up failed: {batcher.warm_up_error}"}, status_code=503
            )
        return JSONResponse(
            {"status": "loading", "message": "warm-up detection not done yet"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    static = resources.files("fashion.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(
            str(static / "index.html"),
            media_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
        )

    return app


def _preload() -> None:
    """Import what the first request would otherwise wait seconds for."""
    import pycocotools.mask  # noqa: F401
    from PIL import Image
    from skimage.measure import approximate_polygon, find_contours  # noqa: F401  (lazy submodules: seconds)

    import fashion.overlay  # noqa: F401

    Image.init()  # every format plugin, so that content sniffing knows them all


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as ErrorResponse JSON."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors():
            where = " ".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
