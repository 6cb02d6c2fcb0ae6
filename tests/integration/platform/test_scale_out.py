"""The scale-out topology of docs/deployment.md, on one machine: two real API processes
(``clinicos serve --no-worker`` on two loopback ports) and two real outbox workers
(``clinicos worker``), all on one PostgreSQL database (as the non-owner app role) and one Redis,
sharing one installation secret. Proves what makes the API processes interchangeable:

- rate limits are one budget across both API processes (Redis), refused at the same count as
  a single process refuses;
- a session started on one process is valid, refreshable and ended on the other (sessions and
  signing keys live in PostgreSQL);
- the two workers split the outbox without handling any message twice (leases + SKIP LOCKED,
  ``outbox_delivery`` bookkeeping), and leave nothing pending.

Correctness only: no timing is asserted. The capacity claim (two processes serve at least 1.6
times what one serves on the CPU-bound CDS endpoint) is measured by ``bench/scale_out.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from bench.cases import example_request_bodies
from prometheus_client.parser import text_string_to_metric_families

from clinicos.bootstrap import build_container
from clinicos.governance.handlers import KPI_HANDLER
from clinicos.platform.ratelimit import DEFAULT_KEY_PREFIX, derive_key_secret, storage_key
from tests.conftest import MigratedDatabases, drop_pg_database, make_settings, services_unavailable
from tests.support.clinicos_processes import Process, installation
from tests.support.identity_fixtures import SeededUser, create_org, create_user

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REDIS_URL = os.environ.get("CLINICOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
READ_BUDGET = 6  # per user per minute, small enough to exhaust in a handful of requests
EVALUATIONS = 40  # CDS evaluations, hence cds.EvaluationRecorded outbox messages
DRAIN_SECONDS = 30.0
PASSWORD = "Scale-out test password 2026!"
EVALUATION_EVENT = "cds.EvaluationRecorded"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Installation:
    db_url: str  # the owner's URL (the test reads bookkeeping with it)
    env: dict[str, str]  # what every process of the installation gets
    secret_key: str
    users: dict[str, SeededUser]
    digests: set[str] = field(default_factory=set)  # its rate-limit buckets, deleted after

    def digest(self, category: str, caller: str) -> str:
        """What the store sees for (category, caller) under this installation's secret."""
        secret = derive_key_secret(self.secret_key)
        digest = storage_key(category, caller, secret=secret).partition("/")[2]
        self.digests.add(digest)
        return digest


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        services_unavailable("Redis")
    try:
        yield client
    finally:
        client.close()


async def _seed(db_url: str, var_dir: Path) -> dict[str, SeededUser]:
    container = build_container(make_settings(db_url, var_dir))
    try:
        org_id = await create_org(container, "scale-out")
        return {
            name: await create_user(
                container,
                org_id,
                f"{name}@scale-out.example.com",
                password=PASSWORD,
                slug="scale-out",
            )
            for name in ("limited", "solo", "session", "clinician")
        }
    finally:
        await container.dispose()


@pytest.fixture
def inst(
    redis_client: redis.Redis, migrated_databases: MigratedDatabases, tmp_path: Path
) -> Iterator[Installation]:
    """A fresh migrated PostgreSQL database with one clinic and four clinicians, and the
    environment every process of the installation shares; its Redis buckets are deleted after
    (they would expire within a minute anyway)."""
    url = migrated_databases.postgres("clinicos_scale")
    # Per test: its rate-limit digests are its own, so other tests' buckets are never touched.
    secret_key = secrets.token_urlsafe(48)
    inst: Installation | None = None
    try:
        users = asyncio.run(_seed(url, tmp_path))
        env = {
            "CLINICOS_ENV": "test",
            "CLINICOS_DATABASE_URL": url,
            "CLINICOS_DATABASE__APP_ROLE": "clinicos_app",
            "CLINICOS_REDIS_URL": REDIS_URL,
            "CLINICOS_SECRET_KEY": secret_key,
            "CLINICOS_VAR_DIR": str(tmp_path),
            "CLINICOS_HTTP__HOST": LOOPBACK,
            "CLINICOS_OUTBOX__RUN_IN_PROCESS": "false",
            "CLINICOS_OUTBOX__BATCH_SIZE": "2",
            "CLINICOS_OUTBOX__POLL_INTERVAL_SECONDS": "0.05",
            "CLINICOS_RATE_LIMIT__READ": f"{READ_BUDGET}/minute",
            "CLINICOS_RATE_LIMIT__WRITE": "1000/minute",
            "CLINICOS_MAIL__BACKEND": "file",
            # The seeded hashes' parameters, so no sign-in spends time re-hashing.
            "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
            "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
            "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
        }
        inst = Installation(url, env, secret_key, users)
        for user in users.values():
            for category in ("read", "write"):
                inst.digest(category, f"user:{user.id}")
            inst.digest("auth", f"{user.email}|{LOOPBACK}")
        inst.digest("write", f"refresh|{LOOPBACK}")
        yield inst
    finally:
        drop_pg_database(url)
        if inst is not None:
            for digest in inst.digests:
                stale = list(redis_client.scan_iter(match=f"{DEFAULT_KEY_PREFIX}:*{digest}*"))
                if stale:
                    redis_client.delete(*stale)


