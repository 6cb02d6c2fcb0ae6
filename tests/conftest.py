"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests skip when no server answers, unless CLINICOS_TEST_REQUIRE_SERVICES=1 (set by
.ci/run), which turns that skip into a failure. CLINICOS_TEST_POSTGRES_URL points at a server
where the test user may create databases (default: postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container, all_models_metadata, build_container
from clinicos.config import Environment, Settings
from clinicos.main import create_app
from clinicos.platform.db.engine import create_owner_engine
from clinicos.platform.db.lifecycle import upgrade_and_mark
from clinicos.platform.observability.logging import configure_logging

PG_ADMIN_URL = os.environ.get(
    "CLINICOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("CLINICOS_TEST_REQUIRE_SERVICES") == "1"
KEEP_TABLES = {"alembic_version", "_environment_marker"}


def services_unavailable(what: str) -> None:
    """Skip, or fail when CI demands every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (CLINICOS_TEST_REQUIRE_SERVICES=1) but unavailable")
    pytest.skip(f"{what} not available")


def pg_url_for(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def create_pg_database(prefix: str = "clinicos_test") -> str:
    """Create a fresh PostgreSQL database and return its URL (or skip/fail)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        services_unavailable("PostgreSQL")
    return pg_url_for(name)


def drop_pg_database(url: str) -> None:
    name = url.rpartition("/")[2]
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
        yield url
        return
    url = create_pg_database()
    try:
        upgrade_and_mark(make_settings(url, tmp_path_factory.mktemp("pg")))
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def settings(migrated_db_url: str, tmp_path: Path) -> Settings:
    return make_settings(migrated_db_url, tmp_path)


async def truncate_all(container: Container) -> None:
    tables = [t for t in all_models_metadata().sorted_tables if t.name not in KEEP_TABLES]
    engine = create_owner_engine(container.settings)  # the app role may not delete audit rows
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(table.delete())
    await engine.dispose()


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    """A container on the migrated database; every table emptied after the test."""
    c = build_container(settings)
    try:
        yield c
    finally:
        await truncate_all(c)
        await c.dispose()


@pytest.fixture
async def owner_engine(container: Container) -> AsyncIterator[AsyncEngine]:
    """The database's owner role, for test-only DDL (the app role may not create tables)."""
    engine = create_owner_engine(container.settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def client(container: Container) -> AsyncIterator[AsyncClient]:
    """An HTTP client talking to the real app in-process (lifespan run, no in-process worker)."""
    app = create_app(container.settings, container=container, run_worker=False)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http
