"""Bulk: backup and restore throughput (issue 8) — ``clinicos backup create`` and ``clinicos
backup restore`` on the mixed workload's dataset (10,000 patients with their observations,
medications, notes and audit trail; bench/mixed.py builds and caches it), in MB of database per
second of wall time, CLI process start included (it is part of what an operator waits for).

The size a rate is computed on is the live database's: the SQLite file, or
``pg_database_size`` on PostgreSQL. The dump's own size is reported beside it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from bench.databases import Database, fresh_database
from bench.mixed import PATIENTS, mixed_database
from bench.options import Options
from bench.results import Figure, Section

MB = 1_000_000


def _database_bytes(db: Database) -> int:
    if db.engine == "sqlite":
        path = Path(db.url.split("///", 1)[1])
        with sqlite3.connect(path) as lite:  # fold the WAL in, so the file is the database
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size
    with psycopg.connect(db.url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(db: Database, *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = db.clinicos(*args, timeout=3600)
    return time.perf_counter() - began, done.stdout.strip()


def _engine(engine: str, options: Options, section: Section) -> None:
    runs = options.runs(3)
    with mixed_database(engine, options.work_dir, options.postgres_admin_url, PATIENTS) as (
        db,
        dataset,
    ):
        size = _database_bytes(db)
        backup_seconds: list[float] = []
        dumps: list[Path] = []
        for index in range(runs):
            dest = db.var_dir / f"backups-{index}"
            seconds, printed = _timed(db, "backup", "create", "--dest", str(dest))
            backup_seconds.append(seconds)
            dumps.append(Path(printed.splitlines()[-1]))
        dump_bytes = _tree_bytes(dumps[0])
        restore_seconds: list[float] = []
        for index in range(runs):
            with fresh_database(engine, options, f"restore{index}") as target:
                seconds, _ = _timed(target, "backup", "restore", str(dumps[index]))
                restore_seconds.append(seconds)
                if index == 0:  # the copy is whole: the restored database verifies
                    target.clinicos("audit", "verify")
    detail = {
        "patients": dataset.patients,
        "database_mb": round(size / MB, 1),
        "dump_mb": round(dump_bytes / MB, 1),
    }
    mb = size / MB
    section.figures += [
        Figure(
            f"backup.{engine}.create_rate",
            f"backup create, {mb:,.0f} MB database ({PATIENTS:,} patients)",
            "MB/s",
            [round(mb / s, 1) for s in backup_seconds],
            engine=engine,
            details=detail | {"seconds": [round(s, 2) for s in backup_seconds]},
        ),
        Figure(
            f"backup.{engine}.restore_rate",
            f"backup restore into an empty database, {mb:,.0f} MB",
            "MB/s",
            [round(mb / s, 1) for s in restore_seconds],
            engine=engine,
            details=detail | {"seconds": [round(s, 2) for s in restore_seconds]},
        ),
        Figure(
            f"backup.{engine}.dump_size",
            "backup size on disk (dump + manifest)",
            "MB",
            [round(dump_bytes / MB, 1)],
            engine=engine,
            details=detail,
        ),
    ]


def run(options: Options) -> Section:
    section = Section(
        "backup",
        "Backup and restore",
        notes=[
            "`clinicos backup create --dest DIR` (SQLite: the online backup API into a copy, "
            "then checksums; PostgreSQL: `pg_dump -Fc` in one snapshot, checksums and row "
            "counts) and `clinicos backup restore PATH` into an empty migrated database, on the "
            "mixed workload's dataset (bench/mixed.py). Rate = live database size / wall time, "
            "process start included; the first restore is checked with `clinicos audit verify`.",
        ],
    )
    for engine in options.engines:
        _engine(engine, options, section)
    return section
