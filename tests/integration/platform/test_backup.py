"""Backup create / verify / restore on both engines, through the API and the real CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import make_url

from clinicos.bootstrap import build_container
from clinicos.config import Settings
from clinicos.kernel.clock import utc_now
from clinicos.kernel.events import DomainEvent
from clinicos.platform.backup import (
    BackupError,
    BackupResult,
    create_backup,
    restore_backup,
    verify_backup,
)
from clinicos.platform.db.engine import create_engine_from_settings
from clinicos.platform.db.lifecycle import (
    current_state,
    drop_everything,
    mark_production,
    read_marker,
)
from clinicos.platform.db.models import JobSchedule, OutboxMessage
from clinicos.platform.db.schema import head_revisions
from tests.conftest import (
    MigratedDatabases,
    drop_pg_database,
    make_settings,
    services_unavailable,
)

CLINICOS = Path(sys.executable).parent / "clinicos"
ALL_CHECKS = ["manifest", "dump file", "size", "sha256", "restore", "row counts"]


@dataclass(frozen=True, kw_only=True)
class BackupProbed(DomainEvent):
    event_type: ClassVar[str] = "test.BackupProbed"
    n: int


NewDatabase = Callable[[], Settings]


@pytest.fixture
def new_database(
    engine_name: str, migrated_databases: MigratedDatabases, tmp_path: Path
) -> Iterator[NewDatabase]:
    """Factory of fresh migrated databases of this test's engine (copies of one migrated
    template, see ``MigratedDatabases``), dropped afterwards."""
    pg_urls: list[str] = []
    numbers = itertools.count()

    def _new() -> Settings:
        if engine_name == "sqlite":
            url = migrated_databases.sqlite(tmp_path / f"db-{next(numbers)}.sqlite")
        else:
            if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
                services_unavailable("pg_dump")
            url = migrated_databases.postgres("clinicos_backup")
            pg_urls.append(url)
        return make_settings(url, tmp_path / "var")

    yield _new
    for url in pg_urls:
        drop_pg_database(url)


def insert_rows(settings: Settings, events: int) -> list[str]:
    """Write events to the outbox through the unit of work, plus one scheduled-job row."""

    async def _insert() -> list[str]:
        container = build_container(settings)
        try:
            recorded = [BackupProbed(n=i) for i in range(events)]
            async with container.uow() as uow:
                for event in recorded:
                    uow.record(event)
                await uow.session.execute(
                    insert(JobSchedule).values(
                        name=f"test.job.{events}", next_run_at=utc_now(), run_count=0
                    )
                )
                await uow.commit()
            return sorted(e.event_id for e in recorded)
        finally:
            await container.dispose()

    return asyncio.run(_insert())


def stored_event_ids(settings: Settings) -> list[str]:
    async def _read() -> list[str]:
        engine = create_engine_from_settings(settings)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(select(OutboxMessage.event_id))
                return sorted(str(r[0]) for r in rows)
        finally:
            await engine.dispose()

    return asyncio.run(_read())


def table_counts(settings: Settings) -> dict[str, int]:
    """Rows per table, counted independently of the backup package."""

    async def _count() -> dict[str, int]:
        engine = create_engine_from_settings(settings)
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: inspect(c).get_table_names())
                counts: dict[str, int] = {}
                for name in names:
                    result = await conn.execute(text(f'SELECT count(*) FROM "{name}"'))
                    counts[name] = int(result.scalar_one())
                return counts
        finally:
            await engine.dispose()

    return asyncio.run(_count())


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def dump_file(result: BackupResult) -> Path:
    return result.path / result.manifest["dump"]["file"]


# -- create + verify ----------------------------------------------------------------------------


def test_create_backup_when_rows_present_writes_manifest_with_counts_and_checksum(
    new_database: NewDatabase, tmp_path: Path, engine_name: str
) -> None:
    settings = new_database()
    insert_rows(settings, 5)

    result = create_backup(settings, tmp_path / "backups")

    assert re.fullmatch(r"clinicos-\d{8}T\d{6}Z(-\d+)?", result.path.name)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["format_version"] == 1
    assert manifest["engine"] == engine_name
    assert manifest["created_at"].endswith("+00:00")
    assert manifest["alembic_revisions"] == sorted(head_revisions())
    assert manifest["dump"]["size_bytes"] == dump_file(result).stat().st_size
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["dump"]["sha256"])
    assert manifest["row_counts"] == table_counts(settings)
    assert manifest["row_counts"]["outbox_message"] == 5
    assert manifest["row_counts"]["alembic_version"] == 1
    assert not list(result.path.glob("*.tmp"))


def test_verify_backup_when_intact_passes_every_check(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    insert_rows(settings, 3)
    result = create_backup(settings, tmp_path / "backups")

    report = verify_backup(settings, result.path)

    assert report.ok, report.checks
    assert [c.name for c in report.checks] == ALL_CHECKS
    assert all(c.ok for c in report.checks)


def test_create_backup_when_app_is_writing_counts_match_the_dump(
    new_database: NewDatabase, tmp_path: Path, engine_name: str
) -> None:
    settings = new_database()
    stop = threading.Event()
    written: list[int] = []

    def _write() -> None:
        url = make_url(settings.effective_database_url)
        if engine_name == "sqlite":
            conn: sqlite3.Connection | psycopg.Connection[tuple[object, ...]] = sqlite3.connect(
                str(url.database), timeout=30, isolation_level=None
            )
            sql = "INSERT INTO job_schedule (name, next_run_at, run_count) VALUES (?, ?, 0)"
        else:
            conn = psycopg.connect(str(settings.database_url), autocommit=True)
            sql = "INSERT INTO job_schedule (name, next_run_at, run_count) VALUES (%s, %s, 0)"
        with conn:
            while not stop.is_set():
                when = utc_now().isoformat() if engine_name == "sqlite" else utc_now()
                conn.execute(sql, (f"w{len(written)}", when))
                written.append(1)

    writer = threading.Thread(target=_write)
    writer.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        result = create_backup(settings, tmp_path / "backups")
    finally:
        stop.set()
        writer.join(timeout=30)

    assert result.manifest["row_counts"]["job_schedule"] >= 20
    report = verify_backup(settings, result.path)
    assert report.ok, report.checks


def test_create_backup_when_database_unreachable_raises_one_line_without_password(
    engine_name: str, tmp_path: Path
) -> None:
    if engine_name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'absent.sqlite'}"
    else:
        url = "postgresql://postgres:s3cret-pw@127.0.0.1:5432/clinicos_no_such_database"
    settings = make_settings(url, tmp_path)

    with pytest.raises(BackupError) as excinfo:
        create_backup(settings, tmp_path / "backups")

    message = str(excinfo.value)
    assert "\n" not in message
    assert "s3cret-pw" not in message
    assert not (tmp_path / "absent.sqlite").exists()
    assert not list((tmp_path / "backups").iterdir())


# -- round trip ---------------------------------------------------------------------------------


def test_restore_backup_after_wipe_restores_original_rows_and_counts(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    ids = insert_rows(settings, 7)
    original = table_counts(settings)
    result = create_backup(settings, tmp_path / "backups")

    drop_everything(settings)
    assert table_counts(settings) == {}
    restore_backup(settings, result.path, force=False)

    assert table_counts(settings) == original == result.manifest["row_counts"]
    assert stored_event_ids(settings) == ids
    assert current_state(settings).is_current
    assert verify_backup(settings, result.path).ok


def test_restore_backup_when_target_only_migrated_succeeds_without_force(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    source = new_database()
    ids = insert_rows(source, 4)
    result = create_backup(source, tmp_path / "backups")
    target = new_database()

    restore_backup(target, result.path, force=False)

    assert stored_event_ids(target) == ids
    assert table_counts(target) == result.manifest["row_counts"]


def test_restore_backup_when_target_has_rows_without_force_raises_and_keeps_them(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    source = new_database()
    insert_rows(source, 3)
    result = create_backup(source, tmp_path / "backups")
    target = new_database()
    target_ids = insert_rows(target, 2)

    with pytest.raises(BackupError, match=r"holds data .*outbox_message.*force"):
        restore_backup(target, result.path, force=False)

    assert stored_event_ids(target) == target_ids


def test_restore_backup_when_target_has_rows_with_force_replaces_them(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    source = new_database()
    source_ids = insert_rows(source, 3)
    result = create_backup(source, tmp_path / "backups")
    target = new_database()
    insert_rows(target, 2)

    restore_backup(target, result.path, force=True)

    assert stored_event_ids(target) == source_ids
    assert table_counts(target) == result.manifest["row_counts"]
    assert current_state(target).is_current


def test_restore_backup_onto_production_marked_target_keeps_production_marker(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    source = new_database()  # marked "test"
    insert_rows(source, 1)
    result = create_backup(source, tmp_path / "backups")
    target = new_database()
    mark_production(target)
    insert_rows(target, 1)

    restore_backup(target, result.path, force=True)

    # The backup's own marker came back with its rows; reset safety must not be lost by that.
    assert read_marker(target) == "production"
    assert stored_event_ids(target) == stored_event_ids(source)


# -- damaged backups ----------------------------------------------------------------------------


def test_verify_backup_when_dump_corrupted_fails_at_sha256_and_restore_refuses(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    ids = insert_rows(settings, 3)
    result = create_backup(settings, tmp_path / "backups")
    flip_bytes(dump_file(result))

    report = verify_backup(settings, result.path)

    assert not report.ok
    assert [c.name for c in report.checks] == ["manifest", "dump file", "size", "sha256"]
    assert [c.name for c in report.checks if not c.ok] == ["sha256"]
    with pytest.raises(BackupError, match="sha256"):
        restore_backup(settings, result.path, force=True)
    assert stored_event_ids(settings) == ids


def test_verify_backup_when_manifest_missing_reports_manifest_check(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    result = create_backup(settings, tmp_path / "backups")
    (result.path / "manifest.json").unlink()

    report = verify_backup(settings, result.path)

    assert not report.ok
    assert [(c.name, c.ok) for c in report.checks] == [("manifest", False)]
    assert "manifest.json" in report.checks[0].detail
    with pytest.raises(BackupError, match=r"manifest\.json"):
        restore_backup(settings, result.path, force=True)


def test_verify_backup_when_manifest_counts_differ_fails_row_counts_check(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    insert_rows(settings, 2)
    result = create_backup(settings, tmp_path / "backups")
    manifest = dict(result.manifest)
    manifest["row_counts"] = {**manifest["row_counts"], "outbox_message": 99}
    (result.path / "manifest.json").write_text(json.dumps(manifest))

    report = verify_backup(settings, result.path)

    assert not report.ok
    assert [c.name for c in report.checks] == ALL_CHECKS
    failed = [c for c in report.checks if not c.ok]
    assert [c.name for c in failed] == ["row counts"]
    assert "outbox_message 2 rows, expected 99" in failed[0].detail


def test_verify_backup_when_directory_missing_raises(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no backup directory"):
        verify_backup(settings, tmp_path / "nope")


def test_restore_backup_when_engine_differs_refuses(
    new_database: NewDatabase, tmp_path: Path, engine_name: str
) -> None:
    settings = new_database()
    result = create_backup(settings, tmp_path / "backups")
    other = "postgresql" if engine_name == "sqlite" else "sqlite"
    other_file = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}[other]
    dump_file(result).rename(result.path / other_file)
    manifest = {**result.manifest, "engine": other}
    manifest["dump"] = {**manifest["dump"], "file": other_file}
    (result.path / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(BackupError, match=f"backup is of a {other} database"):
        restore_backup(settings, result.path, force=True)


# -- CLI ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_backup_create_verify_restore_reports_exit_codes_and_checks(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    settings = new_database()
    ids = insert_rows(settings, 4)
    env = {
        **os.environ,
        "CLINICOS_DATABASE_URL": str(settings.database_url),
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(tmp_path / "var"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLINICOS), "backup", *args],
            env=env,
            cwd=tmp_path,  # no stray .env from the repository
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = cli("create", "--dest", str(tmp_path / "backups"))
    assert created.returncode == 0, created.stderr
    path = Path(created.stdout.strip().splitlines()[-1])
    assert (path / "manifest.json").is_file()

    verified = cli("verify", str(path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "FAIL" not in verified.stdout
    for name in ALL_CHECKS:
        assert f"ok   {name}:" in verified.stdout

    refused = cli("restore", str(path))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the target database holds data")

    restored = cli("restore", str(path), "--force")
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == "restored"
    assert stored_event_ids(settings) == ids

    flip_bytes(path / json.loads((path / "manifest.json").read_text())["dump"]["file"])
    corrupt = cli("verify", str(path))
    assert corrupt.returncode == 1
    assert "FAIL sha256:" in corrupt.stdout
    corrupt_restore = cli("restore", str(path), "--force")
    assert corrupt_restore.returncode == 1
    assert "sha256" in corrupt_restore.stderr
    for proc in (created, verified, refused, restored, corrupt, corrupt_restore):
        assert "Traceback" not in proc.stderr
