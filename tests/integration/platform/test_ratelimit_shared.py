"""Rate limits are shared across server processes through Redis, and only through Redis.

Two real uvicorn processes serve ``tests.support.ratelimit_app`` with a read budget of 6 per
minute; requests alternate between them. With Redis the seventh request overall is refused; with
in-memory storage each process keeps its own budget, which shows the first test proves sharing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import services_unavailable
from tests.support.ratelimit_app import PREFIX_ENV

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_FACTORY = "tests.support.ratelimit_app:create"
REDIS_URL = os.environ.get("CLINICOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
READ_BUDGET = 6
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


@dataclass(frozen=True)
class SharedStore:
    client: redis.Redis
    prefix: str  # private to one test: its keys, and only those, are deleted afterwards

    def keys(self) -> list[str]:
        return [k.decode() for k in self.client.scan_iter(match=f"{self.prefix}:*")]


@pytest.fixture
def shared_store() -> Iterator[SharedStore]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        services_unavailable("Redis")
    prefix = f"clinicos-test:ratelimit:{uuid.uuid4().hex}"
    try:
        yield SharedStore(client, prefix)
    finally:
        stale = list(client.scan_iter(match=f"{prefix}:*"))
        if stale:
            client.delete(*stale)
        client.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(redis_url: str | None, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        {
            "CLINICOS_ENV": "test",
            "CLINICOS_RATE_LIMIT__READ": f"{READ_BUDGET}/minute",
            PREFIX_ENV: prefix,
            "PYTHONPATH": os.pathsep.join(python_path),
        }
    )
    if redis_url is not None:
        env["CLINICOS_REDIS_URL"] = redis_url
    return env


def start(name: str, env: dict[str, str], tmp_path: Path) -> Server:
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    return Server(proc, f"http://127.0.0.1:{port}", log_path)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=STOP_SECONDS)


def wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                log = server.log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"server exited ({server.proc.returncode}):\n{log}")
            with contextlib.suppress(httpx.TransportError):
                if http.get("/health").status_code == 200:
                    return
            time.sleep(0.1)
    pytest.fail(f"server not healthy within {STARTUP_SECONDS}s")


@contextlib.contextmanager
def two_servers(redis_url: str | None, prefix: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Two uvicorn processes with the same settings; both always terminated."""
    servers: list[Server] = []
    try:
        env = server_env(redis_url, prefix)
        servers = [start(name, env, tmp_path) for name in ("a", "b")]
        for server in servers:
            wait_until_healthy(server)
        yield servers
    finally:
        for server in servers:
            stop(server.proc)


def get_limited(server: Server) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http:
        return http.get("/limited")


@pytest.mark.redis
def test_two_processes_sharing_redis_refuse_the_seventh_request_overall(
    shared_store: SharedStore, tmp_path: Path
) -> None:
    with two_servers(REDIS_URL, shared_store.prefix, tmp_path) as servers:
        answers = [get_limited(servers[i % 2]) for i in range(READ_BUDGET + 1)]
        stored_keys = shared_store.keys()

    allowed, refused = answers[:READ_BUDGET], answers[READ_BUDGET]
    assert [a.status_code for a in allowed] == [200] * READ_BUDGET
    # Counted down across both processes: one budget, not two.
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in allowed] == [5, 4, 3, 2, 1, 0]
    assert {a.headers["X-RateLimit-Limit"] for a in allowed} == {str(READ_BUDGET)}
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == str(READ_BUDGET)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    # The budget lives in Redis under our prefix, keyed by a hash, never the caller's address.
    assert stored_keys
    assert not [k for k in stored_keys if "127.0.0.1" in k]


def test_two_processes_with_memory_storage_keep_separate_budgets(tmp_path: Path) -> None:
    with two_servers(None, f"unused-{uuid.uuid4().hex}", tmp_path) as servers:
        first = [get_limited(servers[0]) for _ in range(READ_BUDGET)]
        second = [get_limited(servers[1]) for _ in range(READ_BUDGET)]
        over = get_limited(servers[0])

    assert [a.status_code for a in first + second] == [200] * (2 * READ_BUDGET)
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in second] == [5, 4, 3, 2, 1, 0]
    assert over.status_code == 429
