"""Service load: throughput and latency of ``fashion-serve`` under 1, 4 and 16 concurrent clients.

    python bench/serve.py --weights last                  # the checkpoint the README's main command trained
    python bench/serve.py --weights run/mask_rcnn_fashion_0012.h5 --requests 96 --max-batch 1,4,8

For each --max-batch setting it starts the service (``python -m fashion.serve``) on a free port of 127.0.0.1
(never another address), waits for /readyz, sends --warmup requests at each client count, then at each client
count a fixed number of ``POST /v1/parse`` requests (the shipped sample's photos, raw bodies, one keep-alive connection per
client thread) and stops the service. It prints, per row: throughput (requests/s), p50 / p95 / p99 latency,
errors (non-200 answers; must be 0 while the clients stay below the queue limit), the mean batch the model ran,
the server's CPU seconds (user + system, all threads) per request, which a shared machine's load inflates far
less than wall-clock times, and the server's resident memory after the warm-up and after the row. The last lines compare throughput at the
most and at one client, and with and without batching, measured in this run, and time ``detect()`` alone per
image at each --detect-batches size (what a batch saves in the model itself). Run it once more with
``TF_ENABLE_ONEDNN_OPTS=1`` to see the other CPU kernels (the service's first line says which ran).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's packages, whatever is installed
SAMPLE = REPO / "fashion" / "sample" / "train"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (Linux) has used so far, its threads included, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Service:
    """The service in a child process on 127.0.0.1."""

    def __init__(self, args: argparse.Namespace, max_batch: int):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        command = [sys.executable, "-m", "fashion.serve", "--weights", args.weights, "--logs", args.logs]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--max-batch", str(max_batch)]
        command += ["--max-queue", str(args.max_queue), *args.serve_args]
        self.proc = subprocess.Popen(
            command,
            cwd=str(REPO),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited ({self.proc.returncode}):\n{self.output()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the service was not ready within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


def run_load(port: int, images: list[bytes], requests: int, clients: int) -> dict:
    """``requests`` POSTs split over ``clients`` threads; returns latencies (s), wall time, errors, batches."""
    latencies: list[float] = []
    batches: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                body = images[index % len(images)]
                start = time.perf_counter()
                try:
                    connection.request(
                        "POST", "/v1/parse", body, {"Content-Type": "application/octet-stream"}
                    )
                    response = connection.getresponse()
                    payload = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as e:
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    continue
                elapsed = time.perf_counter() - start
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                        batches.append(json.loads(payload)["batch_size"])
                    else:
                        errors.append(f"{status}: {payload[:200]!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"latencies": latencies, "wall": wall, "errors": errors, "batches": batches}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100.0
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def time_detect(args: argparse.Namespace, images: list[bytes], batches: list[int], repeats: int = 5) -> dict:
    """Median (wall, CPU) seconds per image of ``detect()`` alone, in this process, for each batch size (the model of the
    service, built with IMAGES_PER_GPU = the largest batch and warmed up as the service does)."""
    import io

    import numpy as np
    from PIL import Image

    from fashion.cli_common import build_inference_model, resolve_model
    from fashion.serve.cli import build_parser, model_overrides
    from fashion.serve.model import ServedModel
    from mrcnn.runtime import import_tensorflow

    import_tensorflow()
    # the options the service ran with (--precision, --min-confidence ... after --), read by its own parser
    serve = build_parser().parse_args(["--weights", args.weights, "--logs", args.logs, *args.serve_args])
    choice = resolve_model(serve)
    config = choice.config({**model_overrides(serve), "IMAGES_PER_GPU": max(batches), "GPU_COUNT": 1})
    served = ServedModel(build_inference_model(choice, args.logs, config))
    served.warm_up()
    pixels = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in images[: max(batches)]]
    seconds = {}
    for batch in batches:
        walls, cpus = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            served.detect(pixels[:batch])
            walls.append((time.perf_counter() - start) / batch)
            cpus.append((time.process_time() - cpu_start) / batch)
        seconds[batch] = (statistics.median(walls), statistics.median(cpus))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default="last", help="checkpoint PATH or 'last' (newest run in --logs)")
    parser.add_argument("--logs", default="logs", help="log folder for --weights last (default ./logs)")
    parser.add_argument("--requests", type=int, default=96, help="requests per row (default 96)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per row (default 1,4,16)")
    parser.add_argument(
        "--max-batch", default="1,8", help="service --max-batch settings to compare (default 1,8)"
    )
    parser.add_argument("--max-queue", type=int, default=32, help="service --max-queue (default 32)")
    parser.add_argument(
        "--warmup", type=int, default=16, help="requests at each client count before the rows (default 16)"
    )
    parser.add_argument("--images", default=str(SAMPLE), help="folder of JPEG/PNG photos to send")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for /readyz")
    parser.add_argument(
        "--detect-batches",
        default="1,8",
        help="also time detect() alone per image at these batch sizes, in this process ('' skips)",
    )
    parser.add_argument("serve_args", nargs="*", help="more fashion-serve options, after --")
    args = parser.parse_args(argv)
    if args.weights != "last":
        args.weights = str(Path(args.weights).resolve())
    args.logs = str(Path(args.logs).resolve())
    clients = [int(c) for c in args.clients.split(",")]
    batch_settings = [int(b) for b in args.max_batch.split(",")]
    if max(clients) > args.max_queue:
        print(f"note: {max(clients)} clients exceed --max-queue {args.max_queue}: expect 503 answers")
    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [p.read_bytes() for p in paths]
    if not images:
        parser.error(f"no .jpg/.png images in {args.images}")

    from mrcnn.runtime import cpu_info

    info = cpu_info()
    print(f"CPU: {info.model}, {info.cores} logical cores, {info.vector_summary()}")
    print(f"Images: {len(images)} from {args.images}; {args.requests} requests per row\n")

    rows = []
    for max_batch in batch_settings:
        service = Service(args, max_batch)
        try:
            service.wait_ready(args.ready_timeout)
            header = [line for line in service.output().splitlines() if line.startswith(("Running", "Model"))]
            if max_batch == batch_settings[0]:
                print("\n".join(header) + "\n")
            for c in clients:  # every batch size the rows will see, so that later growth is not warm-up
                warm = run_load(service.port, images, args.warmup, c)
                if warm["errors"]:
                    print(f"warm-up errors at {c} clients: {warm['errors'][:3]}")
            baseline = rss_mib(service.proc.pid)
            for c in clients:
                cpu_before = cpu_seconds(service.proc.pid)
                result = run_load(service.port, images, args.requests, c)
                cpu_after = cpu_seconds(service.proc.pid)
                lat = result["latencies"]
                rows.append(
                    {
                        "max_batch": max_batch,
                        "clients": c,
                        "throughput": len(lat) / result["wall"],
                        "p50": percentile(lat, 50),
                        "p95": percentile(lat, 95),
                        "p99": percentile(lat, 99),
                        "errors": len(result["errors"]),
                        "batch": statistics.mean(result["batches"]) if result["batches"] else float("nan"),
                        "cpu_ms": 1000 * (cpu_after - cpu_before) / max(len(lat), 1)
                        if cpu_before is not None and cpu_after is not None
                        else float("nan"),
                        "rss_before": baseline,
                        "rss_after": rss_mib(service.proc.pid),
                    }
                )
                if result["errors"]:
                    print(f"errors at {c} clients: {result['errors'][:3]}")
        finally:
            service.stop()

    print(
        "| max batch | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | mean batch | server CPU ms/request "
        "| RSS after warm-up MiB | RSS after row MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = lambda v: f"{v:.0f}" if v is not None else "n/a"  # noqa: E731
        print(
            f"| {r['max_batch']} | {r['clients']} | {r['throughput']:.2f} | {1000 * r['p50']:.0f} | "
            f"{1000 * r['p95']:.0f} | {1000 * r['p99']:.0f} | {r['errors']} | {r['batch']:.2f} | "
            f"{r['cpu_ms']:.0f} | {mem(r['rss_before'])} | {mem(r['rss_after'])} |"
        )
    print()
    by = {(r["max_batch"], r["clients"]): r for r in rows}
    low, high = min(clients), max(clients)
    ok = True
    for b in batch_settings:
        ratio = by[(b, high)]["throughput"] / by[(b, low)]["throughput"]
        print(f"max batch {b}: throughput at {high} clients / at {low} client = {ratio:.2f}")
        if ratio <= 1.0:
            print(f"FAIL: max batch {b}: {high} clients are no faster than {low}")
            ok = False
    if len(batch_settings) > 1:
        plain, batched = min(batch_settings), max(batch_settings)
        gain = by[(batched, high)]["throughput"] / by[(plain, high)]["throughput"]
        print(f"at {high} clients: max batch {batched} / max batch {plain} throughput = {gain:.2f}")
    growth = [r["rss_after"] - r["rss_before"] for r in rows if r["rss_after"] and r["rss_before"]]
    if growth:
        print(f"largest memory growth after warm-up: {max(growth):.0f} MiB")
    if args.detect_batches:
        per_image = time_detect(args, images, [int(b) for b in args.detect_batches.split(",")])
        alone, alone_cpu = per_image[min(per_image)]
        for batch, (seconds, cpu) in per_image.items():
            print(
                f"detect() alone, batch {batch}: {1000 * seconds:.1f} ms per image ({seconds / alone:.2f}x batch 1), "
                f"CPU {1000 * cpu:.1f} ms per image ({cpu / alone_cpu:.2f}x batch 1)"
            )
    errors = sum(r["errors"] for r in rows)
    if errors and high <= args.max_queue:
        print(f"FAIL: {errors} errors below the queue limit")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
