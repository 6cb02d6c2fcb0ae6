"""Rate limits are shared across server processes through Redis, and only through Redis.

Two real uvicorn processes serve ``tests.support.ratelimit_app:create_shared_and_local`` with a
read budget of 6 per minute: under ``/shared`` limited through Redis, under ``/local`` with
in-memory storage (what a process without Redis uses); requests alternate between the
processes. With Redis the seventh request overall is refused; with in-memory storage each
process keeps its own budget, which shows the first test proves sharing. One pair of processes
serves both tests (start-up is most of their cost).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import services_unavailable
from tests.support.clinicos_processes import Process, clean_env, uvicorn_servers
from tests.support.ratelimit_app import PREFIX_ENV

pytestmark = pytest.mark.slow

APP_FACTORY = "tests.support.ratelimit_app:create_shared_and_local"
REDIS_URL = os.environ.get("CLINICOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
READ_BUDGET = 6


@dataclass(frozen=True)
class SharedStore:
    client: redis.Redis
    prefix: str  # private to one test run: its keys, and only those, are deleted afterwards

    def keys(self) -> list[str]:
        return [k.decode() for k in self.client.scan_iter(match=f"{self.prefix}:*")]


@pytest.fixture
def shared_store(servers: ServerPair) -> Iterator[SharedStore]:
    """Redis under the servers' key prefix (skip, or fail in CI, without Redis); the prefix's
    keys are deleted after the test."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        services_unavailable("Redis")
    try:
        yield SharedStore(client, servers.prefix)
    finally:
        stale = list(client.scan_iter(match=f"{servers.prefix}:*"))
        if stale:
            client.delete(*stale)
        client.close()


@dataclass(frozen=True)
class ServerPair:
    processes: list[Process]
    prefix: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPair]:
    """Two processes with the same settings (Redis configured: it is only contacted by the
    ``/shared`` routes); both always terminated."""
    prefix = f"clinicos-test:ratelimit:{uuid.uuid4().hex}"
    env = clean_env(
        {
            "CLINICOS_ENV": "test",
            "CLINICOS_RATE_LIMIT__READ": f"{READ_BUDGET}/minute",
            "CLINICOS_REDIS_URL": REDIS_URL,
            PREFIX_ENV: prefix,
        },
        test_apps=True,
    )
    work_dir: Path = tmp_path_factory.mktemp("ratelimit-servers")
    with uvicorn_servers(APP_FACTORY, ["a", "b"], env, work_dir) as processes:
        yield ServerPair(processes, prefix)


def get_limited(server: Process, mount: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http:
        return http.get(f"/{mount}/limited")


@pytest.mark.redis
def test_two_processes_sharing_redis_refuse_the_seventh_request_overall(
    servers: ServerPair, shared_store: SharedStore
) -> None:
    a_and_b = servers.processes
    answers = [get_limited(a_and_b[i % 2], "shared") for i in range(READ_BUDGET + 1)]
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


def test_two_processes_with_memory_storage_keep_separate_budgets(servers: ServerPair) -> None:
    a, b = servers.processes
    first = [get_limited(a, "local") for _ in range(READ_BUDGET)]
    second = [get_limited(b, "local") for _ in range(READ_BUDGET)]
    over = get_limited(a, "local")

    assert [a.status_code for a in first + second] == [200] * (2 * READ_BUDGET)
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in second] == [5, 4, 3, 2, 1, 0]
    assert over.status_code == 429
