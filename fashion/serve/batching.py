"""Concurrent requests grouped into one ``detect()`` call, run by one inference thread off the event loop.

:class:`BatchingDetector` owns a bounded queue and one worker thread. A request coroutine calls
:meth:`BatchingDetector.detect`, which puts the image on the queue (or raises :class:`QueueFullError` at once
when the queue is full: the service answers 503 with ``Retry-After``, never builds an unbounded backlog) and
awaits an asyncio future. The worker takes the oldest image, then whatever else arrives within
``max_wait_s``, up to ``max_batch`` images, and runs ``detect(images)`` once for all of them; it waits only
while requests come concurrently (another image is queued, or the previous call had several): a lone client
never pays the window (measured with bench/serve.py, the fixed 10 ms wait cost one client 20% of its
throughput). TensorFlow
releases the GIL while it computes, so the event loop keeps accepting, decoding and answering requests.

A request that gives up (its timeout passed) while still queued is skipped, not computed. If a batch fails,
each of its images is run alone once more, so one bad image fails only its own request.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BatchInfo",
    "BatchingDetector",
    "DetectorClosedError",
    "NotReadyError",
    "QueueFullError",
]

DetectFn = Callable[[Sequence[np.ndarray]], list[dict]]


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue`` images already; ``retry_after``: seconds after which to try again."""

    def __init__(self, retry_after: int, max_queue: int):
        super().__init__(
            f"the service is busy: {max_queue} images are waiting for the model; retry in {retry_after} s"
        )
        self.retry_after = retry_after


class NotReadyError(RuntimeError):
    """The model is not warmed up yet (or its warm-up failed: ``failed``)."""

    def __init__(self, message: str, failed: bool = False):
        super().__init__(message)
        self.failed = failed


class DetectorClosedError(RuntimeError):
    """The service is shutting down and takes no new images."""


@dataclass(frozen=True)
class BatchInfo:
    """How one image was run: ``batch_size`` images in its ``detect()`` call, ``queue_s`` seconds waiting
    before that call started, ``inference_s`` seconds the call took."""

    batch_size: int
    queue_s: float
    inference_s: float


@dataclass
class _Job:
    image: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  # set on the event loop when the request stops waiting


_STOP = object()


