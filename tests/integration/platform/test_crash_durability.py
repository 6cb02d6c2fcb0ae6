"""kill -9 of the server during a burst of writes loses no committed row and leaves the outbox
consistent: a real uvicorn subprocess is SIGKILLed mid-burst, on SQLite and on PostgreSQL.

Every probe the server acknowledged (201, sent only after the unit of work committed) must be in
``crash_probe``; every ``crash_probe`` row must have exactly one ``test.ProbeWritten`` outbox
message and no such message may exist without its row (both written in one transaction). Rows
that committed but whose 201 was lost to the kill are allowed: "committed" is what the client saw.
A 503 (SQLite busy timeout under write contention) is a refusal: its probe must not be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import MigratedDatabases, drop_pg_database
from tests.support.clinicos_processes import Process, clean_env, spawn_uvicorn, stop, wait_until_up
from tests.support.crash_app import PROBE_EVENT_TYPE, create_table_sql

pytestmark = pytest.mark.slow

APP_FACTORY = "tests.support.crash_app:create"
SENDERS = 12
MAX_REQUESTS = 2000
BURST_SECONDS = 10.0
KILL_AFTER_ACKS = 300
MAX_KILL_DELAY_SECONDS = 0.1
STOP_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 15.0  # above SQLite's 5 s busy timeout, so the server answers first


@dataclass(frozen=True)
class Database:
    backend: str
    url: str  # what the server gets as CLINICOS_DATABASE_URL
    sqlite_path: Path | None = None


@dataclass
class Burst:
    acknowledged: set[str] = field(default_factory=set)  # 201: committed
    refused: set[str] = field(default_factory=set)  # 503 (e.g. SQLite busy): rolled back
    issued: int = 0
    unexpected: list[str] = field(default_factory=list)  # other answers, errors before the kill
    cut_by_kill: int = 0  # requests that failed at the transport level after the kill
    acked_at_kill: int = -1


@dataclass(frozen=True)
class Snapshot:
    probe_ids: set[str]
    outbox_probe_ids: list[str]  # payload probe_id of every test.ProbeWritten message
    integrity: list[tuple[Any, ...]] | None = None  # SQLite: PRAGMA integrity_check rows
    journal_mode: str | None = None  # SQLite: persistent in the file, "wal" expected


# --- database ---------------------------------------------------------------------------------


def create_probe_table(db: Database) -> None:
    sql = create_table_sql(db.backend)
    if db.sqlite_path is not None:
        with contextlib.closing(sqlite3.connect(db.sqlite_path)) as conn:
            conn.execute(sql)
            conn.commit()
        return
    with psycopg.connect(db.url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, migrated_databases: MigratedDatabases, tmp_path: Path
) -> Iterator[Database]:
    """A fresh, migrated database with the crash_probe table, private to this test."""
    if request.param == "sqlite":
        path = tmp_path / "crash.db"
        db = Database("sqlite", migrated_databases.sqlite(path), path)
        create_probe_table(db)
        yield db
        return
    url = migrated_databases.postgres("clinicos_crash")
    try:
        db = Database("postgresql", url)
        create_probe_table(db)
        yield db
    finally:
        drop_pg_database(url)


def _payload_probe_id(payload: Any) -> str:
    data = json.loads(payload) if isinstance(payload, str | bytes) else payload
    return str(data["probe_id"])


def read_sqlite(path: Path) -> Snapshot:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        probes = {row[0] for row in conn.execute("SELECT probe_id FROM crash_probe")}
        payloads = conn.execute(
            "SELECT payload FROM outbox_message WHERE event_type = ?", (PROBE_EVENT_TYPE,)
        ).fetchall()
    return Snapshot(
        probes, [_payload_probe_id(row[0]) for row in payloads], integrity, journal_mode
    )


def read_postgres(url: str) -> Snapshot:
    with psycopg.connect(url, connect_timeout=5) as conn:
        probes = {row[0] for row in conn.execute("SELECT probe_id FROM crash_probe")}
        payloads = conn.execute(
            "SELECT payload FROM outbox_message WHERE event_type = %s", (PROBE_EVENT_TYPE,)
        ).fetchall()
    return Snapshot(probes, [_payload_probe_id(row[0]) for row in payloads])


def wal_path(db: Database) -> Path:
    assert db.sqlite_path is not None
    return db.sqlite_path.with_name(db.sqlite_path.name + "-wal")


def read_snapshot(db: Database) -> Snapshot:
    return read_sqlite(db.sqlite_path) if db.sqlite_path else read_postgres(db.url)


# --- server process -----------------------------------------------------------------------------


@contextlib.contextmanager
def running_server(db: Database, tmp_path: Path, name: str) -> Iterator[Process]:
    """``uvicorn --factory tests.support.crash_app:create`` on a free port, up on ``/health``;
    always reaped."""
    env = clean_env(
        {
            "CLINICOS_DATABASE_URL": db.url,
            "CLINICOS_ENV": "test",
            "CLINICOS_VAR_DIR": str(tmp_path),
        },
        test_apps=True,
    )
    server = spawn_uvicorn(name, APP_FACTORY, env, tmp_path)
    try:
        wait_until_up(server)
        yield server
    finally:
        stop(server)


# --- the burst --------------------------------------------------------------------------------


async def send_probes(
    http: httpx.AsyncClient, burst: Burst, killed: asyncio.Event, deadline: float
) -> None:
    while not killed.is_set() and burst.issued < MAX_REQUESTS and time.monotonic() < deadline:
        burst.issued += 1
        probe_id = str(uuid.uuid4())
        try:
            response = await http.post("/probe", json={"probe_id": probe_id})
        except httpx.TransportError as exc:
            if killed.is_set():
                burst.cut_by_kill += 1
            else:
                burst.unexpected.append(f"{type(exc).__name__} before the kill")
            continue
        if response.status_code == 201 and response.json() == {"probe_id": probe_id}:
            burst.acknowledged.add(probe_id)
        elif response.status_code == 503:
            burst.refused.add(probe_id)
        else:
            burst.unexpected.append(f"{response.status_code}: {response.text[:200]}")


async def kill_when_enough_acked(
    proc: subprocess.Popen[bytes], burst: Burst, killed: asyncio.Event, deadline: float
) -> None:
    while len(burst.acknowledged) < KILL_AFTER_ACKS and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(random.uniform(0.0, MAX_KILL_DELAY_SECONDS))
    burst.acked_at_kill = len(burst.acknowledged)
    killed.set()  # before the signal, so every failure it causes is counted as "cut by kill"
    os.kill(proc.pid, signal.SIGKILL)


async def burst_then_kill(server: Process) -> Burst:
    """SENDERS concurrent writers; SIGKILL once KILL_AFTER_ACKS were acknowledged (+ jitter)."""
    burst, killed = Burst(), asyncio.Event()
    deadline = time.monotonic() + BURST_SECONDS
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits, trust_env=False
    ) as http:
        senders = [send_probes(http, burst, killed, deadline) for _ in range(SENDERS)]
        await asyncio.gather(kill_when_enough_acked(server.proc, burst, killed, deadline), *senders)
    return burst


# --- assertions -------------------------------------------------------------------------------


def assert_kill_landed_mid_burst(burst: Burst, proc: subprocess.Popen[bytes]) -> None:
    assert proc.returncode == -signal.SIGKILL
    assert burst.unexpected == []
    assert burst.acked_at_kill >= KILL_AFTER_ACKS, "too few writes acknowledged before the kill"
    assert burst.cut_by_kill >= 1, "no request was in flight when the server was killed"


def assert_no_acknowledged_row_lost(burst: Burst, snapshot: Snapshot) -> None:
    lost = burst.acknowledged - snapshot.probe_ids
    assert not lost, f"{len(lost)} acknowledged probes missing after kill -9: {sorted(lost)[:5]}"


def assert_no_refused_row_kept(burst: Burst, snapshot: Snapshot) -> None:
    kept = burst.refused & snapshot.probe_ids
    assert not kept, f"{len(kept)} probes answered 503 were committed anyway: {sorted(kept)[:5]}"


def assert_outbox_matches_rows(snapshot: Snapshot) -> None:
    messages = Counter(snapshot.outbox_probe_ids)
    duplicated = {probe: n for probe, n in messages.items() if n != 1}
    orphaned = set(messages) - snapshot.probe_ids
    unannounced = snapshot.probe_ids - set(messages)
    assert duplicated == {}, "a probe row has more than one outbox message"
    assert orphaned == set(), "outbox messages without their probe row"
    assert unannounced == set(), "probe rows without their outbox message"


def assert_sqlite_recovered_intact(wal_left_by_crash: bool, snapshot: Snapshot) -> None:
    assert wal_left_by_crash, "no -wal file after kill -9: the kill did not hit a live WAL database"
    assert snapshot.journal_mode == "wal"
    assert snapshot.integrity == [("ok",)]


def assert_ready_and_writable(server: Process) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as http:
        ready = http.get("/ready")
        assert ready.status_code == 200, ready.text
        written = http.post("/probe", json={"probe_id": str(uuid.uuid4())})
        assert written.status_code == 201, written.text


# --- the test ---------------------------------------------------------------------------------


def test_server_killed_during_write_burst_keeps_acknowledged_rows_and_consistent_outbox(
    database: Database, tmp_path: Path
) -> None:
    with running_server(database, tmp_path, "crashed") as server:
        burst = asyncio.run(burst_then_kill(server))
        server.proc.wait(timeout=STOP_SECONDS)
    wal_left_by_crash = database.sqlite_path is not None and wal_path(database).exists()
    snapshot = read_snapshot(database)  # opening the SQLite file replays the WAL left behind
    print(  # shown on failure: how the run went
        f"{database.backend}: issued={burst.issued} acked={len(burst.acknowledged)} "
        f"acked_at_kill={burst.acked_at_kill} refused={len(burst.refused)} "
        f"cut_by_kill={burst.cut_by_kill} "
        f"rows={len(snapshot.probe_ids)} messages={len(snapshot.outbox_probe_ids)}"
    )

    assert_kill_landed_mid_burst(burst, server.proc)
    assert_no_acknowledged_row_lost(burst, snapshot)
    assert_no_refused_row_kept(burst, snapshot)
    assert_outbox_matches_rows(snapshot)
    if database.sqlite_path is not None:
        assert_sqlite_recovered_intact(wal_left_by_crash, snapshot)

    with running_server(database, tmp_path, "restarted") as restarted:
        assert_ready_and_writable(restarted)
