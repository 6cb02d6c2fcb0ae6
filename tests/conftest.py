"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests skip when no server answers, unless CLINICOS_TEST_REQUIRE_SERVICES=1 (set by
.ci/run), which turns that skip into a failure. CLINICOS_TEST_POSTGRES_URL points at a server
where the test user may create databases (default: postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container, all_models_metadata
from clinicos.config import Environment, Settings, normalize_database_url
from clinicos.main import create_app
from clinicos.platform.db.lifecycle import upgrade_and_mark
from clinicos.platform.observability.logging import configure_logging
from tests.support import engines, process_caches

PG_ADMIN_URL = os.environ.get(
    "CLINICOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("CLINICOS_TEST_REQUIRE_SERVICES") == "1"
KEEP_TABLES = {"alembic_version", "_environment_marker"}

# ~2,000 app start-ups per session: what they repeat identically is done once per process.
process_caches.install()


def services_unavailable(what: str) -> None:
    """Skip, or fail when CI demands every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (CLINICOS_TEST_REQUIRE_SERVICES=1) but unavailable")
    pytest.skip(f"{what} not available")


def pg_url_for(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def create_pg_database(prefix: str = "clinicos_test", *, template: str | None = None) -> str:
    """Create a fresh PostgreSQL database (a copy of ``template`` if given) and return its URL
    (or skip/fail)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
    except psycopg.OperationalError:
        services_unavailable("PostgreSQL")
    return pg_url_for(name)


def _db_name(url: str) -> str:
    return url.rpartition("/")[2]


def drop_pg_database(url: str) -> None:
    name = _db_name(url)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    """Test settings. On PostgreSQL the app runs as the non-owner role, as in production, so
    every test exercises row-level security; fast argon2 parameters keep sign-in tests quick."""
    if database_url.startswith("postgres"):
        overrides.setdefault("database", {"app_role": "clinicos_app"})
    overrides.setdefault(
        "identity", {"argon2_time_cost": 1, "argon2_memory_kib": 64, "argon2_parallelism": 1}
    )
    overrides.setdefault("mail", {"backend": "file"})
    return Settings(
        env=Environment.test,
        database_url=database_url,
        var_dir=var_dir,
        _env_file=None,
        **overrides,  # type: ignore[arg-type]
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (real processes, 5-30 s each) run first, everything else keeps
    its order. Run last, as collection order had them, one of them could still be running
    while every other worker has finished; run first, the thousands of short tests after them
    even the workers out."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _json_logging() -> None:
    """Tests log through the production pipeline, so PHI redaction applies to test output too."""
    configure_logging("INFO", json=True)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_db_url(engine_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per engine per test session."""
    if engine_name == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "clinicos.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_and_mark(make_settings(url, path.parent))
        try:
            yield url
        finally:
            _close_owner_connection(url)
        return
    url = create_pg_database()
    try:
        upgrade_and_mark(make_settings(url, tmp_path_factory.mktemp("pg")))
        yield url
    finally:
        _close_owner_connection(url)
        drop_pg_database(url)


class MigratedDatabases:
    """Fresh, migrated databases for tests that need one of their own (backups, processes).

    Migrating costs ~1-2 s on PostgreSQL and ~0.3 s on SQLite; copying a migrated database
    costs a fraction of that. So each worker migrates one template per engine, the first time
    one is asked for (through ``upgrade_and_mark``, exactly as before), and every database
    handed out is a copy of it: ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a file copy on
    SQLite. A copy is the migrated database byte for byte, environment marker included.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None

    def sqlite(self, path: Path) -> str:
        """A migrated SQLite database at ``path``; returns its URL."""
        if self._sqlite_template is None:
            template = self._tmp.mktemp("sqlite-template") / "template.db"
            upgrade_and_mark(make_settings(f"sqlite+aiosqlite:///{template}", template.parent))
            self._sqlite_template = template
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal"):  # no connection is open: the -wal is normally gone
            source = self._sqlite_template.with_name(self._sqlite_template.name + suffix)
            if source.exists():
                shutil.copyfile(source, path.with_name(path.name + suffix))
        return f"sqlite+aiosqlite:///{path}"

    def postgres(self, prefix: str = "clinicos_test") -> str:
        """A new migrated PostgreSQL database (or skip/fail); the caller drops it."""
        if self._pg_template is None:
            url = create_pg_database("clinicos_template")
            try:
                upgrade_and_mark(make_settings(url, self._tmp.mktemp("pg-template")))
                with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
                    # Nobody may connect to it any more: CREATE DATABASE ... TEMPLATE needs it idle.
                    conn.execute(f'ALTER DATABASE "{_db_name(url)}" ALLOW_CONNECTIONS false')
            except BaseException:
                drop_pg_database(url)
                raise
            self._pg_template = url
        return create_pg_database(prefix, template=_db_name(self._pg_template))

    def close(self) -> None:
        if self._pg_template is not None:
            drop_pg_database(self._pg_template)
            self._pg_template = None


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(tmp_path_factory)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def settings(migrated_db_url: str, tmp_path: Path) -> Settings:
    return make_settings(migrated_db_url, tmp_path)


# -- emptying the session database after a test ----------------------------------------------
#
# Every test using ``container`` (and every identity harness) empties all tables afterwards. This
# runs ~1,500 times per engine per session, so it must be cheap: one owner connection per
# database per worker, kept for the whole session (an owner engine per test cost a connect and a
# dispose each time), and on PostgreSQL a DELETE of just the tables that hold rows, children
# first, plus a restart of the tables' sequences. That leaves exactly what ``TRUNCATE ... RESTART
# IDENTITY CASCADE`` of every table left, in a few milliseconds instead of 200 ms or more
# (TRUNCATE gives every table it names new files, and CASCADE names them all).

_owner_connections: dict[str, psycopg.Connection[tuple[object, ...]] | sqlite3.Connection] = {}


@functools.cache
def _app_tables() -> list[str]:
    """Every table the tests may fill, parents before children (``sorted_tables`` order)."""
    return [t.name for t in all_models_metadata().sorted_tables if t.name not in KEEP_TABLES]


def _owner_connection(url: str) -> psycopg.Connection[tuple[object, ...]] | sqlite3.Connection:
    url = normalize_database_url(url)
    conn = _owner_connections.get(url)
    if isinstance(conn, psycopg.Connection) and conn.closed:
        conn = None
    if conn is None:
        sa_url = make_url(url)
        if sa_url.get_backend_name() == "sqlite":
            conn = sqlite3.connect(str(sa_url.database), timeout=30, isolation_level=None)
            conn.execute("PRAGMA foreign_keys=ON")
        else:
            libpq = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = psycopg.connect(libpq, autocommit=True, connect_timeout=5)
        _owner_connections[url] = conn
    return conn


def _close_owner_connection(url: str) -> None:
    conn = _owner_connections.pop(normalize_database_url(url), None)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _empty_sqlite(conn: sqlite3.Connection, tables: list[str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in reversed(tables):
            conn.execute(f'DELETE FROM "{table}"')
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _empty_postgres(conn: psycopg.Connection[tuple[object, ...]], tables: list[str]) -> None:
    with conn.transaction():
        # Superusers (and BYPASSRLS roles) see every row despite FORCE ROW LEVEL SECURITY; for
        # any other owner, row_security=off makes a policy-filtered statement fail instead of
        # silently missing rows, and empty_database falls back to TRUNCATE (RLS does not apply).
        conn.execute("SET LOCAL row_security = off")
        probe = ", ".join(f'EXISTS (SELECT FROM "{t}")' for t in tables)
        row = conn.execute(f"SELECT {probe}").fetchone()
        assert row is not None
        filled = [table for table, has_rows in zip(tables, row, strict=True) if has_rows]
        for table in reversed(filled):  # children before parents
            conn.execute(f'DELETE FROM "{table}"')
        # What RESTART IDENTITY did: every sequence owned by a column of these tables restarts
        # (also when its table is empty: a rolled-back insert still advances a sequence).
        sequences = conn.execute(
            "SELECT s.oid::regclass::text FROM pg_class s "
            "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
            "AND d.deptype IN ('a', 'i') "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "WHERE s.relkind = 'S' AND t.relname = ANY(%s)",
            (tables,),
        ).fetchall()
        for (sequence,) in sequences:
            conn.execute(f"ALTER SEQUENCE {sequence} RESTART")


def _truncate_postgres(conn: psycopg.Connection[tuple[object, ...]], tables: list[str]) -> None:
    names = ", ".join(f'"{t}"' for t in tables)
    with conn.transaction():
        conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def empty_database(url: str) -> None:
    """Delete every row of every application table (not the schema version or environment
    marker) as the database owner: the app role may not delete audit rows."""
    tables = _app_tables()
    for attempt in (1, 2):
        conn = _owner_connection(url)
        try:
            if isinstance(conn, sqlite3.Connection):
                _empty_sqlite(conn, tables)
            else:
                try:
                    _empty_postgres(conn, tables)
                except (psycopg.errors.InsufficientPrivilege, psycopg.errors.IntegrityError):
                    # An owner held to row-level security, or a foreign key the metadata's
                    # order does not know: TRUNCATE ... CASCADE is blind to both.
                    _truncate_postgres(conn, tables)
            return
        except (psycopg.OperationalError, sqlite3.OperationalError):
            # E.g. a test terminated our backend: reconnect and try once more.
            _close_owner_connection(url)
            if attempt == 2:
                raise


async def truncate_all(container: Container) -> None:
    """Empty every application table of ``container``'s database (see ``empty_database``)."""
    empty_database(container.settings.effective_database_url)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    """A container on the migrated database; every table emptied after the test. Its engine
    is disposed after the test and reused by a later one (tests/support/engines.py)."""
    c = engines.build_container_reusing_engine(settings)
    try:
        yield c
    finally:
        await truncate_all(c)
        await c.dispose()
        engines.give_back(c.engine)


@pytest.fixture
async def owner_engine(container: Container) -> AsyncIterator[AsyncEngine]:
    """The database's owner role, for test-only DDL (the app role may not create tables)."""
    engine = engines.lend_owner_engine(container.settings)
    try:
        yield engine
    finally:
        await engine.dispose()
        engines.give_back(engine)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[AsyncClient]:
    """An HTTP client talking to the real app in-process (lifespan run, no in-process worker)."""
    app = create_app(container.settings, container=container, run_worker=False)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http
