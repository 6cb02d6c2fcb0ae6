"""SQLite backups: online copy with the sqlite3 backup API, integrity check, restore, row counts."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from clinicos.platform.backup.manifest import BackupError

# How long to wait for another connection's write lock before giving up.
BUSY_TIMEOUT_SECONDS = 30.0
ROW_COUNTS_SOURCE = "counted in the backup copy after the online backup finished"


def database_path(url: str) -> Path:
    path = make_url(url).database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(path)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _connect_read_only(path: Path) -> sqlite3.Connection:
    # mode=ro: opening must never create an empty database where a file was expected.
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS
    )


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    return [str(name) for (name,) in rows]


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        table: int(conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0])  # noqa: S608
        for table in _tables(conn)
    }


def _revisions(conn: sqlite3.Connection) -> list[str]:
    if "alembic_version" not in _tables(conn):
        return []
    return [str(v) for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def row_counts(path: Path) -> dict[str, int]:
    try:
        with closing(_connect_read_only(path)) as conn:
            return _counts(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot count rows in {path.name}: {exc}") from exc


def dump(url: str, dest: Path) -> tuple[list[str], dict[str, int]]:
    """Copy the live database into dest; return its Alembic revisions and row counts."""
    source = database_path(url)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    try:
        with (
            closing(_connect_read_only(source)) as src,
            closing(sqlite3.connect(dest, timeout=BUSY_TIMEOUT_SECONDS)) as dst,
        ):
            # One step (pages=-1) copies under a single read transaction: a consistent snapshot
            # while the app keeps writing to the WAL.
            src.backup(dst)
            # A rollback-journal copy is one self-contained file whose bytes never change when
            # read, so its checksum stays valid (WAL mode would leave -wal/-shm files beside it).
            dst.execute("PRAGMA journal_mode=DELETE")
        with closing(_connect_read_only(dest)) as copy:
            return _revisions(copy), _counts(copy)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc


def scratch_restore(dump_file: Path) -> tuple[str, dict[str, int] | None]:
    """Integrity-check a private copy of the dump; return (detail, row counts or None)."""
    with tempfile.TemporaryDirectory(prefix="clinicos-verify-") as tmp:
        scratch = Path(tmp) / "scratch.sqlite"
        shutil.copyfile(dump_file, scratch)
        try:
            with closing(sqlite3.connect(scratch)) as conn:
                result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
                if result != ["ok"]:
                    return f"integrity_check: {'; '.join(result[:3])}", None
                return "integrity_check ok", _counts(conn)
        except sqlite3.Error as exc:
            return f"cannot open the copy: {exc}", None


def target_data(url: str) -> dict[str, int]:
    """Row counts of the restore target (empty when the file does not exist yet)."""
    target = database_path(url)
    if not target.exists():
        return {}
    return row_counts(target)


def restore(dump_file: Path, url: str) -> dict[str, int]:
    """Overwrite the target database with the dump (backup API, page by page); return counts."""
    target = database_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(_connect_read_only(dump_file)) as src,
            closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_SECONDS)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore failed: {exc}") from exc
    return row_counts(target)