# --- HTTP helpers -------------------------------------------------------------------------------


def _http(process: Process) -> httpx.Client:
    return httpx.Client(base_url=process.base_url, timeout=15.0, trust_env=False)


def sign_in(process: Process, user: SeededUser) -> dict[str, str]:
    with _http(process) as http:
        response = http.post(
            "/api/v1/auth/login", json={"email": user.email, "password": user.password}
        )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def me(process: Process, access_token: str) -> httpx.Response:
    with _http(process) as http:
        return http.get("/api/v1/me", headers={"authorization": f"Bearer {access_token}"})


# --- the parts ----------------------------------------------------------------------------------


def check_shared_rate_limit(inst: Installation, a: Process, b: Process, store: redis.Redis) -> None:
    # One process alone: the (budget + 1)-th read is refused.
    solo = sign_in(a, inst.users["solo"])["access_token"]
    alone = [me(a, solo).status_code for _ in range(READ_BUDGET + 1)]
    assert alone == [200] * READ_BUDGET + [429]

    # Alternating between the two processes: refused at exactly the same count, not twice it.
    token = sign_in(a, inst.users["limited"])["access_token"]
    answers = [me((a, b)[i % 2], token) for i in range(READ_BUDGET + 1)]
    allowed, refused = answers[:READ_BUDGET], answers[READ_BUDGET]
    assert [r.status_code for r in allowed] == [200] * READ_BUDGET
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in allowed]
    assert remaining == list(range(READ_BUDGET - 1, -1, -1)), "one budget counted down by both"
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    # And the other process, asked next, refuses too.
    assert me(b if READ_BUDGET % 2 == 0 else a, token).status_code == 429

    # The budget is in Redis, under the digest of the user's key (never the user id itself).
    digest = inst.digest("read", f"user:{inst.users['limited'].id}")
    stored = [k.decode() for k in store.scan_iter(match=f"{DEFAULT_KEY_PREFIX}:*{digest}*")]
    assert stored, "no rate-limit bucket in Redis for the user"
    assert not [k for k in stored if inst.users["limited"].id in k]


def check_sessions_on_either_process(inst: Installation, a: Process, b: Process) -> None:
    tokens = sign_in(a, inst.users["session"])
    seen_on_b = me(b, tokens["access_token"])
    assert seen_on_b.status_code == 200, seen_on_b.text
    assert seen_on_b.json()["user"]["email"] == inst.users["session"].email

    with _http(b) as http:
        refreshed = http.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert me(a, new["access_token"]).status_code == 200  # B's tokens are good on A

    with _http(a) as http:
        out = http.post(
            "/api/v1/auth/logout", headers={"authorization": f"Bearer {new['access_token']}"}
        )
    assert out.status_code == 204, out.text
    assert me(b, new["access_token"]).status_code == 401  # ended on A, refused on B
    with _http(b) as http:
        again = http.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


