"""Real server processes for multi-process tests: ``clinicos serve`` and ``clinicos worker``
started from the installed CLI, and uvicorn serving one of this suite's app factories
(``tests.support.crash_app:create``, ``tests.support.ratelimit_app:create``).

Every process gets an explicit environment (no inherited ``CLINICOS_*``) and runs in the test's
own directory (so no stray ``.env`` is read); it is waited on until it answers (polled every
50 ms, never a fixed sleep) and always stopped (SIGTERM, then SIGKILL). Processes that a test
needs together are started together, so their start-ups overlap instead of adding up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
POLL_SECONDS = 0.05


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


def clean_env(settings: Mapping[str, str], *, test_apps: bool = False) -> dict[str, str]:
    """The test process's environment minus every ``CLINICOS_*``, plus ``settings``;
    ``test_apps``: the repository on ``PYTHONPATH``, so ``tests.support.*`` app factories
    import."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
    if test_apps:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    return env | dict(settings)


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready_path: str | None = "/ready"  # GET answering 200 means up; None: an outbox worker

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def fail_if_exited(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")


def _popen(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    work_dir: Path,
    port: int,
    ready_path: str | None,
) -> Process:
    log_path = work_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=work_dir, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    return Process(name, proc, port, log_path, ready_path)


def spawn(
    name: str,
    args: list[str],
    env: Mapping[str, str],
    work_dir: Path,
    port: int,
    *,
    ready_path: str | None = "/ready",
) -> Process:
    """Start ``clinicos <args>`` with its output in ``work_dir/<name>.log``."""
    return _popen(name, [*clinicos_command(), *args], env, work_dir, port, ready_path)


def spawn_uvicorn(name: str, factory: str, env: Mapping[str, str], work_dir: Path) -> Process:
    """Start ``uvicorn --factory <factory>`` on a free loopback port (``env`` should come from
    ``clean_env(..., test_apps=True)``)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", factory]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    return _popen(name, command, env, work_dir, port, "/health")


def stop(process: Process) -> None:
    """SIGTERM, SIGKILL after STOP_SECONDS; reaps a process that already died (e.g. killed)."""
    proc = process.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=STOP_SECONDS)


def _wait_for(process: Process, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        process.fail_if_exited()
        if ready():
            return
        time.sleep(POLL_SECONDS)
    pytest.fail(f"{process.name}: {what} within {STARTUP_SECONDS}s:\n{process.log_tail()}")


def wait_until_answering(process: Process, path: str = "/ready") -> None:
    """Until ``GET path`` answers 200: ``/ready`` for clinicos (database reachable, schema
    current), ``/health`` for the bare test apps."""
    with httpx.Client(base_url=process.base_url, timeout=1.0, trust_env=False) as http:

        def answers() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return http.get(path).status_code == 200
            return False

        _wait_for(process, f"no 200 from {path}", answers)


def wait_until_polling(worker: Process) -> None:
    """Until the worker logged ``worker_started`` (its schema check passed; the loop runs)."""
    _wait_for(
        worker,
        "did not start polling",
        lambda: "worker_started" in worker.log_path.read_text(errors="replace"),
    )


def wait_until_up(process: Process) -> None:
    if process.ready_path is None:
        wait_until_polling(process)
    else:
        wait_until_answering(process, process.ready_path)


@contextlib.contextmanager
def running(start: Callable[[], list[Process]]) -> Iterator[list[Process]]:
    """Start processes (all of them before waiting for any), wait until each is up, yield
    them; all always stopped, also when a start-up fails."""
    processes: list[Process] = []
    try:
        processes = start()
        for process in processes:
            wait_until_up(process)
        yield processes
    finally:
        for process in processes:
            stop(process)


def _api(index: int, env: Mapping[str, str], work_dir: Path) -> Process:
    port = free_port()
    args = ["serve", "--no-worker", "--host", HOST, "--port", str(port)]
    return spawn(f"api-{index}", args, env, work_dir, port)


def _worker(index: int, env: Mapping[str, str], work_dir: Path) -> Process:
    port = free_port()
    args = ["worker", "--metrics-port", str(port)]
    return spawn(f"worker-{index}", args, env, work_dir, port, ready_path=None)


@contextlib.contextmanager
def api_servers(count: int, env: Mapping[str, str], work_dir: Path) -> Iterator[list[Process]]:
    """``count`` times ``clinicos serve --no-worker`` on free loopback ports."""
    with running(lambda: [_api(i, env, work_dir) for i in range(count)]) as servers:
        yield servers


@contextlib.contextmanager
def outbox_workers(count: int, env: Mapping[str, str], work_dir: Path) -> Iterator[list[Process]]:
    """``count`` times ``clinicos worker --metrics-port <free port>``."""
    with running(lambda: [_worker(i, env, work_dir) for i in range(count)]) as workers:
        yield workers


@contextlib.contextmanager
def installation(
    apis: int, workers: int, env: Mapping[str, str], work_dir: Path
) -> Iterator[tuple[list[Process], list[Process]]]:
    """API servers and outbox workers of one installation, all starting at once."""

    def start() -> list[Process]:
        return [_worker(i, env, work_dir) for i in range(workers)] + [
            _api(i, env, work_dir) for i in range(apis)
        ]

    with running(start) as processes:
        yield processes[workers:], processes[:workers]


@contextlib.contextmanager
def uvicorn_servers(
    factory: str, names: list[str], env: Mapping[str, str], work_dir: Path
) -> Iterator[list[Process]]:
    """One ``uvicorn --factory <factory>`` per name, same environment, up on ``/health``."""
    with running(lambda: [spawn_uvicorn(n, factory, env, work_dir) for n in names]) as servers:
        yield servers
