"""Platform fixes from review, each shown where it used to go wrong:

- `clinicos db current` on a database a newer release migrated says "ahead" and exits 0
  (it used to call that "behind" and exit 1);
- a request that can't get a pooled connection within pool_timeout is a prompt 503
  `database_busy` (load), not `service_unavailable` (an outage) and never a hang or a 500;
- the in-process worker starts even when the schema is behind, idles, and drains once
  `db upgrade` has run, without a restart (it used to never start);
- bad rate-limit and Redis settings are refused at load, naming the variable and never echoing
  its value.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from clinicos.bootstrap import Container, build_container
from clinicos.cli import app as cli_app
from clinicos.kernel.events import DomainEvent
from clinicos.main import create_app
from clinicos.platform.db.lifecycle import upgrade_and_mark
from clinicos.platform.db.models import OUTBOX_DELIVERED, OutboxMessage
from clinicos.platform.db.schema import SchemaStatus, head_revisions, upgrade_async
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.observability.logging import configure_logging
from clinicos.platform.outbox.registry import OutboxEnvelope
from tests.conftest import make_settings
from tests.support.tenancy_fixtures import assert_problem, new_member, new_organization, sign_in

runner = CliRunner()
FUTURE_REVISION = "ffff_from_a_newer_release"


@pytest.fixture
def no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the CLI where no developer's .env can change the settings it reads."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


def run_cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(cli_app, list(args), env={"CLINICOS_ENV": "test", **env})


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# -- (a) db current on a database that is ahead ----------------------------------------------------


@pytest.mark.usefixtures("no_dotenv")
def test_db_current_when_database_revision_unknown_and_newer_prints_ahead_exits_0(
    tmp_path: Path,
) -> None:
    # Arrange: migrated by this release, then by a newer one (a revision this code can't know).
    path = tmp_path / "ahead.db"
    upgrade_and_mark(make_settings(sqlite_url(path), tmp_path))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (FUTURE_REVISION,))

    # Act
    result = run_cli({"CLINICOS_DATABASE_URL": sqlite_url(path)}, "db", "current")

    # Assert
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"current: {FUTURE_REVISION}" in result.output
    assert f"head:    {', '.join(head_revisions())}" in result.output
    assert "ahead" in result.output
    assert "behind" not in result.output


@pytest.mark.usefixtures("no_dotenv")
def test_db_current_when_database_empty_prints_behind_exits_1(tmp_path: Path) -> None:
    result = run_cli({"CLINICOS_DATABASE_URL": sqlite_url(tmp_path / "empty.db")}, "db", "current")

    assert result.exit_code == 1, result.output
    assert "current: (empty database)" in result.output
    assert "behind" in result.output and "ahead" not in result.output


# -- (b) pool exhausted: 503 database_busy ---------------------------------------------------------


@asynccontextmanager
async def serving(c: Container, *, run_worker: bool = False) -> AsyncIterator[AsyncClient]:
    """The real app on ``c`` (lifespan run); disposes ``c`` on exit."""
    app = create_app(c.settings, container=c, run_worker=run_worker)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


@pytest.fixture
def one_connection_container(container: Container) -> Container:
    """A container on the test database whose pool is ONE connection, given up after 0.5 s
    (SQLite's pool always has one; PostgreSQL's is shrunk to one). The ``container`` fixture
    empties the tables afterwards."""
    database: dict[str, Any] = {"pool_timeout_seconds": 0.5, "pool_size": 1, "max_overflow": 0}
    if container.settings.database.app_role:
        database["app_role"] = container.settings.database.app_role
    assert container.settings.database_url is not None
    settings = make_settings(
        container.settings.database_url, container.settings.var_dir, database=database
    )
    return build_container(settings)


async def test_request_when_pool_exhausted_answers_503_database_busy_promptly(
    one_connection_container: Container,
) -> None:
    c = one_connection_container
    async with serving(c) as http:
        # Arrange: a valid token (its keys now cached), then the only connection is taken.
        org_id = await new_organization(c, "busy-clinic")
        member = await new_member(
            c,
            organization_id=org_id,
            organization_slug="busy-clinic",
            email="nurse@busy-clinic.example.com",
            roles=("nurse",),
        )
        signed = await sign_in(http, member)
        async with c.engine.connect() as held:
            await held.begin()
            await held.execute(text("SELECT 1"))

            # Act
            started = time.monotonic()
            busy = await asyncio.wait_for(http.get("/api/v1/me", headers=signed.headers), 10)
            elapsed = time.monotonic() - started

        after = await http.get("/api/v1/me", headers=signed.headers)

    # Assert
    body = assert_problem(busy, 503, "database_busy")
    assert "busy" in body["detail"]
    assert busy.headers["retry-after"] == "5"
    assert elapsed < 5, f"answered after {elapsed:.1f}s"
    assert after.status_code == 200, after.text  # the connection is back: served again


# -- (c) the in-process worker waits for the schema ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SchemaArrived(DomainEvent):
    event_type: ClassVar[str] = "tests.SchemaArrived"
    thing_id: str


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    configure_logging("INFO", json=True)  # the session's logging, back


def logged_events(stream: io.StringIO) -> list[str]:
    events = []
    for line in stream.getvalue().splitlines():
        if line.strip():
            events.append(str(json.loads(line).get("event")))
    return events


async def message_status(c: Container, event_id: str) -> str | None:
    async with c.uow() as uow:
        return await uow.session.scalar(
            select(OutboxMessage.status).where(OutboxMessage.event_id == event_id)
        )


async def test_in_process_worker_when_schema_behind_idles_then_drains_after_upgrade(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    # Arrange: an app on an EMPTY database, with the worker in-process and polling fast.
    url = sqlite_url(tmp_path / "late.db")
    c = build_container(make_settings(url, tmp_path, outbox={"poll_interval_seconds": 0.05}))
    handled: list[str] = []

    async def handler(envelope: OutboxEnvelope, _uow: SqlUnitOfWork) -> None:
        handled.append(envelope.event_id)

    c.handlers.register(SchemaArrived.event_type, "tests.schema_arrived", handler)
    app = create_app(c.settings, container=c, run_worker=True)
    configure_logging("INFO", json=True, stream=captured_logs)  # create_app set stdout
    async with app.router.lifespan_context(app):  # disposes c on exit
        assert c.schema.status is SchemaStatus.behind
        await asyncio.sleep(0.3)  # several polls while behind
        idle_events = logged_events(captured_logs)

        # Act: `clinicos db upgrade` runs elsewhere; then something is recorded.
        await upgrade_async(url)
        event = SchemaArrived(thing_id="thing-1")
        async with c.uow() as uow:
            uow.record(event)
            await uow.commit()
        deadline = time.monotonic() + 5
        status = await message_status(c, event.event_id)
        while status != OUTBOX_DELIVERED and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            status = await message_status(c, event.event_id)

    # Assert
    assert status == OUTBOX_DELIVERED
    assert handled == [event.event_id]
    assert c.schema.status is SchemaStatus.current
    assert "worker_started" in idle_events
    assert "worker_iteration_failed" not in idle_events  # idled, didn't hit missing tables


async def test_app_started_on_empty_database_when_upgraded_serves_sign_in_without_restart(
    tmp_path: Path,
) -> None:
    # Arrange: started before its schema existed, so start-up made no signing key.
    url = sqlite_url(tmp_path / "late.db")
    c = build_container(make_settings(url, tmp_path, outbox={"poll_interval_seconds": 0.05}))
    async with serving(c, run_worker=True) as http:
        blocked = await http.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x"})

        # Act: `clinicos db upgrade` runs elsewhere; the worker's next poll sees it.
        await upgrade_async(url)
        deadline = time.monotonic() + 5
        while c.schema.status is not SchemaStatus.current and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        org_id = await new_organization(c, "late-clinic")
        member = await new_member(
            c,
            organization_id=org_id,
            organization_slug="late-clinic",
            email="nurse@late-clinic.example.com",
            roles=("nurse",),
        )
        signed = await sign_in(http, member)  # the first signing key is made now
        me = await http.get("/api/v1/me", headers=signed.headers)

    # Assert
    assert_problem(blocked, 503, "schema_not_current")
    assert me.status_code == 200, me.text


# -- (d) settings validated at load, by variable name ----------------------------------------------


BAD_SETTINGS = {
    "rate_limit_not_a_limit": ("CLINICOS_RATE_LIMIT__READ", "lots"),
    "rate_limit_two_limits": ("CLINICOS_RATE_LIMIT__AUTH", "5/minute;50/hour"),
    "redis_url_wrong_scheme_with_password": ("CLINICOS_REDIS_URL", "http://user:secret@host"),
}


def assert_refused_naming(result: Result, variable: str, value: str) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "invalid configuration" in result.output
    assert variable in result.output
    assert value not in result.output
    for part in ("lots", "secret", "user:", "50/hour"):
        if part in value:
            assert part not in result.output, f"{part!r} echoed: {result.output}"


@pytest.mark.usefixtures("no_dotenv")
@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_config_check_when_setting_invalid_exits_2_naming_variable_not_value(
    case: str,
) -> None:
    variable, value = BAD_SETTINGS[case]

    result = run_cli({variable: value}, "config", "check")

    assert_refused_naming(result, variable, value)


@pytest.mark.usefixtures("no_dotenv")
@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_other_commands_when_setting_invalid_exit_2_naming_variable_not_value(
    tmp_path: Path, case: str
) -> None:
    variable, value = BAD_SETTINGS[case]
    env = {"CLINICOS_DATABASE_URL": sqlite_url(tmp_path / "never-opened.db"), variable: value}

    result = run_cli(env, "db", "current")

    assert_refused_naming(result, variable, value)
    assert not (tmp_path / "never-opened.db").exists()


@pytest.mark.usefixtures("no_dotenv")
@pytest.mark.parametrize("command", [("config", "check"), ("db", "current")])
def test_cli_when_nested_setting_is_malformed_json_exits_2_naming_variable(
    tmp_path: Path, command: tuple[str, str]
) -> None:
    env = {
        "CLINICOS_DATABASE_URL": sqlite_url(tmp_path / "never-opened.db"),
        "CLINICOS_RATE_LIMIT": '{"read": "lots',
    }

    result = run_cli(env, *command)

    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "CLINICOS_RATE_LIMIT" in result.output
    assert "lots" not in result.output


@pytest.mark.usefixtures("no_dotenv")
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLINICOS_RATE_LIMIT__READ", "200/minute"),
        ("CLINICOS_REDIS_URL", "rediss://user:pw@redis.example.org:6380/0"),
    ],
)
def test_config_check_when_setting_well_formed_exits_0(variable: str, value: str) -> None:
    result = run_cli({variable: value}, "config", "check")

    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output
    assert ":pw@" not in result.output  # the Redis password is masked
