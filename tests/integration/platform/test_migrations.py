"""One Alembic history with one head, dated file names, and a schema that matches the models."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from clinicos.bootstrap import Container, all_models_metadata
from clinicos.platform.db.schema import alembic_config, migrations_dir, schema_state

FILE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}_[a-z]+_[a-z0-9_]+\.py$")


def test_history_has_exactly_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config(""))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_migration_file_names_are_dated_with_context() -> None:
    names = [p.name for p in (migrations_dir() / "versions").glob("*.py")]
    assert names, "no migrations found"
    assert [n for n in names if not FILE_NAME.match(n)] == []


async def test_upgraded_database_is_at_head(container: Container) -> None:
    state = await schema_state(container.engine)
    assert state.is_current and state.current


async def test_models_and_migrations_agree(container: Container) -> None:
    # Autogenerate against the migrated database must find nothing to do: a model change
    # without its migration (or the reverse) fails here, on both engines.
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, all_models_metadata())

    async with container.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []
