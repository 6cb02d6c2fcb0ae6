"""Operational endpoints: liveness, readiness (database + schema), Prometheus metrics. Public."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from clinicos.platform.db.models import OUTBOX_DEAD, OUTBOX_PENDING, OutboxMessage
from clinicos.platform.db.schema import SchemaGate, SchemaStatus
from clinicos.platform.observability.logging import get_logger
from clinicos.platform.observability.metrics import (
    DB_POOL,
    OUTBOX_MESSAGES,
    SCHEMA_CURRENT,
    render_latest,
)

router = APIRouter(tags=["operations"])
log = get_logger("clinicos.ops")

# Routes anyone may call without a session (the identity context's route audit allows these).
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})


@router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: database reachable and schema current")
async def ready(request: Request) -> JSONResponse:
    gate: SchemaGate = request.app.state.container.schema
    checks: dict[str, Any] = {}
    try:
        status_now = await gate.refresh()
    except Exception as exc:  # any failure to reach the database means not ready
        log.warning("readiness_database_unreachable", exc_info=exc)
        checks["database"] = {"status": "unreachable"}
        checks["schema"] = {"status": SchemaStatus.unknown.value}
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    checks["database"] = {"status": "ok"}
    state = gate.last_state
    assert state is not None
    SCHEMA_CURRENT.set(0 if status_now is SchemaStatus.behind else 1)
    checks["schema"] = {
        "status": "ok" if status_now is SchemaStatus.current else status_now.value,
        "current": list(state.current),
        "head": list(state.head),
    }
    # "ahead" stays ready: a newer release's expand migration must not take older pods down.
    status = 503 if status_now is SchemaStatus.behind else 200
    return JSONResponse(
        {"status": "ok" if status == 200 else "unavailable", "checks": checks}, status_code=status
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    container = request.app.state.container
    pool: Any = container.engine.sync_engine.pool
    for label, reader_name in (
        ("checked_out", "checkedout"),
        ("idle", "checkedin"),
        ("size", "size"),
    ):
        reader = getattr(pool, reader_name, None)
        if callable(reader):
            DB_POOL.labels(state=label).set(reader())
    try:
        async with container.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.status.in_([OUTBOX_PENDING, OUTBOX_DEAD]))
                    .group_by(OutboxMessage.status)
                )
            ).all()
        counts = {status: count for status, count in rows}
        for status in (OUTBOX_PENDING, OUTBOX_DEAD):
            OUTBOX_MESSAGES.labels(status=status).set(counts.get(status, 0))
    except Exception as exc:  # metrics stay scrapeable while the database is down
        log.warning("metrics_outbox_unavailable", exc_info=exc)
    return Response(render_latest(), media_type="text/plain; version=0.0.4; charset=utf-8")
