"""The app refuses to serve while the schema is behind, recovers after `db upgrade`, and keeps
serving when a newer release has already migrated the database (expand/contract)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from clinicos.bootstrap import build_container
from clinicos.main import create_app
from clinicos.platform.db.lifecycle import upgrade_and_mark
from clinicos.platform.db.schema import (
    SchemaStatus,
    ensure_environment_marker,
    read_environment_marker,
    upgrade_async,
)
from tests.conftest import make_settings
from tests.support.probe_routes import router as probe_router


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
async def app_and_client(db_path: Path, tmp_path: Path) -> AsyncIterator[tuple]:  # type: ignore[type-arg]
    settings = make_settings(f"sqlite+aiosqlite:///{db_path}", tmp_path)
    container = build_container(settings)
    app = create_app(settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield container, http


async def test_empty_database_refuses_requests_and_ready_says_behind(app_and_client) -> None:  # type: ignore[no-untyped-def]
    container, http = app_and_client
    assert container.schema.status is SchemaStatus.behind
    ready = await http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["schema"]["status"] == "behind"
    refused = await http.get("/_probe/items/x")
    assert refused.status_code == 503
    assert refused.json()["code"] == "schema_not_current"
    assert (await http.get("/health")).status_code == 200


async def test_after_upgrade_requests_are_served_without_restart(app_and_client) -> None:  # type: ignore[no-untyped-def]
    container, http = app_and_client
    assert (await http.get("/_probe/items/x")).status_code == 503
    await upgrade_async(container.settings.effective_database_url)
    container.schema._recheck_seconds = 0  # don't wait the production re-check interval
    assert (await http.get("/_probe/items/x")).status_code == 200
    assert (await http.get("/ready")).status_code == 200


async def test_database_ahead_of_code_stays_ready(db_path: Path, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{db_path}", tmp_path)
    await _upgrade(settings)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'")
    container = build_container(settings)
    app = create_app(settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http,
    ):
        ready = await http.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["schema"]["status"] == "ahead"
        assert (await http.get("/_probe/items/x")).status_code == 200


async def test_environment_marker_only_ratchets_towards_production(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", tmp_path)
    await _upgrade(settings)  # marked "test"
    container = build_container(settings)
    try:
        assert await read_environment_marker(container.engine) == "test"
        assert await ensure_environment_marker(container.engine, "development") == "test"
        assert await ensure_environment_marker(container.engine, "production") == "production"
        assert await ensure_environment_marker(container.engine, "development") == "production"
        assert await read_environment_marker(container.engine) == "production"
    finally:
        await container.dispose()


async def _upgrade(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    await asyncio.to_thread(upgrade_and_mark, settings)
