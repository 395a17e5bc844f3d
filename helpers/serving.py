"""Run a web service in a subprocess and put a bounded load on it.

``start_server`` launches uvicorn on a free localhost port and waits until the service is alive
(``/health``) and ready (``/ready``), timing both: that is the cold start. The server is stopped
when the ``with`` block ends, even when the block raises; when the interpreter exits; and, on
Linux, when the parent process dies without cleaning up (the child asks the kernel for a signal
on its parent's death). No notebook leaves a port open behind it.

``load_test`` sends a fixed number of requests with a fixed number in flight (a closed loop, as
``hey -c`` or ``wrk -c`` do) from an ``httpx.AsyncClient``, and returns every latency.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from helpers.config import REPO_ROOT

_RUNNING: set[Server] = set()
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(eq=False)
class Server:
    """A uvicorn subprocess. Use it as a context manager, or call ``stop()``."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    started_at: float  # time.perf_counter() at launch
    alive_s: float = float("nan")
    ready_s: float = float("nan")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote (stdout and stderr)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if needed; return the exit code."""
        _RUNNING.discard(self)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _wait_for(server: Server, path: str, deadline: float) -> float:
    """Poll ``path`` until it answers 200; return the seconds since the process started."""
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.process.returncode}:\n{server.log_tail()}")
            try:
                if client.get(server.url + path).status_code == 200:
                    return time.perf_counter() - server.started_at
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"{server.url}{path} did not answer 200 in time:\n{server.log_tail()}")


def start_server(
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    health_path: str = "/health",
    ready_path: str | None = "/ready",
) -> Server:
    """Start ``uvicorn app`` (``"module:attribute"``) on a free port; return once it is ready.

    ``alive_s`` is the time from launch until ``health_path`` answered, ``ready_s`` until
    ``ready_path`` did (the model loaded). On failure the server is stopped and the error
    carries the end of its log.
    """
    if ":" not in app:
        raise ValueError(f"app must look like 'package.module:attribute', got {app!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="uvicorn-", suffix=".log")[1])
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    server = Server(url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path,
                    started_at=started)
    _RUNNING.add(server)
    deadline = started + timeout_s
    try:
        server.alive_s = _wait_for(server, health_path, deadline)
        server.ready_s = _wait_for(server, ready_path, deadline) if ready_path else server.alive_s
    except BaseException:
        server.stop()
        raise
    return server


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


@dataclass
class LoadResult:
    """Latencies of a load test, in request order, and the wall time of the whole test."""

    latencies_s: np.ndarray
    wall_s: float
    concurrency: int
    status_counts: dict[int, int] = field(default_factory=dict)

    @property
    def throughput_rps(self) -> float:
        return len(self.latencies_s) / self.wall_s

    @property
    def error_rate(self) -> float:
        errors = sum(n for status, n in self.status_counts.items() if status >= 400)
        return errors / max(1, sum(self.status_counts.values()))

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000)

    def summary(self) -> dict[str, float]:
        """Concurrency, throughput and p50/p95/p99 latency, ready for a table row."""
        return {"concurrency": self.concurrency, "requests_per_s": self.throughput_rps,
                "p50_ms": self.percentile_ms(50), "p95_ms": self.percentile_ms(95),
                "p99_ms": self.percentile_ms(99), "error_rate": self.error_rate}


async def _closed_loop(url: str, payloads: Sequence[Any], concurrency: int, timeout_s: float) -> LoadResult:
    latencies = np.zeros(len(payloads))
    statuses: Counter[int] = Counter()
    next_index = iter(range(len(payloads)))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in next_index:  # the shared iterator hands each request to exactly one worker
            start = time.perf_counter()
            response = await client.post(url, json=payloads[i])
            latencies[i] = time.perf_counter() - start
            statuses[response.status_code] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
        await client.post(url, json=payloads[0])  # warm-up: connection set-up is not serving latency
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return LoadResult(latencies, wall, concurrency, dict(statuses))


def load_test(url: str, payloads: Sequence[Any], *, concurrency: int, timeout_s: float = 30.0) -> LoadResult:
    """POST every payload to ``url`` as JSON, keeping ``concurrency`` requests in flight.

    Runs its own event loop in a worker thread, so it works inside Jupyter (whose loop is busy).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if len(payloads) == 0:
        raise ValueError("payloads is empty")
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _closed_loop(url, payloads, concurrency, timeout_s)).result()
