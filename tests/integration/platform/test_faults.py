"""Crash and fault tests with real processes (issue 9, point 4): what clinicos does when the
things around it fail, observed from outside, on real ``clinicos serve``/``clinicos worker``
processes and real PostgreSQL/Redis servers.

- the outbox worker SIGKILLed mid-batch: a new worker takes over after the lease expires, every
  message is handled, each handler's effect exactly once, the audit chain verifies;
- PostgreSQL stopped (immediate: a crash) under traffic and started again: every request answers
  a quick 503 problem meanwhile, the same server process serves again once it is back, no
  acknowledged write is lost;
- Redis killed under traffic: sign-in fails closed (503), reads fail open and
  ``clinicos_rate_limit_store_failures_total`` counts both; Redis back on the same port: limits
  apply again without restarting clinicos;
- a read-only PostgreSQL (what a failover onto a standby looks like) and a full disk under
  SQLite (a small tmpfs, filled up): writes answer a 503 problem naming the condition
  (``database_read_only``, ``database_full``) and no PHI, nothing is half-written, reads that
  write nothing keep working (a chart read writes its audit row, so it is refused too: no
  unaudited PHI access), and after the condition clears the database is intact and writable.
  503 rather than 507: the condition is the server's and temporary, clients already retry a
  503 after ``Retry-After``, and 507 is WebDAV's, which generic clients do not know;
- PHI key rotation (add, promote, re-encrypt) and a backup run while a client writes: no request
  fails, every acknowledged write reads back decrypted, and the backup restores into a fresh
  database holding every write acknowledged before it started, its audit chain intact.

PostgreSQL outages use a private cluster and Redis outages a private redis-server
(tests/support/private_services.py): the shared servers are never stopped. The servers and
workers under test are real processes; the operator's CLI steps (``clinicos keys``,
``clinicos backup``) run the real CLI code in the test process, as a process start costs
seconds on a loaded machine. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from bench.cases import example_request_bodies
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from typer.testing import CliRunner

from clinicos import cli as cli_module
from clinicos.bootstrap import build_container
from clinicos.config import read_phi_key_file
from clinicos.governance import ChainReport, verify_audit_chain
from clinicos.governance.handlers import KPI_HANDLER
from clinicos.identity.models import Organization
from clinicos.platform.db.lifecycle import upgrade_and_mark
from clinicos.platform.phi_rotation import new_key_file, write_key_file
from tests.conftest import MigratedDatabases, drop_pg_database, make_settings, services_unavailable
from tests.support.clinicos_processes import (
    HOST,
    Process,
    clean_env,
    free_port,
    spawn,
    stop,
    wait_until_up,
)
from tests.support.identity_fixtures import SeededUser, create_org, create_user
from tests.support.private_services import (
    PrivateCluster,
    PrivateRedis,
    ServiceUnavailableForTest,
    private_postgres,
    private_redis,
)
from tests.support.records_fixtures import patient_body

pytestmark = pytest.mark.slow

PASSWORD = "Fault test password 2026!"  # pragma: allowlist secret
SLUG = "faults"
EVALUATION_EVENT = "cds.EvaluationRecorded"
PROBLEM_JSON = "application/problem+json"
OUTAGE_ANSWER_SECONDS = 5.0  # every request during an outage answers within this
RECOVERY_SECONDS = 15.0  # the same process serves again within this once the service is back
DRAIN_SECONDS = 30.0
POLL = 0.05
# Strings of the seeded patient that no error answer may contain.
PHI_MARKERS = ("Quispe", "Ana Mar", "4821337", "ana.quispe", "211-0000", "6 de Marzo")


# --- installation helpers --------------------------------------------------------------------


def process_env(db_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """What a clinicos process of these tests gets (generous budgets unless overridden)."""
    env = {
        "CLINICOS_ENV": "test",
        "CLINICOS_DATABASE_URL": db_url,
        "CLINICOS_VAR_DIR": str(var_dir),
        "CLINICOS_SECRET_KEY": "fault-tests-" + "s" * 40,  # pragma: allowlist secret
        "CLINICOS_HTTP__HOST": HOST,
        "CLINICOS_OUTBOX__RUN_IN_PROCESS": "false",
        "CLINICOS_MAIL__BACKEND": "file",
        "CLINICOS_RATE_LIMIT__AUTH": "1000/minute",
        "CLINICOS_RATE_LIMIT__WRITE": "10000/minute",
        "CLINICOS_RATE_LIMIT__AI": "10000/minute",
        "CLINICOS_RATE_LIMIT__READ": "10000/minute",
        # The seeded hashes' parameters, so no sign-in spends time re-hashing.
        "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
        "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
        "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
    }
    if db_url.startswith("postgres"):
        env["CLINICOS_DATABASE__APP_ROLE"] = "clinicos_app"
    return clean_env(env | extra)


def seed_users(db_url: str, var_dir: Path, *names: str) -> dict[str, SeededUser]:
    """One clinic and one clinician per name, through the real services."""

    async def _seed() -> dict[str, SeededUser]:
        container = build_container(make_settings(db_url, var_dir))
        try:
            org_id = await create_org(container, SLUG)
            return {
                name: await create_user(
                    container, org_id, f"{name}@{SLUG}.example.com", password=PASSWORD, slug=SLUG
                )
                for name in names
            }
        finally:
            await container.dispose()

    return asyncio.run(_seed())


@contextlib.contextmanager
def api_server(env: dict[str, str], work_dir: Path, name: str = "api") -> Iterator[Process]:
    port = free_port()
    server = spawn(
        name, ["serve", "--no-worker", "--host", HOST, "--port", str(port)], env, work_dir, port
    )
    try:
        wait_until_up(server)
        yield server
    finally:
        stop(server)


def start_worker(env: dict[str, str], work_dir: Path, name: str) -> Process:
    port = free_port()
    worker = spawn(
        name, ["worker", "--metrics-port", str(port)], env, work_dir, port, ready_path=None
    )
    wait_until_up(worker)
    return worker


CLI_SECONDS: dict[str, float] = {}  # how long each CLI run took (printed by the tests)
cli_runner = CliRunner()


def run_cli(env: dict[str, str], *args: str) -> str:
    """``clinicos <args>`` through the real CLI code, in this process (a ``clinicos`` start-up
    costs 2-5 s on a loaded 2-core machine; the server under test is the separate process).
    Only the ``CLINICOS_*`` settings of ``env`` apply. Fails the test on a non-zero exit."""
    started = time.monotonic()
    settings = {k: v for k, v in env.items() if k.startswith("CLINICOS_")}
    result = cli_runner.invoke(cli_module.app, list(args), env=settings)
    CLI_SECONDS[" ".join(args[:2])] = round(time.monotonic() - started, 2)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def assert_audit_verifies(db_url: str, var_dir: Path) -> None:
    """Every audit chain (the installation's and each clinic's) re-hashes intact: what
    ``clinicos audit verify`` does, in-process (a CLI start-up costs seconds here)."""

    async def _verify() -> dict[str, ChainReport]:
        container = build_container(make_settings(db_url, var_dir))
        try:
            async with container.uow() as uow:
                orgs = (await uow.session.execute(select(Organization.slug, Organization.id))).all()
            reports = {}
            for label, org_id in [("(installation)", None), *orgs]:
                async with container.uow(org_id) as uow:
                    reports[label] = await verify_audit_chain(uow, organization_id=org_id)
            return reports
        finally:
            await container.dispose()

    reports = asyncio.run(_verify())
    assert SLUG in reports
    broken = {label: r for label, r in reports.items() if not r.ok}
    assert broken == {}
    assert reports[SLUG].rows_checked > 0


def http_client(server: Process, timeout: float = 15.0) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=timeout, trust_env=False)


def sign_in(http: httpx.Client, user: SeededUser) -> dict[str, str]:
    response = http.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['access_token']}"}


def new_mrn() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"


def assert_clean_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A problem document with ``status``: no stack trace, no PHI, no SQL."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    text = response.text
    for leak in ("Traceback", "sqlalchemy", "psycopg", "sqlite3", "INSERT ", "SELECT "):
        assert leak not in text, text
    for marker in PHI_MARKERS:
        assert marker not in text, text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def assert_log_free_of_phi(process: Process, mrns: Iterable[str] = ()) -> None:
    """Whatever failed, the server's log names no patient (redaction holds under faults)."""
    log = process.log_path.read_text(errors="replace")
    assert [m for m in (*PHI_MARKERS, *mrns) if m in log] == []


