"""Real ``clinicos serve`` and ``clinicos worker`` processes for multi-process tests: started
from the installed CLI with an explicit environment (no inherited ``CLINICOS_*``, no ``.env``),
waited on until they are up, and always stopped (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HOST = "127.0.0.1"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clinicos_command() -> list[str]:
    """The ``clinicos`` entry point of the interpreter running the tests."""
    script = Path(sys.executable).with_name("clinicos")
    if script.exists():
        return [str(script)]
    found = shutil.which("clinicos")
    if found is None:
        raise RuntimeError("the clinicos command is not installed next to this interpreter")
    return [found]


def clean_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment minus every ``CLINICOS_*``, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
    return env | dict(settings)


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def fail_if_exited(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")


def spawn(name: str, args: list[str], env: Mapping[str, str], work_dir: Path, port: int) -> Process:
    """Start ``clinicos <args>`` with its output in ``work_dir/<name>.log`` (cwd ``work_dir``, so
    no stray ``.env`` is read)."""
    log_path = work_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*clinicos_command(), *args],
            cwd=work_dir,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Process(name, proc, port, log_path)


def stop(process: Process) -> None:
    proc = process.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=STOP_SECONDS)


def wait_until_ready(api: Process) -> None:
    """Until ``/ready`` answers 200 (database reachable, schema current)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=api.base_url, timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            api.fail_if_exited()
            with contextlib.suppress(httpx.TransportError):
                if http.get("/ready").status_code == 200:
                    return
            time.sleep(0.1)
    pytest.fail(f"{api.name} not ready within {STARTUP_SECONDS}s:\n{api.log_tail()}")


def wait_until_polling(worker: Process) -> None:
    """Until the worker logged ``worker_started`` (its schema check passed; the loop runs)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        worker.fail_if_exited()
        if "worker_started" in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    pytest.fail(f"{worker.name} did not start polling within {STARTUP_SECONDS}s")


@contextlib.contextmanager
def api_servers(count: int, env: Mapping[str, str], work_dir: Path) -> Iterator[list[Process]]:
    """``count`` times ``clinicos serve --no-worker`` on free loopback ports; all always stopped."""
    servers: list[Process] = []
    try:
        for index in range(count):
            port = free_port()
            args = ["serve", "--no-worker", "--host", HOST, "--port", str(port)]
            servers.append(spawn(f"api-{index}", args, env, work_dir, port))
        for server in servers:
            wait_until_ready(server)
        yield servers
    finally:
        for server in servers:
            stop(server)


@contextlib.contextmanager
def outbox_workers(count: int, env: Mapping[str, str], work_dir: Path) -> Iterator[list[Process]]:
    """``count`` times ``clinicos worker --metrics-port <free port>``; all always stopped."""
    workers: list[Process] = []
    try:
        for index in range(count):
            port = free_port()
            args = ["worker", "--metrics-port", str(port)]
            workers.append(spawn(f"worker-{index}", args, env, work_dir, port))
        for worker in workers:
            wait_until_polling(worker)
        yield workers
    finally:
        for worker in workers:
            stop(worker)
