"""Download of published weight files (Matterport's COCO-trained Mask R-CNN by default), safely.

What is published where is the weights catalogue, :mod:`mrcnn.catalogue`.

The file is streamed to ``<path>.part``, checked (size, optional SHA-256) and only then renamed into place,
so an interrupted or corrupt download never leaves a file that looks like valid weights.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

from tqdm import tqdm

from mrcnn.catalogue import COCO

__all__ = [
    "COCO_MODEL_URL",
    "COCO_MODEL_SIZE",
    "WeightsDownloadError",
    "WeightsConnectionError",
    "download_trained_weights",
    "file_digest",
]

# Matterport's names for the COCO entry of the weights catalogue (mrcnn.catalogue).
COCO_MODEL_URL = COCO.url
COCO_MODEL_SIZE = COCO.size  # bytes

_CHUNK_BYTES = 1 << 20


class WeightsDownloadError(RuntimeError):
    """The weights could not be downloaded, or the download was not the expected file."""


class WeightsConnectionError(WeightsDownloadError, ConnectionError):
    """The weights server could not be reached or the connection failed mid-download."""


def download_trained_weights(
    coco_model_path: str | os.PathLike,
    verbose: int = 1,
    url: str = COCO_MODEL_URL,
    expected_size: int | None = COCO_MODEL_SIZE,
    sha256: str | None = None,
    timeout: float = 60.0,
    md5: str | None = None,
) -> str:
    """Download COCO-trained weights to ``coco_model_path`` unless a good copy is already there.

    Args:
        coco_model_path: destination file, e.g. ``"mask_rcnn_coco.h5"``; its folder is created if needed.
        verbose: 0 silent; 1 prints what happens and shows a progress bar.
        url: where to download from (any URL urllib opens, ``file://`` included).
        expected_size: size in bytes the file must have; None skips the check (set it to None or the right
            size when ``url`` is not the COCO weights).
        sha256: hex digest the file must have; None skips the check.
        md5: the same for an MD5 digest (what Keras publishes for its weight files).
        timeout: seconds to wait on the connection before giving up.

    Returns:
        ``coco_model_path`` as a string.

    Raises:
        WeightsConnectionError: the server could not be reached (also a ``ConnectionError``).
        WeightsDownloadError: the download had the wrong size or checksum (also a ``RuntimeError``).
        In every failure case no ``.part`` file and no file at ``coco_model_path`` is left behind
        (an existing file there is not touched).
    """
    path = os.fspath(coco_model_path)
    digests = {name: value for name, value in (("sha256", sha256), ("md5", md5)) if value is not None}
    if _is_complete(path, expected_size, digests):
        if verbose > 0:
            print(f"Pretrained model already at {path}")
        return path

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    part = path + ".part"
    if verbose > 0:
        print(f"Downloading pretrained model to {path} ...")
    try:
        _stream(url, part, expected_size, verbose, timeout)
        _verify(part, url, path, expected_size, digests)
        os.replace(part, path)
    except BaseException:
        if os.path.exists(part):
            os.remove(part)
        raise
    if verbose > 0:
        print("... done downloading pretrained model!")
    return path


def _stream(url: str, part: str, expected_size: int | None, verbose: int, timeout: float) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _connection_error(url, part[: -len(".part")], e) from e
    with response, open(part, "wb") as out:
        total = response.headers.get("Content-Length") if response.headers else None
        total = int(total) if total and total.isdigit() else expected_size
        with tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=verbose <= 0, desc="mask_rcnn"
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except (urllib.error.URLError, OSError) as e:
                    raise _connection_error(url, part[: -len(".part")], e) from e
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))


def _verify(part: str, url: str, path: str, expected_size: int | None, digests: dict[str, str]) -> None:
    size = os.path.getsize(part)
    if expected_size is not None and size != expected_size:
        raise WeightsDownloadError(
            f"Downloaded {size} bytes from {url} but expected {expected_size}: the download is incomplete "
            f"or not the right file. Nothing was saved. Try again, or download the file yourself and place "
            f"it at {path}, or use another weights option."
        )
    for algorithm, expected in digests.items():
        digest = file_digest(part, algorithm)
        if digest.lower() != expected.lower():
            raise WeightsDownloadError(
                f"Checksum mismatch for {url}: got {algorithm} {digest}, expected {expected}. Nothing was "
                f"saved. Download the file yourself and place it at {path}, or use another weights option."
            )


def _is_complete(path: str, expected_size: int | None, digests: dict[str, str]) -> bool:
    if not os.path.isfile(path):
        return False
    if expected_size is not None and os.path.getsize(path) != expected_size:
        return False
    return all(file_digest(path, a).lower() == v.lower() for a, v in digests.items())


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (``algorithm``: a :mod:`hashlib` name, e.g. "sha256", "md5")."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _connection_error(url: str, path: str, cause: BaseException) -> WeightsConnectionError:
    return WeightsConnectionError(
        f"Could not download the pretrained Mask R-CNN weights from {url} ({cause}). "
        f"Check the network connection, or download the file some other way and place it at {path}, "
        f"or use another weights option (e.g. 'imagenet', 'last', or a local .h5 file)."
    )
