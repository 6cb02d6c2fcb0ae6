"""The real clinicos app plus one write route, for the kill -9 durability test.

Serve with ``uvicorn --factory tests.support.crash_app:create``; settings come from the
environment (``CLINICOS_DATABASE_URL``, ``CLINICOS_ENV=test``). The ``crash_probe`` table lives
on this module's own MetaData, never on clinicos' Base, so it is invisible to Alembic and to the
other tests; the test creates it with ``create_table_sql()`` before starting the server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from clinicos.config import load_settings
from clinicos.kernel.clock import utc_now
from clinicos.kernel.events import DomainEvent
from clinicos.main import create_app
from clinicos.platform.db.base import UTCDateTime

PROBE_EVENT_TYPE = "test.ProbeWritten"

probe_metadata = MetaData()
crash_probe = Table(
    "crash_probe",
    probe_metadata,
    Column("probe_id", String(36), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

_DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


def create_table_sql(dialect_name: str) -> str:
    """``CREATE TABLE crash_probe`` for "sqlite" or "postgresql", rendered from the Table."""
    return str(CreateTable(crash_probe).compile(dialect=_DIALECTS[dialect_name])).strip()


@dataclass(frozen=True, kw_only=True)
class ProbeWritten(DomainEvent):
    event_type: ClassVar[str] = PROBE_EVENT_TYPE
    probe_id: str


class ProbeIn(BaseModel):
    probe_id: uuid.UUID


async def write_probe(body: ProbeIn, request: Request) -> dict[str, str]:
    """One row and one outbox message, in one unit of work, committed once."""
    probe_id = str(body.probe_id)
    async with request.app.state.container.uow() as uow:
        await uow.session.execute(
            crash_probe.insert().values(probe_id=probe_id, created_at=utc_now())
        )
        uow.record(ProbeWritten(probe_id=probe_id))
        await uow.commit()
    return {"probe_id": probe_id}


def create() -> FastAPI:
    app = create_app(load_settings(), run_worker=False)
    app.add_api_route("/probe", write_probe, methods=["POST"], status_code=201)
    return app
