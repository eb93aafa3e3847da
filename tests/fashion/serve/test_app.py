"""The HTTP API in-process (FastAPI's TestClient) with a fake detector: every endpoint, every error status,
the post-processing options, attributes, polygons, and concurrent requests sharing detect() calls."""

import io
import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fashion.serve import schemas
from fashion.serve.app import ServiceSettings, create_app

with warnings.catch_warnings():
    # Starlette >= 1.10 prefers the httpx2 package and warns when it falls back to httpx (which every version
    # of Starlette's TestClient can use).
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# pycocotools' decode under numpy 2 (its __array__ takes no copy keyword).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture
def make_client(kit):
    """make_client(detector=None, attributes=False, **settings) -> a started TestClient (closed after)."""
    clients = []

    def make(detector=None, attributes=False, warm_up=None, **settings):
        detector = detector or kit.FakeDetector(attributes=attributes)
        app = create_app(detector, kit.fake_info(attributes), ServiceSettings(**settings), warm_up=warm_up)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        client.detector = detector
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    schemas.ErrorResponse.model_validate(body)
    assert body["status"] == status and body["message"]
    return body


# ------------------------------------------------------------------------------------------------ endpoints
def test_parse_returns_the_documented_json_with_masks_as_coco_rle(make_client, kit):
    client = make_client()
    response = client.post("/v1/parse", files={"file": ("photo.jpg", kit.png_bytes(60, 80), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = schemas.ParseResponse.model_validate(response.json())
    assert (body.image.width, body.image.height, body.image.format) == (80, 60, "PNG")
    assert body.model.name == "fake.h5" and body.model.precision == "float32"
    assert body.batch_size == 1 and body.timing.total_ms >= body.timing.inference_ms > 0
    assert [g.class_name for g in body.garments] == ["shirt, blouse", "trousers", "shoe", "shoe"]
    assert [g.score for g in body.garments] == pytest.approx([0.9, 0.7, 0.5, 0.3])
    expected = kit.FakeDetector().one(np.zeros((60, 80, 3), np.uint8))
    for i, garment in enumerate(body.garments):
        y1, x1, y2, x2 = expected["rois"][i]
        assert (garment.box.x1, garment.box.y1, garment.box.x2, garment.box.y2) == (x1, y1, x2, y2)
        decoded = mask_utils.decode({"size": garment.mask.size, "counts": garment.mask.counts.encode()})
        np.testing.assert_array_equal(decoded.astype(bool), expected["masks"][:, :, i])
        assert garment.area == expected["masks"][:, :, i].sum()
        assert garment.polygons is None and garment.attributes is None


def test_raw_body_and_form_give_the_same_answer_whatever_the_declared_type(make_client, kit):
    client = make_client()
    data = kit.png_bytes(50, 70, seed=3)
    raw = client.post("/v1/parse", content=data, headers={"Content-Type": "text/plain"}).json()
    form = client.post("/v1/parse", files={"image": ("notes.txt", data, "application/pdf")}).json()
    assert raw["garments"] == form["garments"] and raw["image"] == form["image"]


def test_post_processing_options_are_infers(make_client, kit):
    client = make_client()
    data = kit.png_bytes()

    def names(query):
        response = client.post("/v1/parse" + query, content=data)
        assert response.status_code == 200, response.text
        return [(g["class_name"], g["score"]) for g in response.json()["garments"]]

    assert [n for n, _ in names("?min_score=0.6")] == ["shirt, blouse", "trousers"]
    assert [n for n, _ in names("?max_instances=3")] == ["shirt, blouse", "trousers", "shoe"]
    assert [n for n, _ in names("?max_per_class=shoe%3D1")] == ["shirt, blouse", "trousers", "shoe"]
    assert [s for _, s in names("?max_per_class=shoe%3D1")][-1] == pytest.approx(0.5)  # the best shoe
    assert [n for n, _ in names("?max_per_class=0%3Bshoe%3D2")] == ["shoe", "shoe"]
    # min_area: the shirt is 30x40 = 1200 pixels, trousers 30x80, shoes 15x20 = 300.
    assert [n for n, _ in names("?min_area=1000")] == ["shirt, blouse", "trousers"]


def test_polygons_outline_the_masks(make_client, kit):
    client = make_client()
    body = client.post("/v1/parse?polygons=true", content=kit.png_bytes(60, 80)).json()
    for garment in body["garments"]:
        h, w = garment["mask"]["size"]
        mask = mask_utils.decode({"size": [h, w], "counts": garment["mask"]["counts"].encode()})
        assert garment["polygons"] and all(len(p) >= 6 and len(p) % 2 == 0 for p in garment["polygons"])
        drawn = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(garment["polygons"], h, w)))
        iou = np.logical_and(drawn, mask).sum() / np.logical_or(drawn, mask).sum()
        assert iou > 0.9, (garment["class_name"], iou)
        xs, ys = garment["polygons"][0][0::2], garment["polygons"][0][1::2]
        box = garment["box"]
        assert min(xs) >= box["x1"] - 0.5 and max(xs) <= box["x2"] + 0.5
        assert min(ys) >= box["y1"] - 0.5 and max(ys) <= box["y2"] + 0.5


def test_attributes_come_with_names_above_the_threshold(make_client, kit):
    client = make_client(attributes=True)
    body = client.post("/v1/parse", content=kit.png_bytes()).json()
    shirt = body["garments"][0]
    assert [(a["name"], a["score"]) for a in shirt["attributes"]] == [
        ("plain", pytest.approx(0.9)),
        ("short sleeve", pytest.approx(0.8)),
    ]
    assert shirt["attributes"][0]["id"] == 0 and shirt["attributes"][1]["id"] == 3
    assert body["garments"][2]["attributes"] == []  # every score 0.1
    low = client.post("/v1/parse?attribute_threshold=0.25", content=kit.png_bytes()).json()
    assert [a["name"] for a in low["garments"][0]["attributes"]] == ["plain", "short sleeve", "long sleeve"]
    model = client.get("/v1/model").json()
    assert model["attributes"] == kit.ATTRIBUTE_NAMES


def test_exif_orientation_is_applied_before_detection(make_client):
    client = make_client()
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 20, 30)).save(buffer, format="JPEG", exif=exif.tobytes())
    body = client.post("/v1/parse", content=buffer.getvalue()).json()
    assert (body["image"]["width"], body["image"]["height"], body["image"]["exif_rotated"]) == (60, 80, True)
    assert body["garments"][0]["mask"]["size"] == [80, 60]
    assert client.detector.calls == [1]


