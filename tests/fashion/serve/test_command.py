"""``fashion-serve`` in-process on the tiny preset's random weights: the command builds the model the way infer
does (the checkpoint's metadata alone says what it is, one start-up line), and the app it would serve answers
with real detections, in batches that agree with lone requests. uvicorn itself is replaced by a stand-in that
keeps the app (test_process.py, slow, runs the real process)."""

import io
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from fashion.cli_common import resolve_categories
from fashion.serve import cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2 (see test_app.py)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="module")
def command(service_weights):
    """(exit status, stdout, the keyword arguments uvicorn.run got, its app) of fashion-serve on the
    checkpoint with --max-batch 2 --min-confidence 0 and a 300 ms batching window (room for the tests'
    concurrent requests on a loaded machine)."""
    import contextlib

    import uvicorn

    got = {}
    real_run = uvicorn.run
    uvicorn.run = lambda app, **kwargs: got.update(app=app, **kwargs)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            argv = ["--weights", service_weights, "--port", "0", "--max-batch", "2", "--max-wait-ms", "300"]
            status = cli.main([*argv, "--min-confidence", "0", "--precision", "float32"])
    finally:
        uvicorn.run = real_run
    app = got.pop("app", None)
    return status, out.getvalue(), got, app


@pytest.fixture(scope="module")
def client(command):
    app = command[3]
    with TestClient(app) as client:  # starts the inference thread, which runs the warm-up
        for _ in range(1200):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.1)
        yield client


def test_the_command_builds_the_checkpoints_model_and_says_so_in_one_line(command):
    status, out, uvicorn_kwargs, app = command
    assert status == 0 and app is not None
    lines = out.splitlines()
    assert lines[0].startswith("Running on ") and ", float32" in lines[0]  # start_runtime's line
    assert lines[1].startswith("Model: mask_rcnn_fashion_0001.h5 (preset tiny, small, 11 classes)")
    assert "batches of up to 2 (--max-batch)" in lines[1]
    assert lines[2].startswith("Serving on http://127.0.0.1:0/")
    assert uvicorn_kwargs["host"] == "127.0.0.1" and uvicorn_kwargs["port"] == 0


def test_the_app_serves_real_detections_with_the_checkpoints_classes(client, kit):
    assert client.get("/readyz").status_code == 200
    model = client.get("/v1/model").json()
    names = [c.name for c in resolve_categories("tiny")]
    assert [c["name"] for c in model["classes"]] == names  # from the checkpoint's metadata
    assert model["preset"] == "tiny" and model["precision"] == "float32" and model["max_batch"] == 2

    sample = kit.SAMPLE_IMAGES[0].read_bytes()
    response = client.post("/v1/parse", content=sample)
    assert response.status_code == 200, response.text
    parsed = response.json()
    with Image.open(io.BytesIO(sample)) as image:
        width, height = image.size
    assert (parsed["image"]["width"], parsed["image"]["height"]) == (width, height)
    assert len(parsed["garments"]) == 10  # DETECTION_MAX_INSTANCES of the tiny preset; min confidence 0
    assert all(g["mask"]["size"] == [height, width] and g["class_name"] in names for g in parsed["garments"])


def test_concurrent_requests_share_a_batch_and_agree_with_a_lone_request(client, kit, monkeypatch):
    sample = kit.SAMPLE_IMAGES[1].read_bytes()
    lone = client.post("/v1/parse", content=sample).json()
    # Three requests at once. The worker takes the first alone when nothing else is queued yet (a lone client
    # never waits for company), else the first two; that detect() call is held here until the rest are queued,
    # so they go into one call whatever the load: batches of 1 and 2, in either order.
    batcher = client.app.state.batcher
    real_detect, held = batcher._detect, threading.Event()

    def detect(images):
        if not held.is_set():
            held.set()
            deadline = time.monotonic() + 30  # within the service's 60 s request timeout
            while len(images) + batcher.queued < 3 and time.monotonic() < deadline:
                time.sleep(0.005)
        return real_detect(images)

    monkeypatch.setattr(batcher, "_detect", detect)
    answers = []

    def post():
        response = client.post("/v1/parse", content=sample)
        answers.append(
            response.json() if response.status_code == 200 else (response.status_code, response.text)
        )

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(a, dict) for a in answers), answers
    assert sorted(a["batch_size"] for a in answers) == [1, 2, 2], answers
    for answer in answers:  # the same image gives the same garments alone and within a batch
        assert [g["class_id"] for g in answer["garments"]] == [g["class_id"] for g in lone["garments"]]
        np.testing.assert_allclose(
            [g["score"] for g in answer["garments"]], [g["score"] for g in lone["garments"]], atol=1e-4
        )
        for a, b in zip(answer["garments"], lone["garments"]):
            assert max(abs(a["box"][k] - b["box"][k]) for k in ("x1", "y1", "x2", "y2")) <= 1
