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

from clinicos.bootstrap import Container, all_models_metadata, build_container
from clinicos.config import Environment, Settings
from clinicos.main import create_app
from clinicos.platform.db.lifecycle import upgrade_and_mark

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
    return Settings(
        env=Environment.test,
        database_url=database_url,
        var_dir=var_dir,
        _env_file=None,  # type: ignore[call-arg]
        **overrides,  # type: ignore[arg-type]
    )


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
    async with container.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(table.delete())


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
async def client(container: Container) -> AsyncIterator[AsyncClient]:
    """An HTTP client talking to the real app in-process (lifespan run, no in-process worker)."""
    app = create_app(container.settings, container=container, run_worker=False)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http
