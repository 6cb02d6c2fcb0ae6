"""Async engine construction: SQLite pragmas for durability, PostgreSQL pool and timeouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from clinicos.config import Settings


def create_engine_from_settings(settings: Settings) -> AsyncEngine:
    return create_engine_for_url(settings.effective_database_url, settings)


def create_owner_engine(settings: Settings) -> AsyncEngine:
    """The URL's own role, never the app role: schema changes, markers, resets, backups."""
    return create_engine_for_url(settings.effective_database_url, settings, as_owner=True)


def create_engine_for_url(url: str, settings: Settings, *, as_owner: bool = False) -> AsyncEngine:
    """``as_owner``: keep the URL's own role (migrations, backups, test fixtures) instead of
    switching to the non-owner app role that row-level security applies to."""
    db = settings.database
    # hide_parameters: bound values (which may be PHI) never appear in SQLAlchemy errors or logs.
    common: dict[str, Any] = {"echo": db.echo, "hide_parameters": True}
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Every SQLite transaction takes the write lock (BEGIN IMMEDIATE below), so only one
        # connection can work at a time anyway. One pooled connection turns SQLite's unfair
        # busy-retry scramble into a first-come, first-served queue at the pool.
        engine = create_async_engine(
            url,
            **common,
            pool_size=1,
            max_overflow=0,
            pool_timeout=db.pool_timeout_seconds,
            connect_args={"timeout": db.pool_timeout_seconds},
        )
        _install_sqlite_pragmas(engine, busy_timeout_ms=int(db.pool_timeout_seconds * 1000))
        return engine
    engine = create_async_engine(
        url,
        **common,
        pool_size=db.pool_size,
        max_overflow=db.max_overflow,
        pool_timeout=db.pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={"connect_timeout": db.connect_timeout_seconds},
    )
    if db.app_role and not as_owner:
        _install_app_role(engine, db.app_role)
    return engine


def _install_app_role(engine: AsyncEngine, role: str) -> None:
    quoted = '"' + role.replace('"', '""') + '"'

    @event.listens_for(engine.sync_engine, "connect")
    def _set_role(dbapi_conn: Any, _record: Any) -> None:
        # Session-level, for the connection's whole life: every transaction runs as the app role.
        with dbapi_conn.cursor() as cursor:
            cursor.execute(f"SET ROLE {quoted}")
        dbapi_conn.commit()


def _install_sqlite_pragmas(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    """WAL for concurrent readers, FULL sync so a committed row survives power loss, FKs on."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # aiosqlite opens connections in autocommit-less mode; pragmas must run outside a txn.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of failing with "database is locked" when a reader upgrades to a writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "connect", insert=True)
    def _no_implicit_begin(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit the BEGIN itself (pysqlite's own is unreliable).
        dbapi_conn.isolation_level = None


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