def _deliver(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    """Runs on the event loop: completes ``future`` unless it was cancelled meanwhile."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BatchingDetector:
    """One inference thread serving :meth:`detect` calls from an event loop in batches.

    Args:
        detect: ``detect(images) -> [detections dict per image]`` (``MaskRCNN.detect`` or any callable with its
            contract); called only from the worker thread.
        max_batch: the most images per call.
        max_wait_s: how long the worker waits for more images once it has one (seconds), while requests come
            concurrently; a lone image (nothing else queued, the previous call had one image) runs at once.
        max_queue: the most images waiting (not counting the batch being computed).
        warm_up: called once on the worker thread before the first request (e.g. a detection on a blank
            image, which traces the graph); the detector is ready when it returns.
    """

    def __init__(
        self,
        detect: DetectFn,
        max_batch: int = 4,
        max_wait_s: float = 0.01,
        max_queue: int = 32,
        warm_up: Callable[[], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self._detect = detect
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_queue = int(max_queue)
        self._warm_up = warm_up
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False
        self._warm_up_error: str | None = None
        self._batch_seconds = 0.0  # running mean of one detect() call, for Retry-After
        self.calls = 0  # detect() calls made for requests (warm-up excluded)
        self.images = 0  # images those calls took
        self.skipped = 0  # queued images whose request had given up
        self._last_batch = 0  # images in the previous detect() call

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread (it runs the warm-up first). Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fashion-serve-inference", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Take no new images, finish every queued one, then stop the worker (waiting at most ``timeout``
        seconds for it)."""
        self._closing = True
        if self._thread is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if deadline is not None and time.monotonic() > deadline:
                    return
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def ready(self) -> bool:
        """Whether the warm-up is done (and succeeded)."""
        return self._ready.is_set() and self._warm_up_error is None

    @property
    def warm_up_error(self) -> str | None:
        """Why the warm-up failed, or None."""
        return self._warm_up_error

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the warm-up has finished (either way); returns :attr:`ready`."""
        self._ready.wait(timeout)
        return self.ready

    @property
    def queued(self) -> int:
        """Images waiting now."""
        return self._queue.qsize()

    # ------------------------------------------------------------------------------------------ requests
    async def detect(self, image: np.ndarray, timeout: float | None = None) -> tuple[dict, BatchInfo]:
        """The detections of one image and how it was run; waits at most ``timeout`` seconds.

        Raises NotReadyError before the warm-up is done, DetectorClosedError while shutting down,
        QueueFullError when the queue is full, TimeoutError after ``timeout`` seconds, and whatever the
        model raised for this image.
        """
        if self._closing:
            raise DetectorClosedError("the service is shutting down")
        if not self.ready:
            if self._warm_up_error is not None:
                raise NotReadyError(f"the model failed its warm-up: {self._warm_up_error}", failed=True)
            raise NotReadyError("the model is still loading (warm-up detection not done)")
        loop = asyncio.get_running_loop()
        job = _Job(image=image, future=loop.create_future(), loop=loop)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(self.retry_after(), self.max_queue) from None
        try:
            return await asyncio.wait_for(job.future, timeout)
        except (TimeoutError, asyncio.CancelledError):
            job.abandoned = True  # wait_for cancelled the future; the worker skips the image if still queued
            raise

    def retry_after(self) -> int:
        """Seconds after which the queue has probably room again: the queued batches at the mean batch time."""
        batches = math.ceil((self._queue.qsize() + 1) / self.max_batch)
        return max(1, math.ceil(batches * (self._batch_seconds or 1.0)))

    # ------------------------------------------------------------------------------------------ worker
    def _run(self) -> None:
        try:
            if self._warm_up is not None:
                self._warm_up()
        except Exception as e:  # reported through /readyz and every request
            self._warm_up_error = f"{type(e).__name__}: {e}"
        finally:
            self._ready.set()
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            concurrent = not self._queue.empty() or self._last_batch > 1
            deadline = time.perf_counter() + (self.max_wait_s if concurrent else 0.0)
            while len(batch) < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
            live = [job for job in batch if not job.abandoned]
            self.skipped += len(batch) - len(live)
            self._last_batch = len(live)
            if live:
                self._run_batch(live)

    def _run_batch(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results = self._call([job.image for job in jobs])
        except Exception as error:
            if len(jobs) == 1:
                self._finish(jobs[0], started, error=error)
                return
            for job in jobs:  # find the image that fails; the others still get their answer
                self._run_batch([job])
            return
        for job, result in zip(jobs, results):
            self._finish(job, started, result=result, batch_size=len(jobs))

    def _call(self, images: list[np.ndarray]) -> list[dict]:
        started = time.perf_counter()
        results = self._detect(images)
        seconds = time.perf_counter() - started
        self.calls += 1
        self.images += len(images)
        self._batch_seconds = seconds if self.calls == 1 else 0.8 * self._batch_seconds + 0.2 * seconds
        if len(results) != len(images):
            raise RuntimeError(f"detect() returned {len(results)} results for {len(images)} images")
        return results

    def _finish(
        self,
        job: _Job,
        started: float,
        result: dict | None = None,
        error: BaseException | None = None,
        batch_size: int = 1,
    ) -> None:
        info = BatchInfo(
            batch_size=batch_size,
            queue_s=started - job.enqueued,
            inference_s=time.perf_counter() - started,
        )
        value = None if error is not None else (result, info)
        try:
            job.loop.call_soon_threadsafe(_deliver, job.future, value, error)
        except RuntimeError:  # the event loop is closed: nobody waits for this answer any more
            pass