def metric_samples(server_url: str, family_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        text = http.get(f"{server_url}/metrics").text
    samples: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != family_name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                samples[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def wait_for(what: str, condition: Callable[[], bool], seconds: float) -> float:
    """Poll ``condition`` until true; returns the seconds it took (fails after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(POLL)
    pytest.fail(f"{what} within {seconds}s")


# --- traffic -------------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str  # "write" | "read"
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: transport error
    body: str
    content_type: str
    patient_id: str | None = None


@dataclass
class Traffic:
    """A client thread writing patients and reading one back, in turn, until stopped."""

    server: Process
    headers: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # patient id -> MRN
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _one(self, http: httpx.Client, kind: str) -> None:
        started = time.monotonic()
        patient_id = None
        try:
            if kind == "write":
                mrn = new_mrn()
                response = http.post(
                    "/api/v1/patients", json=patient_body(mrn=mrn), headers=self.headers
                )
                if response.status_code == 201:
                    patient_id = response.json()["id"]
                    self.acknowledged[patient_id] = mrn
            else:
                some = next(iter(self.acknowledged), None)
                path = f"/api/v1/patients/{some}" if some else "/api/v1/patients"
                response = http.get(path, headers=self.headers)
            status, body = response.status_code, response.text
            content_type = response.headers.get("content-type", "")
        except httpx.TransportError as exc:
            status, body, content_type = 0, type(exc).__name__, ""
        self.answers.append(
            Answer(
                kind, started, time.monotonic() - started, status, body, content_type, patient_id
            )
        )

    def _run(self) -> None:
        with http_client(self.server, timeout=30.0) as http:
            turn = 0
            while not self.stop.is_set():
                self._one(http, "write" if turn % 2 == 0 else "read")
                turn += 1

    def __enter__(self) -> Traffic:
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=60)

    def acked_now(self) -> set[str]:
        """The ids acknowledged so far (``dict.copy`` is atomic while the thread adds more)."""
        return set(self.acknowledged.copy())

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.started >= moment]

    def count_since(self, moment: float, status: int | None = None) -> int:
        return sum(1 for a in self.since(moment) if status is None or a.status == status)


def assert_all_readable(server: Process, headers: dict[str, str], acked: dict[str, str]) -> None:
    """Every acknowledged patient reads back, decrypted (its MRN is the one written)."""
    with http_client(server) as http:
        for patient_id, mrn in acked.items():
            response = http.get(f"/api/v1/patients/{patient_id}", headers=headers)
            assert response.status_code == 200, f"acknowledged patient unreadable: {response.text}"
            assert response.json()["mrn"] == mrn
            assert response.json()["family_name"] == "Quispe Mamani"


# --- 1. the outbox worker killed mid-batch ------------------------------------------------------


def outbox_state(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM outbox_message WHERE event_type = %s GROUP BY status",
        (EVALUATION_EVENT,),
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def abandoned_claims(conn: psycopg.Connection[Any]) -> dict[int, Any]:
    """seq -> claimed_until of messages leased but not finished."""
    rows = conn.execute(
        "SELECT seq, claimed_until FROM outbox_message "
        "WHERE status = 'pending' AND claimed_by IS NOT NULL"
    ).fetchall()
    return {int(seq): until for seq, until in rows}


def test_worker_killed_mid_batch_a_new_worker_delivers_everything_exactly_once(
    migrated_databases: MigratedDatabases, tmp_path: Path
) -> None:
    url = migrated_databases.postgres("clinicos_fault_worker")
    try:
        users = seed_users(url, tmp_path, "clinician")
        env = process_env(
            url,
            tmp_path,
            CLINICOS_OUTBOX__BATCH_SIZE="5",
            CLINICOS_OUTBOX__LEASE_SECONDS="2",
            CLINICOS_OUTBOX__POLL_INTERVAL_SECONDS="0.05",
        )
        bodies = example_request_bodies()
        evaluation_ids: list[str] = []
        failures: list[str] = []
        with (
            api_server(env, tmp_path) as api,
            http_client(api) as http,
            psycopg.connect(url, autocommit=True, connect_timeout=5) as conn,
        ):
            headers = sign_in(http, users["clinician"]) | {"content-type": "application/json"}

            def evaluate(count: int) -> None:
                with http_client(api) as own:  # one client per thread
                    for i in range(count):
                        response = own.post(
                            "/api/v1/cds/evaluate",
                            content=bodies[i % len(bodies)],
                            headers=headers,
                        )
                        if response.status_code != 200:
                            failures.append(f"{response.status_code}: {response.text[:200]}")
                            continue
                        evaluation_ids.append(response.json()["evaluation_id"])

            evaluate(40)  # a backlog, so the worker is busy with batches when it is killed
            first = start_worker(env, tmp_path, "worker-killed")
            # More writes while the worker drains, is killed, and is gone.
            writer = threading.Thread(target=evaluate, args=(15,), daemon=True)
            writer.start()
            try:
                wait_for(
                    "the first worker delivered 10 messages and holds a lease",
                    lambda: (
                        outbox_state(conn).get("delivered", 0) >= 10
                        and bool(abandoned_claims(conn))
                    ),
                    DRAIN_SECONDS,
                )
                os.kill(first.proc.pid, signal.SIGKILL)
                first.proc.wait(timeout=10)
            finally:
                stop(first)
            killed_at_state = outbox_state(conn)
            abandoned = abandoned_claims(conn)
            writer.join(timeout=60)
            assert not writer.is_alive()
            second = start_worker(env, tmp_path, "worker-restarted")
            try:
                wait_for(
                    "the outbox drained after the restart",
                    lambda: set(outbox_state(conn)) == {"delivered"},
                    DRAIN_SECONDS,
                )
                runs = metric_samples(second.base_url, "clinicos_outbox_handler_runs")
            finally:
                stop(second)
            rows = conn.execute(
                "SELECT m.seq, m.status, m.delivered_at, count(d.message_seq) "
                "FROM outbox_message m LEFT JOIN outbox_delivery d "
                "ON d.message_seq = m.seq AND d.handler = %s "
                "WHERE m.event_type = %s GROUP BY m.seq, m.status, m.delivered_at",
                (KPI_HANDLER, EVALUATION_EVENT),
            ).fetchall()
            kpi_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT evaluation_id FROM governance_kpi_event WHERE kind = 'evaluation'"
                )
            ]
        print(  # shown on failure
            f"at kill: {killed_at_state}, abandoned leases: {len(abandoned)}, "
            f"evaluations: {len(evaluation_ids)}, second worker runs: {runs}"
        )
        assert failures == []
        assert first.proc.returncode == -signal.SIGKILL
        # The kill landed mid-drain: some delivered, some still pending, some leased by the dead.
        assert killed_at_state.get("pending", 0) > 0
        assert abandoned, "no message was leased by the killed worker"
        by_seq = {
            seq: (status, delivered_at, deliveries)
            for seq, status, delivered_at, deliveries in rows
        }
        assert len(by_seq) == len(evaluation_ids) == 55
        # Every message delivered, each by the KPI handler exactly once...
        assert {status for status, _, _ in by_seq.values()} == {"delivered"}
        assert {deliveries for _, _, deliveries in by_seq.values()} == {1}
        # ...so each evaluation is projected exactly once: none lost, none twice.
        assert sorted(kpi_ids) == sorted(evaluation_ids)
        # The dead worker's leases were honoured: nobody took those messages before they ran out.
        for seq, claimed_until in abandoned.items():
            delivered_at = by_seq[seq][1]
            assert delivered_at is not None and delivered_at >= claimed_until, seq
        assert_audit_verifies(url, tmp_path)
    finally:
        drop_pg_database(url)


# --- 2. PostgreSQL crashes and comes back --------------------------------------------------------


@contextlib.contextmanager
def private_cluster_database(
    tmp_path: Path, *users: str
) -> Iterator[tuple[PrivateCluster, str, dict[str, SeededUser]]]:
    """A private PostgreSQL cluster with a migrated clinicos database and seeded clinicians."""
    try:
        with private_postgres() as cluster:
            url = cluster.create_database("clinicos")
            upgrade_and_mark(make_settings(url, tmp_path))
            yield cluster, url, seed_users(url, tmp_path, *users)
    except ServiceUnavailableForTest as exc:  # raised before the cluster exists, never after
        services_unavailable(f"a private PostgreSQL cluster ({exc})")


def test_postgres_crash_under_traffic_answers_503_quickly_then_the_same_process_recovers(
    tmp_path: Path,
) -> None:
    with private_cluster_database(tmp_path, "clinician") as (cluster, url, users):
        env = process_env(url, tmp_path, CLINICOS_DATABASE__CONNECT_TIMEOUT_SECONDS="2")
        with api_server(env, tmp_path) as api:
            with http_client(api) as http:
                headers = sign_in(http, users["clinician"])
            with Traffic(api, headers) as traffic:
                wait_for("20 writes acknowledged", lambda: len(traffic.acknowledged) >= 20, 30)
                before_stop = time.monotonic()
                cluster.stop("immediate")
                down = time.monotonic()
                wait_for(
                    "10 answers during the outage", lambda: traffic.count_since(down) >= 10, 30
                )
                restarting = time.monotonic()
                cluster.start()
                up = time.monotonic()
                recovery = wait_for(
                    "a write acknowledged after PostgreSQL came back",
                    lambda: traffic.count_since(up, 201) >= 1,
                    RECOVERY_SECONDS,
                )
                wait_for("10 more answers", lambda: traffic.count_since(up) >= 12, 30)
            during = [
                a
                for a in traffic.answers
                if down <= a.started and a.started + a.seconds < restarting
            ]
            print(  # shown on failure
                f"acked={len(traffic.acknowledged)} answers={len(traffic.answers)} "
                f"during outage={len(during)} max 503 latency="
                f"{max((a.seconds for a in during), default=0):.3f}s recovery={recovery:.2f}s "
                f"statuses={sorted({a.status for a in traffic.answers})}"
            )
            assert api.proc.poll() is None, "the server died"
            # During the outage: nothing but quick, clean 503 problems.
            assert len(during) >= 10
            for answer in during:
                assert answer.status == 503, (answer.status, answer.body[:300])
                assert answer.content_type == PROBLEM_JSON
                assert json.loads(answer.body)["code"] == "service_unavailable", answer.body
                assert answer.seconds < OUTAGE_ANSWER_SECONDS, answer.seconds
                assert "Traceback" not in answer.body
                assert not any(m in answer.body for m in PHI_MARKERS)
            # No other failure ever (requests cut mid-flight by the crash may be 503 too).
            unexpected = [
                (a.status, a.body[:200]) for a in traffic.answers if a.status not in (200, 201, 503)
            ]
            assert unexpected == []
            ok = {"write": 201, "read": 200}
            before = [a for a in traffic.answers if a.started + a.seconds < before_stop]
            assert [a.status for a in before if a.status != ok[a.kind]] == []
            assert traffic.since(up)[-1].status in (200, 201)
            assert_all_readable(api, headers, traffic.acknowledged)
        assert_log_free_of_phi(api, traffic.acknowledged.values())
        assert_audit_verifies(url, tmp_path)


# --- 3. Redis killed under traffic ------------------------------------------------------------


READ_BUDGET = 8


def test_redis_killed_sign_in_fails_closed_reads_fail_open_counted_then_limits_return(
    migrated_databases: MigratedDatabases, tmp_path: Path
) -> None:
    url = migrated_databases.sqlite(tmp_path / "redis-fault.db")
    users = seed_users(url, tmp_path, "reader", "late")
    try:
        with private_redis(tmp_path) as store:
            run_redis_outage(store, url, users, tmp_path)
    except ServiceUnavailableForTest as exc:  # no redis-server: before anything ran
        services_unavailable(f"a private Redis ({exc})")


def run_redis_outage(
    store: PrivateRedis, url: str, users: dict[str, SeededUser], tmp_path: Path
) -> None:
    env = process_env(
        url,
        tmp_path,
        CLINICOS_REDIS_URL=store.url,
        CLINICOS_RATE_LIMIT__READ=f"{READ_BUDGET}/minute",
    )
    failures = "clinicos_rate_limit_store_failures"
    with api_server(env, tmp_path) as api, http_client(api) as http:
        reader = sign_in(http, users["reader"])
        assert http.get("/api/v1/me", headers=reader).status_code == 200
        assert metric_samples(api.base_url, failures) == {}

        store.kill()
        started = time.monotonic()
        login = http.post(
            "/api/v1/auth/login",
            json={"email": users["late"].email, "password": PASSWORD},
        )
        login_seconds = time.monotonic() - started
        problem = assert_clean_problem(login, 503)
        assert problem["code"] == "service_unavailable"
        assert login.headers["Retry-After"]
        assert users["late"].email not in login.text
        reads = [http.get("/api/v1/me", headers=reader) for _ in range(2 * READ_BUDGET)]
        counted = metric_samples(api.base_url, failures)
        print(f"login answered 503 in {login_seconds:.3f}s; store failures: {counted}")
        assert login_seconds < OUTAGE_ANSWER_SECONDS
        # Fail open: twice the budget, every read served (without a budget's headers).
        assert [r.status_code for r in reads] == [200] * (2 * READ_BUDGET)
        assert counted[(("category", "auth"), ("policy", "fail_closed"))] == 1
        assert counted[(("category", "read"), ("policy", "fail_open"))] >= 2 * READ_BUDGET
        assert users["late"].email not in json.dumps(list(counted))

        store.start()  # same port, empty: every budget starts afresh
        signed_in: list[dict[str, str]] = []

        def sign_in_works() -> bool:
            answer = http.post(
                "/api/v1/auth/login",
                json={"email": users["late"].email, "password": PASSWORD},
            )
            if answer.status_code == 200:
                signed_in.append({"authorization": f"Bearer {answer.json()['access_token']}"})
            return answer.status_code == 200

        recovery = wait_for("sign-in works again", sign_in_works, RECOVERY_SECONDS)
        late = signed_in[0]
        after = [http.get("/api/v1/me", headers=late) for _ in range(READ_BUDGET + 1)]
        print(f"sign-in recovered {recovery:.3f}s after Redis restarted")
        assert [r.status_code for r in after] == [200] * READ_BUDGET + [429]
        assert after[0].headers["X-RateLimit-Limit"] == str(READ_BUDGET)
        assert api.proc.poll() is None
    assert_log_free_of_phi(api, [users["late"].email, users["reader"].email])


# --- 4. read-only database, full disk ----------------------------------------------------------


def patient_count_pg(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM patient").fetchone()
    assert row is not None
    return int(row[0])


def patient_ids_pg(url: str) -> set[str]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM patient")}


def set_read_only(cluster: PrivateCluster, on: bool) -> None:
    """ALTER SYSTEM + reload: every session, the pooled ones too, becomes read-only (as on a
    hot standby) or writable again."""
    with psycopg.connect(
        cluster.url(),
        autocommit=True,
        connect_timeout=5,
        options="-c default_transaction_read_only=off",
    ) as conn:
        if on:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")

    def applied() -> bool:
        with psycopg.connect(cluster.url(), connect_timeout=5) as probe:
            row = probe.execute("SHOW default_transaction_read_only").fetchone()
        return row is not None and row[0] == ("on" if on else "off")

    wait_for("the read-only setting applied", applied, 10)


def refused_writes(
    http: httpx.Client, headers: dict[str, str], count: int
) -> list[tuple[float, dict[str, Any]]]:
    refused = []
    for _ in range(count):
        started = time.monotonic()
        response = http.post("/api/v1/patients", json=patient_body(mrn=new_mrn()), headers=headers)
        refused.append((time.monotonic() - started, assert_clean_problem(response, 503)))
    return refused


def test_read_only_postgres_refuses_writes_with_503_and_recovers_intact(tmp_path: Path) -> None:
    with private_cluster_database(tmp_path, "clinician") as (cluster, url, users):
        env = process_env(url, tmp_path)
        with api_server(env, tmp_path) as api, http_client(api) as http:
            headers = sign_in(http, users["clinician"])
            acked: dict[str, str] = {}
            for _ in range(5):
                mrn = new_mrn()
                created = http.post("/api/v1/patients", json=patient_body(mrn=mrn), headers=headers)
                assert created.status_code == 201, created.text
                acked[created.json()["id"]] = mrn
            before = patient_count_pg(url)

            set_read_only(cluster, True)
            refused = refused_writes(http, headers, 5)
            read = http.get(f"/api/v1/patients/{next(iter(acked))}", headers=headers)
            me = http.get("/api/v1/me", headers=headers)
            ready = http.get("/ready")
            print(
                f"read-only: writes {[p['code'] for _, p in refused]} in "
                f"{max(s for s, _ in refused):.3f}s max; read {read.status_code}; "
                f"me {me.status_code}; ready {ready.status_code}"
            )
            # What writes nothing still works: the caller's own profile, readiness.
            assert me.status_code == 200, me.text
            assert ready.status_code == 200, ready.text
            assert {p["code"] for _, p in refused} == {"database_read_only"}
            assert max(s for s, _ in refused) < OUTAGE_ANSWER_SECONDS
            assert patient_count_pg(url) == before  # nothing half-written
            # A chart read writes its audit row (no unaudited PHI access): refused cleanly too.
            assert assert_clean_problem(read, 503)["code"] == "database_read_only"

            set_read_only(cluster, False)
            again = http.post("/api/v1/patients", json=patient_body(mrn=new_mrn()), headers=headers)
            assert again.status_code == 201, again.text
            assert patient_count_pg(url) == before + 1
            assert_all_readable(api, headers, acked)
        assert_log_free_of_phi(api, acked.values())
        assert_audit_verifies(url, tmp_path)


@contextlib.contextmanager
def small_filesystem(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted on ``path`` (needs root); always unmounted."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem is full (ENOSPC); returns it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Top off what is left below a chunk.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 512)
    return filler


def sqlite_facts(path: Path) -> tuple[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        patients = conn.execute("SELECT count(*) FROM patient").fetchone()[0]
    return str(integrity), int(patients)


def test_full_disk_under_sqlite_refuses_writes_with_503_and_recovers_intact(
    migrated_databases: MigratedDatabases, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "small", 24) as small:
        db_path = small / "clinicos.db"
        url = migrated_databases.sqlite(db_path)
        users = seed_users(url, tmp_path, "clinician")
        env = process_env(url, tmp_path)
        with api_server(env, tmp_path) as api, http_client(api) as http:
            headers = sign_in(http, users["clinician"])
            acked: dict[str, str] = {}
            for _ in range(5):
                mrn = new_mrn()
                created = http.post("/api/v1/patients", json=patient_body(mrn=mrn), headers=headers)
                assert created.status_code == 201, created.text
                acked[created.json()["id"]] = mrn

            filler = fill(small)
            refused = refused_writes(http, headers, 5)
            read = http.get(f"/api/v1/patients/{next(iter(acked))}", headers=headers)
            me = http.get("/api/v1/me", headers=headers)
            print(
                f"disk full: writes {[p['code'] for _, p in refused]} in "
                f"{max(s for s, _ in refused):.3f}s max; read {read.status_code}; "
                f"me {me.status_code}"
            )
            assert {p["code"] for _, p in refused} == {"database_full"}
            assert max(s for s, _ in refused) < OUTAGE_ANSWER_SECONDS
            # A chart read writes its audit row in its own transaction (no unaudited PHI
            # access), so it is refused too, cleanly; what writes nothing still works.
            assert assert_clean_problem(read, 503)["code"] == "database_full"
            assert me.status_code == 200, me.text

            filler.unlink()
            again = http.post("/api/v1/patients", json=patient_body(mrn=new_mrn()), headers=headers)
            assert again.status_code == 201, again.text
            acked[again.json()["id"]] = json.loads(again.text)["mrn"]
            assert_all_readable(api, headers, acked)
        assert_log_free_of_phi(api, acked.values())
        integrity, patients = sqlite_facts(db_path)
        assert integrity == "ok"
        assert patients == len(acked)  # the refused writes left nothing behind
        assert_audit_verifies(url, tmp_path)


# --- 5. key rotation and backup under load -----------------------------------------------------


def test_phi_key_rotation_and_backup_under_write_load_lose_nothing(
    migrated_databases: MigratedDatabases, tmp_path: Path
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        services_unavailable("pg_dump/pg_restore")
    url = migrated_databases.postgres("clinicos_fault_rotation")
    restored_url = migrated_databases.postgres("clinicos_fault_restored")
    try:
        users = seed_users(url, tmp_path, "clinician")
        key_file = tmp_path / "phi-keys.json"
        write_key_file(key_file, new_key_file())
        env = process_env(url, tmp_path, CLINICOS_PHI__KEY_FILE=str(key_file))
        with api_server(env, tmp_path) as api:
            with http_client(api) as http:
                headers = sign_in(http, users["clinician"])
            with Traffic(api, headers) as traffic:
                wait_for("10 writes acknowledged", lambda: len(traffic.acknowledged) >= 10, 30)
                rotation_started = time.monotonic()
                run_cli(env, "keys", "add")
                run_cli(env, "keys", "promote", "2")
                reencrypted = run_cli(env, "keys", "reencrypt", "--batch-size", "5")
                backup_started = time.monotonic()
                acked_before_backup = traffic.acked_now()
                backup_path = Path(
                    run_cli(env, "backup", "create", "--dest", str(tmp_path / "backups"))
                    .strip()
                    .splitlines()[-1]
                )
                mark = time.monotonic()
                # The client was served while the rotation ran and while the backup ran.
                acked_during_rotation = traffic.count_since(rotation_started, 201) - (
                    traffic.count_since(backup_started, 201)
                )
                served_during_backup = [
                    a
                    for a in traffic.answers
                    if a.started < mark and a.started + a.seconds > backup_started
                ]
                wait_for(
                    "writes go on after the backup", lambda: traffic.count_since(mark, 201) >= 3, 30
                )
            print(
                f"acked={len(traffic.acknowledged)} during rotation={acked_during_rotation} "
                f"before backup={len(acked_before_backup)} "
                f"answered during backup={len(served_during_backup)} "
                f"answers={len(traffic.answers)} cli seconds={CLI_SECONDS}\n{reencrypted}"
            )
            bad = [(a.status, a.body[:200]) for a in traffic.answers if a.status not in (200, 201)]
            assert bad == [], bad
            assert acked_during_rotation >= 1
            assert served_during_backup
            assert_all_readable(api, headers, traffic.acknowledged)
            decryption_failures = metric_samples(api.base_url, "clinicos_phi_decryption_failures")
            assert not any(decryption_failures.values()), decryption_failures
        assert "failed to decrypt:                  0" in reencrypted
        assert re.search(r"values re-encrypted:\s+[1-9]", reencrypted), reencrypted
        assert read_phi_key_file(key_file).active_version == 2
        restored_env = process_env(restored_url, tmp_path, CLINICOS_PHI__KEY_FILE=str(key_file))
        run_cli(restored_env, "backup", "restore", str(backup_path))
        # Everything acknowledged before the backup started is in the restored database.
        assert acked_before_backup <= patient_ids_pg(restored_url)
        assert_audit_verifies(restored_url, tmp_path)
        assert_audit_verifies(url, tmp_path)
    finally:
        drop_pg_database(url)
        drop_pg_database(restored_url)


# --- 7. the API process killed under real writes ------------------------------------------------


@pytest.mark.slow
def test_api_killed_under_writes_loses_no_acknowledged_write_and_the_outbox_resumes(
    migrated_databases: MigratedDatabases, tmp_path: Path
) -> None:
    """``kill -9`` of ``clinicos serve`` while one client registers patients and another runs
    CDS evaluations (each an evaluation row, a governance event, an audit row and an outbox
    message in one transaction). tests/integration/platform/test_crash_durability.py does the
    same with a probe app on both engines; this is the real application: after the kill a new
    server reads back every acknowledged patient, every acknowledged evaluation has exactly one
    outbox message, a worker then delivers them all exactly once, and the chain verifies."""
    url = migrated_databases.postgres("clinicos_fault_api")
    try:
        users = seed_users(url, tmp_path, "clinician")
        env = process_env(url, tmp_path, CLINICOS_OUTBOX__POLL_INTERVAL_SECONDS="0.05")
        bodies = example_request_bodies()
        evaluation_ids: list[str] = []
        stop_evaluating = threading.Event()
        with api_server(env, tmp_path, "api-killed") as first, http_client(first) as http:
            headers = sign_in(http, users["clinician"])

            def evaluate() -> None:
                with http_client(first) as own:
                    i = 0
                    while not stop_evaluating.is_set():
                        try:
                            response = own.post(
                                "/api/v1/cds/evaluate",
                                content=bodies[i % len(bodies)],
                                headers=headers | {"content-type": "application/json"},
                            )
                        except httpx.TransportError:
                            return  # the server is gone
                        if response.status_code == 200:
                            evaluation_ids.append(response.json()["evaluation_id"])
                        i += 1

            evaluator = threading.Thread(target=evaluate, daemon=True)
            with Traffic(first, headers) as traffic:
                evaluator.start()
                wait_for(
                    "10 patients and 10 evaluations acknowledged",
                    lambda: len(traffic.acknowledged) >= 10 and len(evaluation_ids) >= 10,
                    DRAIN_SECONDS,
                )
                os.kill(first.proc.pid, signal.SIGKILL)
                first.proc.wait(timeout=10)
                stop_evaluating.set()
            evaluator.join(timeout=30)
            acked_patients = dict(traffic.acknowledged)
            acked_evaluations = list(evaluation_ids)
        assert first.proc.returncode == -signal.SIGKILL

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            stored_patients = patient_ids_pg(url)
            messages = dict(
                conn.execute(
                    "SELECT payload->>'evaluation_id', count(*) FROM outbox_message "
                    "WHERE event_type = %s GROUP BY 1",
                    (EVALUATION_EVENT,),
                ).fetchall()
            )
            stored_evaluations = {
                str(r[0]) for r in conn.execute("SELECT id FROM cds_evaluation").fetchall()
            }
        # Nothing acknowledged was lost; at most the one request in flight at the kill committed
        # without its answer reaching the client.
        assert set(acked_patients) <= stored_patients
        assert len(stored_patients - set(acked_patients)) <= 1
        assert set(acked_evaluations) <= stored_evaluations
        assert len(stored_evaluations - set(acked_evaluations)) <= 1
        # Each stored evaluation has its outbox message, exactly one; none without its row.
        assert messages == dict.fromkeys(stored_evaluations, 1)

        with api_server(env, tmp_path, "api-restarted") as second, http_client(second) as http:
            assert_all_readable(second, sign_in(http, users["clinician"]), acked_patients)
        worker = start_worker(env, tmp_path, "worker-after-crash")
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                wait_for(
                    "the worker delivered every message",
                    lambda: set(outbox_state(conn)) == {"delivered"},
                    DRAIN_SECONDS,
                )
                kpi_ids = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT evaluation_id FROM governance_kpi_event WHERE kind = 'evaluation'"
                    )
                ]
        finally:
            stop(worker)
        assert sorted(kpi_ids) == sorted(stored_evaluations)
        assert_audit_verifies(url, tmp_path)
    finally:
        drop_pg_database(url)