def test_overlay_is_a_png_of_the_image_with_its_garments(make_client, kit):
    client = make_client()
    response = client.post("/v1/overlay?max_size=400", content=kit.png_bytes(60, 80))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-garments"] == "4"
    with Image.open(io.BytesIO(response.content)) as picture:
        assert picture.format == "PNG" and picture.size == (400, 300)
        pixels = np.asarray(picture.convert("RGB"))
    assert len({tuple(p) for p in pixels.reshape(-1, 3)[::7]}) > 50  # drawn over, not blank
    few = client.post("/v1/overlay?min_score=0.8", content=kit.png_bytes(60, 80))
    assert few.headers["x-garments"] == "1"


def test_model_health_and_readiness(make_client, kit):
    client = make_client()
    model = client.get("/v1/model").json()
    schemas.ModelDescription.model_validate(model)
    assert [c["name"] for c in model["classes"]] == kit.CLASS_NAMES[1:]
    assert [c["id"] for c in model["classes"]] == [1, 2, 3] and model["classes"][2]["source_id"] == 23
    assert model["backbone"] == "fake" and model["precision"] == "float32" and model["attributes"] == []
    assert model["image"] == {"resize_mode": "square", "min_dim": 128, "max_dim": 128}
    assert model["package_version"] == "0.0-test" and model["max_batch"] == 4
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"


