"""``python -m fashion.serve`` as a real uvicorn process on a free loopback port, with the tiny preset's random
weights: what the checkpoint says, real detections, batches of concurrent requests that agree with a lone
request's answer, and SIGTERM finishing the requests in flight.

Slow (a minute on a loaded 2-core machine, mostly the process's TensorFlow start-up and tracing): CI runs the
command in-process instead (test_command.py) and the page on a uvicorn thread (test_browser.py).
"""

import io
import json
import signal
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from fashion.cli_common import resolve_categories

pytestmark = pytest.mark.slow


def request(url, data=None, timeout=120):
    """(status, headers, body bytes) of a GET, or of a POST of ``data`` as the raw body."""
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def sample(kit):
    return kit.SAMPLE_IMAGES[0].read_bytes()


def test_the_process_serves_the_checkpoint_on_loopback(served, sample):
    assert f"Serving on http://127.0.0.1:{served.port}/" in served.log
    assert "Ready: warm-up detection done" in served.log
    assert request(served.url + "/healthz")[0] == 200 and request(served.url + "/readyz")[0] == 200

    status, _, body = request(served.url + "/v1/model")
    model = json.loads(body)
    names = [c.name for c in resolve_categories("tiny")]
    assert status == 200 and [c["name"] for c in model["classes"]] == names  # from the checkpoint's metadata
    assert model["preset"] == "tiny" and model["name"] == "mask_rcnn_fashion_0001.h5"
    assert model["max_batch"] == 4 and model["precision"] == "float32"

    status, _, body = request(served.url + "/v1/parse", sample)
    parsed = json.loads(body)
    with Image.open(io.BytesIO(sample)) as image:
        width, height = image.size
    assert status == 200 and (parsed["image"]["width"], parsed["image"]["height"]) == (width, height)
    assert len(parsed["garments"]) == 10  # DETECTION_MAX_INSTANCES of the tiny preset; min confidence 0
    assert all(g["mask"]["size"] == [height, width] and g["class_name"] in names for g in parsed["garments"])

    status, headers, png = request(served.url + "/v1/overlay", sample)
    assert status == 200 and headers["content-type"] == "image/png" and headers["x-garments"] == "10"
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG" and max(picture.size) >= 512

    status, _, body = request(served.url + "/v1/parse", b"GIF89a but not really")
    assert status == 415 and json.loads(body)["message"]  # a GIF signature alone is no image


def test_concurrent_requests_run_in_batches_and_agree_with_a_lone_request(served, sample):
    lone = json.loads(request(served.url + "/v1/parse", sample)[2])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: request(served.url + "/v1/parse", sample), range(8)))
    assert all(status == 200 for status, _, _ in answers)
    parsed = [json.loads(body) for _, _, body in answers]
    assert max(p["batch_size"] for p in parsed) > 1, [p["batch_size"] for p in parsed]
    for p in parsed:  # the same image gives the same garments alone and within a batch
        assert [g["class_id"] for g in p["garments"]] == [g["class_id"] for g in lone["garments"]]
        np.testing.assert_allclose(
            [g["score"] for g in p["garments"]], [g["score"] for g in lone["garments"]], atol=1e-4
        )
        for a, b in zip(p["garments"], lone["garments"]):
            assert max(abs(a["box"][k] - b["box"][k]) for k in ("x1", "y1", "x2", "y2")) <= 1


def test_sigterm_finishes_the_requests_in_flight(served, sample):
    results = []
    first_answer = threading.Event()

    def client(_):
        answer = request(served.url + "/v1/parse", sample)
        first_answer.set()
        return answer

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(client, i) for i in range(10)]
        assert first_answer.wait(120)
        served.proc.send_signal(signal.SIGTERM)  # up to 4 per batch: most of the 10 are still in flight
        results = [f.result() for f in futures]
    assert [status for status, _, _ in results] == [200] * 10
    # uvicorn re-raises the signal once it has shut down gracefully: the process ends as SIGTERM ends it.
    assert served.proc.wait(60) in (0, -signal.SIGTERM)
    assert "Stopped:" in served.log and "Traceback" not in served.log
