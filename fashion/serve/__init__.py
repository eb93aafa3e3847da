"""The fashion-parsing service: an HTTP API and an upload page over a trained checkpoint.

``fashion-serve --weights last`` (or ``python -m fashion.serve``) starts it; see :mod:`fashion.serve.cli`.
:func:`fashion.serve.app.create_app` builds the FastAPI application around any detector (tests pass a fake).

Modules: ``app`` (endpoints, errors, limits), ``batching`` (requests grouped into ``detect()`` batches on one
inference thread), ``images`` (upload bytes -> RGB, with content sniffing and a pixel limit), ``results``
(detections -> JSON garments), ``model`` (the checkpoint's model and its description), ``schemas`` (the
OpenAPI documents), ``static/`` (the page).
"""

from fashion.serve.app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