def test_openapi_documents_the_api(make_client):
    client = make_client()
    spec = client.get("/openapi.json").json()
    assert {"/v1/parse", "/v1/overlay", "/v1/model", "/healthz", "/readyz"} <= set(spec["paths"])
    parse = spec["paths"]["/v1/parse"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(parse["requestBody"]["content"])
    assert {"min_score", "max_instances", "max_per_class", "min_area", "polygons", "attribute_threshold"} <= {
        p["name"] for p in parse["parameters"]
    }
    assert {"400", "413", "415", "422", "503", "504"} <= set(parse["responses"])
    assert {"ParseResponse", "Garment", "RLEMask", "ErrorResponse", "ModelDescription"} <= set(
        spec["components"]["schemas"]
    )
    assert client.get("/docs").status_code == 200


def test_the_page_and_its_files_are_served_without_outside_resources(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/static/app.js", "/static/style.css"):
        assert client.get(path).status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert "//cdn" not in text


# ------------------------------------------------------------------------------------------------ errors
def test_every_error_is_json_with_a_message(make_client, kit):
    client = make_client(max_upload_bytes=100_000, max_pixels=100_000)
    error_of(client.post("/v1/parse", content=b""), 400)
    error_of(client.post("/v1/parse", content=kit.png_bytes()[:200]), 400)
    form_without_file = client.post(
        "/v1/parse",
        content=b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert "no file" in error_of(form_without_file, 400)["message"]
    assert "no such endpoint" in error_of(client.get("/v2/parse"), 404)["message"]
    error_of(client.get("/v1/parse"), 405)
    assert "100000" in error_of(client.post("/v1/parse", content=b"\0" * 100_001), 413)["message"]
    big = kit.encode(np.zeros((400, 400, 3), np.uint8))  # 160 000 pixels, a small file
    assert "pixels" in error_of(client.post("/v1/parse", content=big), 413)["message"]
    error_of(client.post("/v1/parse", content=b"just some text"), 415)
    error_of(client.post("/v1/overlay", content=b"just some text"), 415)
    assert (
        "min_score"
        in error_of(client.post("/v1/parse?min_score=1.5", content=kit.png_bytes()), 422)["message"]
    )
    error_of(client.post("/v1/parse?max_instances=0", content=kit.png_bytes()), 422)
    assert (
        "hat"
        in error_of(client.post("/v1/parse?max_per_class=hat%3D1", content=kit.png_bytes()), 422)["message"]
    )
    error_of(client.post("/v1/overlay?max_size=10", content=kit.png_bytes()), 422)
    assert client.detector.calls == []  # no bad request reached the model


def test_a_chunked_body_over_the_limit_is_413(make_client):
    client = make_client(max_upload_bytes=50_000)

    def chunks():
        for _ in range(10):
            yield b"\0" * 10_000

    assert "over the limit of 50000" in error_of(client.post("/v1/parse", content=chunks()), 413)["message"]

    def form_chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        yield from chunks()
        yield b"\r\n--b--\r\n"

    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    error_of(client.post("/v1/parse", content=form_chunks(), headers=multipart), 413)
    assert client.detector.calls == []


def test_paths_outside_the_page_files_are_not_served(make_client):
    client = make_client()
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f..%2fsetup.py", "/setup.py"):
        assert client.get(path).status_code == 404, path


def test_queue_full_is_503_with_retry_after(make_client, kit):
    gate, taken = threading.Event(), threading.Event()

    class Held(kit.FakeDetector):
        def detect(self, images):
            taken.set()
            gate.wait(10)
            return super().detect(images)

    client = make_client(Held(), max_batch=1, max_wait_ms=0, max_queue=1)
    data = kit.png_bytes()
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(client.post, "/v1/parse", content=data)  # taken by the worker, held
        batcher = client.app.state.batcher
        assert taken.wait(10), "the worker did not take the first image"
        queued = pool.submit(client.post, "/v1/parse", content=data)
        _wait_for(lambda: batcher.queued == 1, "the second image to be queued")
        refused = client.post("/v1/parse", content=data)
        gate.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200
    body = error_of(refused, 503)
    assert "busy" in body["message"] and int(refused.headers["retry-after"]) >= 1


def test_not_ready_is_503_until_the_warm_up_is_done(make_client, kit):
    release = threading.Event()
    client = make_client(warm_up=lambda: release.wait(10))
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "loading"
    refused = client.post("/v1/parse", content=kit.png_bytes())
    assert "loading" in error_of(refused, 503)["message"] and refused.headers["retry-after"]
    release.set()
    client.app.state.batcher.wait_ready(10)
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/parse", content=kit.png_bytes()).status_code == 200


def test_a_failed_warm_up_says_why(make_client, kit):
    def broken():
        raise RuntimeError("graph does not build")

    client = make_client(warm_up=broken)
    client.app.state.batcher.wait_ready(10)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "graph does not build" in ready.json()["message"]
    assert (
        "graph does not build" in error_of(client.post("/v1/parse", content=kit.png_bytes()), 503)["message"]
    )


def test_a_slow_model_is_504_and_a_failing_one_500(make_client, kit):
    slow = make_client(kit.FakeDetector(delay=1.0), request_timeout_s=0.2)
    assert "0.2 s" in error_of(slow.post("/v1/parse", content=kit.png_bytes()), 504)["message"]
    failing = make_client(kit.FakeDetector(fail_on=33))
    body = error_of(failing.post("/v1/parse", content=kit.png_bytes(33, 40)), 500)
    assert "refuses images of height 33" in body["message"]
    assert failing.post("/v1/parse", content=kit.png_bytes(34, 40)).status_code == 200


# ------------------------------------------------------------------------------------------------ batching
def test_concurrent_requests_are_batched(make_client, kit):
    fake = kit.FakeDetector(delay=0.1)
    client = make_client(fake, max_batch=4, max_wait_ms=50, max_queue=64)
    images = [kit.png_bytes(40 + i, 50, seed=i) for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda data: client.post("/v1/parse", content=data), images))
    assert all(r.status_code == 200 for r in responses)
    for i, response in enumerate(responses):  # each answer is its own image's
        assert response.json()["image"]["height"] == 40 + i
    assert len(fake.calls) < len(images) and max(fake.calls) <= 4 and sum(fake.calls) == len(images)
    assert max(r.json()["batch_size"] for r in responses) > 1


def _wait_for(condition, what, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_responses_are_plain_json(make_client, kit):
    client = make_client()
    response = client.post("/v1/parse", content=kit.png_bytes())
    assert response.headers["content-type"] == "application/json"
    json.loads(response.content)
