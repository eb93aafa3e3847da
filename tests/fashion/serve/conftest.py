"""A fake detector and image helpers for the service tests; the service with the fake detector on uvicorn in a
thread (``fake_served``, fast: the browser test on CI); and a real service process (``served``) on the tiny
preset's random weights (slow: the process tests and the browser test's slow variant)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion.serve.model import ModelInfo

REPO = Path(__file__).resolve().parents[3]
SAMPLE_IMAGES = sorted((REPO / "fashion" / "sample" / "train").glob("*.jpg"))

CLASS_NAMES = ["BG", "shirt, blouse", "trousers", "shoe"]
ATTRIBUTE_NAMES = ["plain", "striped", "dotted", "short sleeve", "long sleeve"]


class FakeDetector:
    """``detect(images)`` with MaskRCNN.detect's output, computed from each image's size alone.

    Every image gets four instances: a shirt (score 0.9) in the top-left quarter, trousers (0.7) in the
    bottom half, and two shoes (0.5, 0.3) in the bottom corners; ``attributes``: also [4, 5] scores.
    calls: the batch size of each call. delay: seconds each call sleeps (to let requests pile up).
    fail_on: a height whose images make detect() raise.
    """

    def __init__(self, delay: float = 0.0, attributes: bool = False, fail_on: int | None = None):
        self.delay = delay
        self.attributes = attributes
        self.fail_on = fail_on
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def detect(self, images):
        with self._lock:
            self.calls.append(len(images))
        if self.delay:
            time.sleep(self.delay)
        return [self.one(image) for image in images]

    def one(self, image) -> dict:
        h, w = image.shape[:2]
        if self.fail_on is not None and h == self.fail_on:
            raise ValueError(f"the fake model refuses images of height {h}")
        boxes = np.array(
            [
                [0, 0, h // 2, w // 2],
                [h // 2, 0, h, w],
                [3 * h // 4, 0, h, w // 4],
                [3 * h // 4, 3 * w // 4, h, w],
            ],
            np.int32,
        )
        masks = np.zeros((h, w, 4), bool)
        for i, (y1, x1, y2, x2) in enumerate(boxes):
            masks[y1:y2, x1:x2, i] = True
        out = {
            "rois": boxes,
            "class_ids": np.array([1, 2, 3, 3], np.int32),
            "scores": np.array([0.9, 0.7, 0.5, 0.3], np.float32),
            "masks": masks,
        }
        if self.attributes:
            out["attributes"] = np.array(
                [[0.9, 0.1, 0.2, 0.8, 0.3], [0.2, 0.6, 0.1, 0.0, 0.0], [0.1] * 5, [0.5, 0.0, 0.0, 0.0, 0.0]],
                np.float32,
            )
        return out


def fake_info(attributes: bool = False, max_batch: int = 4) -> ModelInfo:
    return ModelInfo(
        name="fake.h5",
        class_names=list(CLASS_NAMES),
        source_ids=[0, 1, 7, 23],
        backbone="fake",
        resize_mode="square",
        min_dim=128,
        max_dim=128,
        precision="float32",
        package_version="0.0-test",
        attribute_names=list(ATTRIBUTE_NAMES) if attributes else None,
        preset="tiny",
        max_batch=max_batch,
    )


def encode(array: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_bytes(height: int = 60, width: int = 80, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


class Kit:
    """The helpers above, for the test modules (``--import-mode=importlib`` cannot import conftest)."""

    FakeDetector = FakeDetector
    CLASS_NAMES = CLASS_NAMES
    ATTRIBUTE_NAMES = ATTRIBUTE_NAMES
    SAMPLE_IMAGES = SAMPLE_IMAGES
    REPO = REPO
    fake_info = staticmethod(fake_info)
    encode = staticmethod(encode)
    png_bytes = staticmethod(png_bytes)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


# ------------------------------------------------------------------------------------------ real servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedService:
    """uvicorn serving ``app`` on 127.0.0.1:port from a thread of the test process (no TensorFlow needed)."""

    def __init__(self, app, timeout: float = 30.0):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="session")
def fake_served():
    """The service of the fake detector (with attributes, batches of up to 4) on a real uvicorn server."""
    from fashion.serve.app import ServiceSettings, create_app

    app = create_app(FakeDetector(attributes=True), fake_info(attributes=True), ServiceSettings(max_batch=4))
    service = ThreadedService(app)
    yield service
    service.stop()


class ServiceProcess:
    """``python -m fashion.serve`` on 127.0.0.1:port, its output collected in ``log``."""

    def __init__(self, weights: str, extra: tuple[str, ...] = ()):
        self.weights = weights
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(weights).with_name(f"serve_{self.port}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fashion.serve", "--weights", weights, "--port", str(self.port), *extra],
            cwd=str(REPO),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode}:\n{self.log}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the service was not ready within {timeout} s:\n{self.log}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def service_weights(tiny_random_weights, tmp_path_factory) -> str:
    """An .h5 of the tiny preset's random weights (seed 2, the file test_infer uses) that records its classes
    (thesis11), preset and dataset format, as a checkpoint written by fashion/train.py does: --weights alone
    says what it is."""
    import shutil

    import h5py

    from fashion.cli_common import resolve_categories
    from fashion.config import make_config
    from mrcnn.metadata import CheckpointMetadata, write_metadata

    categories = resolve_categories("tiny")
    metadata = CheckpointMetadata.from_config(
        make_config("tiny", inference=True),
        class_names=["BG"] + [c.name for c in categories],
        class_source_ids=[0] + [c.id for c in categories],
        preset="tiny",
        dataset_format="imaterialist",
    )
    path = str(tmp_path_factory.mktemp("serve_weights") / "mask_rcnn_fashion_0001.h5")
    shutil.copyfile(tiny_random_weights(2), path)
    with h5py.File(path, "r+") as f:
        write_metadata(f, metadata)
    return path


@pytest.fixture(scope="session")
def _service_holder(service_weights):
    holder: dict[str, ServiceProcess] = {}
    yield holder
    if "service" in holder:
        holder["service"].stop()


@pytest.fixture
def served(_service_holder, service_weights) -> ServiceProcess:
    """A ready service on the tiny preset's random weights (seed 2) with --min-confidence 0, so that every
    image gets DETECTION_MAX_INSTANCES garments; started once, again only if a test stopped it."""
    service = _service_holder.get("service")
    if service is None or service.proc.poll() is not None:
        service = ServiceProcess(
            service_weights, ("--min-confidence", "0", "--max-batch", "4", "--precision", "float32")
        )
        _service_holder["service"] = service
        try:
            service.wait_ready()
        except Exception:
            service.stop()
            raise
    return service
