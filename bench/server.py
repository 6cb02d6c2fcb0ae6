"""A real ``clinicos serve --no-worker`` process on a loopback port: start it, wait for
``/ready``, sign in, watch its memory and CPU, stop it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from bench.databases import CLINICOS, Database

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """One API process (one uvicorn worker) on ``db``; use as a context manager."""

    def __init__(self, db: Database, *, log_name: str = "server.log") -> None:
        self.db = db
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log_path: Path = db.var_dir / log_name
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_seconds = 0.0

    def start(self, *, timeout: float = 60) -> float:
        """Start and wait until ``/ready`` answers 200; returns the seconds that took."""
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                [str(CLINICOS), "serve", "--no-worker", "--host", HOST, "--port", str(self.port)],
                env=self.db.env(),
                cwd=self.db.var_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = self.started_at + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited; see {self.log_path}")
                try:
                    if client.get(f"{self.base}/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"the server was not ready in {timeout} s")
                time.sleep(0.01)
        self.ready_seconds = time.perf_counter() - self.started_at
        return self.ready_seconds

    @property
    def ps(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def wait_idle(self, *, busy_below: float = 0.1, timeout: float = 90.0) -> float:
        """Wait until the server has drained what an overloaded run left queued (its CPU use
        falls below ``busy_below`` of a core over half a second); returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < busy_below * 0.5:
                break
        return time.perf_counter() - started

    def login(self, email: str, password: str) -> str:
        response = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={"email": email, "password": password},
            timeout=30,
        )
        if response.status_code != 200:
            raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")
        return str(response.json()["access_token"])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def check_bodies(server: Server, token: str, path: str, bodies: list[bytes]) -> None:
    """Every body must succeed once before the load run (so errors under load mean load)."""
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for body in bodies:
            response = client.post(
                path,
                content=body,
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"{path} answered {response.status_code} to {json.loads(body)}: "
                    f"{response.text[:500]}"
                )


class RssSampler:
    """The server's peak RSS while a load runs (polled in a thread every ``interval`` s)."""

    def __init__(self, server: Server, interval: float = 0.5) -> None:
        import threading

        self._server = server
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak_mb = 0.0

    def _loop(self) -> None:
        while True:
            try:
                self.peak_mb = max(self.peak_mb, self._server.rss_mb())
            except psutil.Error:
                return
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
