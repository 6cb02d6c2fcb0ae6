"""Blocking database lifecycle operations for the CLI: upgrade, current, guarded reset."""

from __future__ import annotations

import asyncio

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url

from clinicos.config import Environment, Settings, mask_url
from clinicos.platform.db.engine import create_owner_engine
from clinicos.platform.db.schema import (
    SchemaState,
    ensure_environment_marker,
    read_environment_marker,
    schema_state,
    upgrade,
)


class ResetRefused(Exception):
    """The reset safety check failed; the message says why."""


def upgrade_and_mark(settings: Settings, revision: str = "head") -> str:
    upgrade(settings.effective_database_url, revision)

    async def _mark() -> str:
        engine = create_owner_engine(settings)
        try:
            return await ensure_environment_marker(engine, settings.env.value)
        finally:
            await engine.dispose()

    return asyncio.run(_mark())


def read_marker(settings: Settings) -> str | None:
    """The database's environment marker, or None (no marker table, no row, no database)."""

    async def _read() -> str | None:
        engine = create_owner_engine(settings)
        try:
            return await read_environment_marker(engine)
        except Exception:  # not migrated, or not reachable: no marker to speak of
            return None
        finally:
            await engine.dispose()

    return asyncio.run(_read())


def mark_production(settings: Settings) -> None:
    async def _mark() -> None:
        engine = create_owner_engine(settings)
        try:
            await ensure_environment_marker(engine, Environment.production.value)
        finally:
            await engine.dispose()

    asyncio.run(_mark())


def current_state(settings: Settings) -> SchemaState:
    async def _state() -> SchemaState:
        engine = create_owner_engine(settings)
        try:
            return await schema_state(engine)
        finally:
            await engine.dispose()

    return asyncio.run(_state())


def describe_target(settings: Settings) -> str:
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    return f"PostgreSQL database {mask_url(settings.effective_database_url)}"


def check_reset_allowed(settings: Settings) -> str:
    """Return a description of the target, or raise ResetRefused."""
    if settings.env is Environment.production:
        raise ResetRefused("CLINICOS_ENV=production: reset is never allowed")

    marker = read_marker(settings)
    if marker is None:
        raise ResetRefused(
            "no _environment_marker row: refusing to reset a database that does not say it is "
            "non-production (run `clinicos db upgrade` on a development database first)"
        )
    if marker == Environment.production.value:
        raise ResetRefused("the database's _environment_marker says production: refusing to reset")
    return describe_target(settings)


_OUR_FUNCTIONS = text(
    "SELECT p.oid::regprocedure::text FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace "
    "LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
    "WHERE n.nspname = 'public' AND d.objid IS NULL"
)


def drop_everything(settings: Settings) -> None:
    async def _drop() -> None:
        engine = create_owner_engine(settings)
        try:
            async with engine.begin() as conn:

                def _sync_drop(sync_conn: Connection) -> None:
                    meta = MetaData()
                    meta.reflect(bind=sync_conn)
                    meta.drop_all(bind=sync_conn)
                    if sync_conn.dialect.name == "postgresql":
                        # Functions the migrations created (not an extension's) go too.
                        for (signature,) in sync_conn.execute(_OUR_FUNCTIONS):
                            sync_conn.execute(text(f"DROP FUNCTION IF EXISTS {signature} CASCADE"))

                await conn.run_sync(_sync_drop)
        finally:
            await engine.dispose()

    asyncio.run(_drop())


def reset(settings: Settings) -> None:
    check_reset_allowed(settings)
    drop_everything(settings)
    upgrade_and_mark(settings)