def evaluate_on_both(inst: Installation, a: Process, b: Process) -> list[str]:
    """EVALUATIONS CDS evaluations, alternating between the processes; their evaluation ids."""
    tokens = {p.name: sign_in(p, inst.users["clinician"])["access_token"] for p in (a, b)}
    bodies = example_request_bodies()
    ids: list[str] = []
    with _http(a) as on_a, _http(b) as on_b:
        for i in range(EVALUATIONS):
            http, process = ((on_a, a), (on_b, b))[i % 2]
            response = http.post(
                "/api/v1/cds/evaluate",
                content=bodies[i % len(bodies)],
                headers={
                    "authorization": f"Bearer {tokens[process.name]}",
                    "content-type": "application/json",
                },
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["evaluation_id"])
    return ids


def wait_until_drained(db_url: str) -> None:
    """Until no outbox message is pending (the workers run on their own; we only look). A dead
    message ends the wait too: the status assertion then names it."""
    deadline = time.monotonic() + DRAIN_SECONDS
    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM outbox_message WHERE status = 'pending'"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.1)
    pytest.fail(f"the outbox was not drained within {DRAIN_SECONDS}s")


def handler_runs(worker: Process) -> dict[str, float]:
    """This worker's ``clinicos_outbox_handler_runs_total`` for the KPI handler, by outcome."""
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        text = http.get(f"{worker.base_url}/metrics").text
    runs: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "clinicos_outbox_handler_runs":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("handler") == KPI_HANDLER:
                runs[sample.labels["outcome"]] = sample.value
    return runs


@dataclass(frozen=True)
class Bookkeeping:
    statuses: dict[str, int]  # outbox_message status -> count
    evaluation_messages: int
    deliveries_per_message: dict[int, int]  # KPI handler rows per evaluation message
    kpi_evaluation_ids: list[str]  # governance_kpi_event.evaluation_id, kind 'evaluation'


def read_bookkeeping(db_url: str) -> Bookkeeping:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        statuses: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM outbox_message GROUP BY status").fetchall()
        )
        seqs = [
            row[0]
            for row in conn.execute(
                "SELECT seq FROM outbox_message WHERE event_type = %s", (EVALUATION_EVENT,)
            )
        ]
        deliveries: dict[int, int] = dict(
            conn.execute(
                "SELECT m.seq, count(d.message_seq) FROM outbox_message m "
                "LEFT JOIN outbox_delivery d ON d.message_seq = m.seq AND d.handler = %s "
                "WHERE m.event_type = %s GROUP BY m.seq",
                (KPI_HANDLER, EVALUATION_EVENT),
            ).fetchall()
        )
        kpi = [
            row[0]
            for row in conn.execute(
                "SELECT evaluation_id FROM governance_kpi_event WHERE kind = 'evaluation'"
            )
        ]
    return Bookkeeping(statuses, len(seqs), deliveries, kpi)


# --- the test -----------------------------------------------------------------------------------


def test_two_api_processes_and_two_workers_share_limits_sessions_and_the_outbox(
    inst: Installation, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # All four processes start at once (their start-ups overlap), each waited on until up.
    with installation(2, 2, inst.env, tmp_path) as ((a, b), workers):
        check_shared_rate_limit(inst, a, b, redis_client)
        check_sessions_on_either_process(inst, a, b)
        evaluation_ids = evaluate_on_both(inst, a, b)
        wait_until_drained(inst.db_url)
        runs = [handler_runs(worker) for worker in workers]
    books = read_bookkeeping(inst.db_url)
    print(f"KPI handler runs per worker: {json.dumps(runs)}")  # shown on failure

    # Nothing pending, nothing dead: every message delivered.
    assert set(books.statuses) == {"delivered"}, books.statuses
    # One outbox message per evaluation, each handled by the KPI projection exactly once.
    assert books.evaluation_messages == EVALUATIONS
    assert set(books.deliveries_per_message.values()) == {1}
    assert sorted(books.kpi_evaluation_ids) == sorted(evaluation_ids)
    # Across the two workers: EVALUATIONS successful runs in all, and not one handler run that
    # found another worker had it (no message was claimed by both) or failed.
    assert sum(r.get("ok", 0.0) for r in runs) == EVALUATIONS
    assert all(r.get("skipped_duplicate", 0.0) == 0 for r in runs), runs
    assert all(r.get("failed", 0.0) == 0 for r in runs), runs
    # Both workers took part (batches of 2, messages arriving over the whole run).
    assert all(r.get("ok", 0.0) > 0 for r in runs), runs
