"""The service in a real uvicorn process on a free loopback port, with the fake detector (no TensorFlow, so
it starts in seconds): concurrent requests are answered in batches, and SIGTERM finishes every request in
flight before the process ends. test_process.py (slow) does the same with ``python -m fashion.serve`` and a
real model."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# The fake detector of conftest.py (imported as a plain module) sleeping 0.4 s per detect() call, batches of 2.
SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
import uvicorn
import conftest
from fashion.serve.app import ServiceSettings, create_app

app = create_app(conftest.FakeDetector(delay=0.4), conftest.fake_info(), ServiceSettings(max_batch=2))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", timeout_graceful_shutdown=30)
"""


def post(url: str, data: bytes) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def process(kit, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(HERE), str(port)],
        cwd=str(kit.REPO),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError((tmp_path / "server.log").read_text())
            time.sleep(0.2)
        yield proc, url, tmp_path / "server.log"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_sigterm_finishes_the_requests_in_flight(process, kit):
    proc, url, log = process
    image = kit.png_bytes(60, 80)
    first_answer = threading.Event()

    def client(_):
        answer = post(url + "/v1/parse", image)
        first_answer.set()
        return answer

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        assert first_answer.wait(60)
        proc.send_signal(signal.SIGTERM)  # 2 images per 0.4 s call: most of the 8 are still in flight
        answers = [f.result() for f in futures]
    assert [status for status, _ in answers] == [200] * 8, answers
    assert max(body["batch_size"] for _, body in answers) == 2
    assert all(len(body["garments"]) == 4 for _, body in answers)
    # uvicorn re-raises the signal once it has shut down gracefully: the process ends as SIGTERM ends it.
    assert proc.wait(60) in (0, -signal.SIGTERM)
    assert "Traceback" not in log.read_text()
