import functools
import hashlib
import http.server
import os
import socket
import threading

import pytest

from mrcnn.download import (
    COCO_MODEL_SIZE,
    COCO_MODEL_URL,
    WeightsConnectionError,
    WeightsDownloadError,
    download_trained_weights,
)

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # more than one 1 MiB chunk
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "weights.h5").write_bytes(PAYLOAD)
    return folder


@pytest.fixture
def http_url(source):
    handler = functools.partial(_QuietHandler, directory=str(source))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/weights.h5"
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mask_rcnn_coco.h5"


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_constants():
    assert (
        COCO_MODEL_URL == "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
    )
    assert COCO_MODEL_SIZE == 257557808


def test_http_download_success_with_size_and_checksum(tmp_path, http_url, capsys):
    dest = tmp_path / "out" / "mask_rcnn_coco.h5"
    result = download_trained_weights(
        dest, verbose=1, url=http_url, expected_size=len(PAYLOAD), sha256=DIGEST
    )
    assert result == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["mask_rcnn_coco.h5"]
    assert "done downloading" in capsys.readouterr().out


def test_file_url_download(tmp_path, source):
    dest = tmp_path / "w.h5"
    url = (source / "weights.h5").as_uri()
    download_trained_weights(str(dest), verbose=0, url=url, expected_size=None)
    assert dest.read_bytes() == PAYLOAD


def test_size_mismatch_leaves_no_file(tmp_path, http_url):
    dest = tmp_path / "w.h5"
    with pytest.raises(WeightsDownloadError, match="expected") as info:
        download_trained_weights(dest, verbose=0, url=http_url, expected_size=len(PAYLOAD) + 1)
    assert isinstance(info.value, RuntimeError)
    assert _leftovers(tmp_path) == ["server"]


def test_checksum_mismatch_leaves_no_file(tmp_path, source):
    dest = tmp_path / "w.h5"
    url = (source / "weights.h5").as_uri()
    with pytest.raises(WeightsDownloadError, match="sha256"):
        download_trained_weights(dest, verbose=0, url=url, expected_size=len(PAYLOAD), sha256="0" * 64)
    assert _leftovers(tmp_path) == ["server"]


def test_unreachable_server_gives_clear_error_and_no_partial_file(tmp_path):
    dest = tmp_path / "mask_rcnn_coco.h5"
    url = _closed_port_url()
    with pytest.raises(WeightsConnectionError) as info:
        download_trained_weights(dest, verbose=0, url=url)
    message = str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, RuntimeError)
    assert "Could not download" in message and url in message
    assert str(dest) in message and "another weights option" in message
    assert _leftovers(tmp_path) == []


def test_missing_file_on_server_is_a_connection_error(tmp_path, http_url):
    with pytest.raises(WeightsConnectionError, match="404"):
        download_trained_weights(tmp_path / "w.h5", verbose=0, url=http_url.replace("weights", "nothere"))
    assert _leftovers(tmp_path) == ["server"]


def test_existing_complete_file_is_not_downloaded_again(tmp_path):
    dest = tmp_path / "w.h5"
    dest.write_bytes(b"abcd")
    # The URL is unreachable: success proves nothing was fetched.
    assert download_trained_weights(dest, verbose=0, url=_closed_port_url(), expected_size=4) == str(dest)
    assert dest.read_bytes() == b"abcd"


def test_existing_file_of_wrong_size_is_replaced(tmp_path, http_url):
    dest = tmp_path / "w.h5"
    dest.write_bytes(b"truncated")
    download_trained_weights(dest, verbose=0, url=http_url, expected_size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_failed_redownload_keeps_existing_file(tmp_path):
    dest = tmp_path / "w.h5"
    dest.write_bytes(b"old")
    with pytest.raises(WeightsConnectionError):
        download_trained_weights(dest, verbose=0, url=_closed_port_url(), expected_size=10)
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["w.h5"]
