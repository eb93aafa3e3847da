"""BatchingDetector on its own: batches, the bounded queue, timeouts, failures, warm-up and shutdown."""

import asyncio
import threading
import time

import numpy as np
import pytest

from fashion.serve.batching import (
    BatchingDetector,
    DetectorClosedError,
    NotReadyError,
    QueueFullError,
)


class Recorder:
    """detect() that records each call's images (by their fill value) and can be held until released."""

    def __init__(self, delay: float = 0.0, fail_value: int | None = None):
        self.delay = delay
        self.fail_value = fail_value
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a call has begun (before it waits at the gate)

    def detect(self, images):
        self.entered.set()
        self.gate.wait(10)
        values = [int(image[0, 0, 0]) for image in images]
        self.calls.append(values)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_value is not None and self.fail_value in values:
            raise ValueError(f"image {self.fail_value} is bad")
        return [{"value": v} for v in values]


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def started(detector: BatchingDetector) -> BatchingDetector:
    detector.start()
    assert detector.wait_ready(10)
    return detector


def test_concurrent_requests_share_detect_calls_up_to_max_batch():
    model = Recorder(delay=0.05)
    detector = started(BatchingDetector(model.detect, max_batch=4, max_wait_s=0.05, max_queue=64))

    async def main():
        return await asyncio.gather(*(detector.detect(image(v)) for v in range(10)))

    try:
        results = asyncio.run(main())
    finally:
        detector.close()
    assert [r["value"] for r, _ in results] == list(range(10))  # each request gets its own image's result
    assert len(model.calls) < 10 and max(len(c) for c in model.calls) <= 4
    assert sorted(v for call in model.calls for v in call) == list(range(10))
    sizes = {info.batch_size for _, info in results}
    assert max(sizes) > 1
    assert detector.calls == len(model.calls) and detector.images == 10


def test_a_lone_request_does_not_wait_for_company():
    model = Recorder()
    detector = started(BatchingDetector(model.detect, max_batch=8, max_wait_s=2.0))
    try:
        for value in (3, 4):  # one client, one request after the other
            result, info = asyncio.run(detector.detect(image(value)))
            assert result == {"value": value} and info.batch_size == 1
            assert info.queue_s < 1.0  # not the 2 s window
    finally:
        detector.close()


def test_while_requests_come_concurrently_the_worker_waits_for_the_window():
    model = Recorder()
    detector = started(BatchingDetector(model.detect, max_batch=8, max_wait_s=1.0))

    async def late(value, delay):
        await asyncio.sleep(delay)
        return await detector.detect(image(value))

    async def scenario():
        model.gate.clear()  # the first image's call is held; two more queue behind it
        first = asyncio.ensure_future(detector.detect(image(0)))
        await until(model.entered.is_set)
        queued = [asyncio.ensure_future(detector.detect(image(v))) for v in (1, 2)]
        await until(lambda: detector.queued == 2)
        model.gate.set()
        await asyncio.gather(first, *queued)
        return await asyncio.gather(late(3, 0.0), late(4, 0.2))

    try:
        second = asyncio.run(scenario())
    finally:
        detector.close()
    # After a call with two images, a lone image waits: the one 0.2 s later joins its batch.
    assert model.calls == [[0], [1, 2], [3, 4]]
    assert [info.batch_size for _, info in second] == [2, 2]


def test_a_full_queue_refuses_at_once_with_a_retry_time():
    model = Recorder()
    model.gate.clear()  # the worker blocks in its first call; the queue fills behind it
    detector = started(BatchingDetector(model.detect, max_batch=1, max_wait_s=0.0, max_queue=2))

    async def main():
        first = asyncio.ensure_future(detector.detect(image(0)))
        await until(model.entered.is_set)  # the worker has taken image 0 and waits at the gate
        queued = [asyncio.ensure_future(detector.detect(image(v))) for v in (1, 2)]
        await until(lambda: detector.queued == 2)
        with pytest.raises(QueueFullError) as caught:
            await detector.detect(image(3))
        assert caught.value.retry_after >= 1 and "busy" in str(caught.value)
        model.gate.set()
        return await asyncio.gather(first, *queued)

    try:
        results = asyncio.run(main())
    finally:
        model.gate.set()
        detector.close()
    assert [r["value"] for r, _ in results] == [0, 1, 2]
    assert 3 not in [v for call in model.calls for v in call]


def test_a_request_that_times_out_is_not_computed_later():
    model = Recorder()
    model.gate.clear()
    detector = started(BatchingDetector(model.detect, max_batch=1, max_wait_s=0.0, max_queue=8))

    async def main():
        blocker = asyncio.ensure_future(detector.detect(image(0)))
        await until(model.entered.is_set)  # the worker holds image 0
        with pytest.raises(TimeoutError):
            await detector.detect(image(7), timeout=0.05)
        model.gate.set()
        await blocker
        return await detector.detect(image(8))

    try:
        result, _ = asyncio.run(main())
    finally:
        model.gate.set()
        detector.close()
    assert result == {"value": 8}
    assert [v for call in model.calls for v in call] == [0, 8]
    assert detector.skipped == 1


def test_a_failing_image_fails_only_its_own_request():
    model = Recorder(fail_value=5)
    detector = started(BatchingDetector(model.detect, max_batch=4, max_wait_s=0.1))

    async def main():
        return await asyncio.gather(*(detector.detect(image(v)) for v in (4, 5, 6)), return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        detector.close()
    assert results[0][0] == {"value": 4} and results[2][0] == {"value": 6}
    assert isinstance(results[1], ValueError) and "image 5 is bad" in str(results[1])
    assert [4, 5, 6] in model.calls  # tried as one batch first, then alone
    assert [5] in model.calls


def test_not_ready_until_the_warm_up_is_done_and_a_failed_warm_up_is_reported():
    release = threading.Event()
    detector = BatchingDetector(Recorder().detect, warm_up=lambda: release.wait(10))
    detector.start()
    with pytest.raises(NotReadyError) as caught:
        asyncio.run(detector.detect(image(1)))
    assert not caught.value.failed and not detector.ready
    release.set()
    assert detector.wait_ready(10)
    assert asyncio.run(detector.detect(image(1)))[0] == {"value": 1}
    detector.close()

    def broken():
        raise RuntimeError("no memory for the graph")

    failed = BatchingDetector(Recorder().detect, warm_up=broken)
    failed.start()
    assert not failed.wait_ready(10)
    assert "no memory for the graph" in failed.warm_up_error
    with pytest.raises(NotReadyError) as caught:
        asyncio.run(failed.detect(image(1)))
    assert caught.value.failed
    failed.close()


def test_close_finishes_the_queued_images_then_refuses_new_ones():
    model = Recorder(delay=0.05)
    detector = started(BatchingDetector(model.detect, max_batch=2, max_wait_s=0.0, max_queue=16))

    async def main():
        pending = [asyncio.ensure_future(detector.detect(image(v))) for v in range(6)]
        await asyncio.sleep(0.01)
        closing = asyncio.get_running_loop().run_in_executor(None, detector.close, 30.0)
        results = await asyncio.gather(*pending)
        await closing
        with pytest.raises(DetectorClosedError):
            await detector.detect(image(9))
        return results

    results = asyncio.run(main())
    assert [r["value"] for r, _ in results] == list(range(6))
    assert not detector._thread.is_alive()


def test_settings_are_checked():
    for kwargs in ({"max_batch": 0}, {"max_queue": 0}, {"max_wait_s": -1}):
        with pytest.raises(ValueError):
            BatchingDetector(Recorder().detect, **kwargs)
