"""Schema state: find migrations, compare the database with the head, upgrade, mark environment."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.kernel.clock import utc_now
from clinicos.platform.db.models import EnvironmentMarker


def migrations_dir() -> Path:
    """The Alembic scripts: the repository's ``migrations/``, or a packaged copy beside the code."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[4] / "migrations", here.parents[2] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("cannot find the clinicos migrations directory")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["database_url"] = database_url
    return cfg


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config("")).get_heads())


def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(rev.revision for rev in script.walk_revisions())


class SchemaStatus(StrEnum):
    current = "current"
    behind = "behind"  # migrations of this release are not applied yet
    ahead = "ahead"  # a newer release migrated the database (expand/contract keeps us working)
    unknown = "unknown"  # the database could not be asked


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]
    head: tuple[str, ...]
    known: frozenset[str] = frozenset()

    @property
    def status(self) -> SchemaStatus:
        if set(self.current) == set(self.head):
            return SchemaStatus.current
        if self.current and not set(self.current) <= self.known:
            return SchemaStatus.ahead
        return SchemaStatus.behind

    @property
    def is_current(self) -> bool:
        return self.status is SchemaStatus.current


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_heads()
        )
    return SchemaState(current=tuple(current), head=head_revisions(), known=known_revisions())


class SchemaGate:
    """What the API knows about the schema. Requests are refused only while it is known to be
    behind; an unreachable database is the request's own 503, not a schema problem."""

    def __init__(self, engine: AsyncEngine, *, recheck_seconds: float = 5.0) -> None:
        self._engine = engine
        self._recheck_seconds = recheck_seconds
        self._checked_at = 0.0
        self.status = SchemaStatus.unknown
        self.last_state: SchemaState | None = None

    @property
    def blocks_requests(self) -> bool:
        return self.status is SchemaStatus.behind

    async def refresh(self) -> SchemaStatus:
        self._checked_at = time.monotonic()
        try:
            self.last_state = await schema_state(self._engine)
        except Exception:  # unreachable: callers report the database, not the schema
            self.status = SchemaStatus.unknown
            raise
        self.status = self.last_state.status
        return self.status

    async def recheck_if_behind(self) -> None:
        """While behind, look again every few seconds so `db upgrade` unblocks without restart."""
        if self.status is not SchemaStatus.behind:
            return
        if time.monotonic() - self._checked_at < self._recheck_seconds:
            return
        with contextlib.suppress(Exception):
            await self.refresh()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run migrations (blocking; call from sync code or a worker thread)."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    # env.py drives its own event loop, so it runs in a thread when we are already in one.
    await asyncio.to_thread(upgrade, database_url, revision)


async def read_environment_marker(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(EnvironmentMarker.environment))).scalar_one_or_none()


async def ensure_environment_marker(engine: AsyncEngine, environment: str) -> str:
    """Write the marker row on first upgrade. Afterwards it only ever moves *to* production:
    a production database first migrated without CLINICOS_ENV=production becomes protected the
    first time a production process upgrades it, and nothing ever marks it non-production."""
    async with engine.begin() as conn:
        existing = (await conn.execute(select(EnvironmentMarker.environment))).scalar_one_or_none()
        if existing is not None:
            if environment == "production" and existing != "production":
                await conn.execute(
                    update(EnvironmentMarker).values(environment="production", marked_at=utc_now())
                )
                return "production"
            return existing
        await conn.execute(
            insert(EnvironmentMarker).values(id=1, environment=environment, marked_at=utc_now())
        )
        return environment
