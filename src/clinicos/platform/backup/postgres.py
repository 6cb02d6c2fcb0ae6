"""PostgreSQL backups: pg_dump/pg_restore, snapshot-consistent row counts, scratch restores."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from clinicos.platform.backup.manifest import BackupError

# Dumps and restores of a large database take a while; a hung one must still end.
DUMP_TIMEOUT_SECONDS = 3600
RESTORE_TIMEOUT_SECONDS = 3600
# Waiting on a lock held by a running app or migration must fail with a message, not hang.
LOCK_TIMEOUT = "30s"
ROW_COUNTS_SOURCE = "counted in the same REPEATABLE READ snapshot that pg_dump exported"

# Every user table; extension-owned tables are the extension's, recreated by CREATE EXTENSION.
_TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Target:
    """A libpq connection string without the password, plus the password kept apart."""

    conninfo: str
    password: str | None
    dbname: str
    connect_timeout: int

    @classmethod
    def from_url(cls, url: str, connect_timeout: int) -> Target:
        parsed = make_url(url)
        if not parsed.database:
            raise BackupError("the PostgreSQL URL names no database")
        bare = parsed.set(drivername="postgresql", password=None)
        return cls(
            conninfo=bare.render_as_string(hide_password=False),
            password=parsed.password,
            dbname=parsed.database,
            connect_timeout=connect_timeout,
        )

    def with_database(self, dbname: str) -> Target:
        bare = make_url(self.conninfo).set(database=dbname)
        return Target(
            bare.render_as_string(hide_password=False), self.password, dbname, self.connect_timeout
        )

    def env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the password never appears on a command line."""
        env = dict(os.environ)
        env["PGCONNECT_TIMEOUT"] = str(self.connect_timeout)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        try:
            # lock_timeout: a count or DROP queued behind a migration's lock fails, not hangs.
            return psycopg.connect(
                self.conninfo,
                password=self.password,
                autocommit=autocommit,
                connect_timeout=self.connect_timeout,
                options=f"-c lock_timeout={LOCK_TIMEOUT}",
            )
        except psycopg.Error as exc:
            raise BackupError(f"cannot connect to PostgreSQL: {_first_line(str(exc))}") from exc


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "unknown error")
    return line[:300]


def _tool_error(stderr: str) -> str:
    """The first error line of pg_dump/pg_restore output, with any echoed value removed.

    DETAIL/CONTEXT lines can quote row values, so only the first error line is kept, and a
    trailing quoted literal (e.g. `invalid input syntax for type integer: "..."`) is masked.
    """
    lines = [ln for ln in stderr.splitlines() if "error" in ln.lower()] or stderr.splitlines()
    return re.sub(r': ".*"$', ': "…"', _first_line("\n".join(lines)))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH; install the PostgreSQL client tools")
    return path


def _run(args: list[str], target: Target, timeout: int) -> None:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed tool, arguments built here, no shell
            args, env=target.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{Path(args[0]).name} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {_tool_error(proc.stderr)}")


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[str, str]]:
    return [(str(s), str(t)) for s, t in conn.execute(_TABLES_SQL).fetchall()]


def _key(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _counts(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for schema, table in _tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
        counts[_key(schema, table)] = int(row[0]) if row else 0  # type: ignore[call-overload]
    return counts


def _revisions(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    return [str(v) for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def dump(url: str, connect_timeout: int, dest: Path) -> tuple[list[str], dict[str, int]]:
    """pg_dump into dest; return revisions and row counts from the very snapshot it dumped."""
    pg_dump = _tool("pg_dump")
    target = Target.from_url(url, connect_timeout)
    with target.connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(row[0]) if row else ""
            # The exported snapshot lives only while this transaction is open, so pg_dump runs
            # inside it, and the counts below see exactly the rows pg_dump wrote.
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    f"--snapshot={snapshot}",
                    f"--lock-wait-timeout={LOCK_TIMEOUT}",
                    f"--file={dest}",
                    f"--dbname={target.conninfo}",
                ],
                target,
                DUMP_TIMEOUT_SECONDS,
            )
            revisions, counts = _revisions(conn), _counts(conn)
            conn.rollback()
        except psycopg.Error as exc:
            raise BackupError(f"PostgreSQL backup failed: {_first_line(str(exc))}") from exc
    return revisions, counts


@contextmanager
def _scratch_database(admin: Target) -> Iterator[Target]:
    """A throw-away database on the same server, dropped (even while in use) on exit."""
    name = f"clinicos_verify_{secrets.token_hex(6)}"
    with admin.connect(autocommit=True) as conn:
        # template0: nothing a site added to template1 may show up in the counts.
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield admin.with_database(name)
    finally:
        with admin.connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def scratch_restore(
    dump_file: Path, url: str, connect_timeout: int
) -> tuple[str, dict[str, int] | None]:
    """pg_restore into a scratch database; return (detail, row counts or None on failure)."""
    try:
        pg_restore = _tool("pg_restore")
        admin = Target.from_url(url, connect_timeout)
        with _scratch_database(admin) as scratch:
            _run(
                [
                    pg_restore,
                    "--no-owner",
                    "--exit-on-error",
                    f"--dbname={scratch.conninfo}",
                    str(dump_file),
                ],
                scratch,
                RESTORE_TIMEOUT_SECONDS,
            )
            with scratch.connect() as conn:
                counts = _counts(conn)
            return f"pg_restore into scratch database {scratch.dbname} ok (dropped)", counts
    except BackupError as exc:
        return str(exc), None
    except psycopg.Error as exc:
        return f"scratch database: {_first_line(str(exc))}", None


def target_data(url: str, connect_timeout: int) -> dict[str, int]:
    target = Target.from_url(url, connect_timeout)
    try:
        with target.connect() as conn:
            return _counts(conn)
    except psycopg.Error as exc:
        raise BackupError(f"cannot inspect the target database: {_first_line(str(exc))}") from exc


def _drop_tables(target: Target) -> None:
    """Drop every table of the target in one transaction, so the restore starts from nothing."""
    try:
        with target.connect() as conn:
            for schema, table in _tables(conn):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, table))
                )
    except psycopg.errors.LockNotAvailable as exc:
        raise BackupError(
            "tables of the target database are in use; stop the app and workers, then retry"
        ) from exc
    except psycopg.Error as exc:
        raise BackupError(f"cannot empty the target database: {_first_line(str(exc))}") from exc


def restore(dump_file: Path, url: str, connect_timeout: int) -> dict[str, int]:
    """Replace every table of the target with the dump's; return the restored row counts."""
    pg_restore = _tool("pg_restore")
    target = Target.from_url(url, connect_timeout)
    _drop_tables(target)
    # --clean --if-exists also replaces non-table objects in the dump (types, sequences) that
    # survived the table drop; --single-transaction makes a failed restore leave no half state.
    args = [
        pg_restore,
        "--no-owner",
        "--exit-on-error",
        "--clean",
        "--if-exists",
        "--single-transaction",
        f"--dbname={target.conninfo}",
        str(dump_file),
    ]
    try:
        _run(args, target, RESTORE_TIMEOUT_SECONDS)
    except BackupError as exc:
        raise BackupError(f"{exc} (the target's tables were already dropped)") from exc
    return target_data(url, connect_timeout)
