"""Schema state: find migrations, compare the database with the head, upgrade, mark environment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select
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


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return set(self.current) == set(self.head)


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_heads()
        )
    return SchemaState(current=tuple(current), head=head_revisions())


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
    """Write the marker row on first upgrade; an existing marker is never changed silently."""
    async with engine.begin() as conn:
        existing = (await conn.execute(select(EnvironmentMarker.environment))).scalar_one_or_none()
        if existing is not None:
            return existing
        await conn.execute(
            insert(EnvironmentMarker).values(
                id=1, environment=environment, marked_at=utc_now()
            )
        )
        return environment
