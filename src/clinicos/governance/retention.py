"""Retention: the daily job that purges operational data past its retention window.

Categories and windows come from settings (``CLINICOS_RETENTION__*``, docs/contexts/governance.md
"Retention"): audit trail rows, decision-support events counted for the KPIs, and ended sign-in
sessions (identity deletes its own rows). Clinical records are never purged here.

How a run behaves:
- organization by organization, each category in batches of ``batch_size`` rows, **one
  transaction per batch** that deletes the rows *and* adds them to the run's report row — so a
  run that dies half-way has committed exactly what it reported, and the next run, which deletes
  by cutoff again, carries on without deleting or counting anything twice;
- audit rows go only as a contiguous prefix of their chain, oldest first, each batch moving the
  chain's anchor so the rest still verifies; on PostgreSQL through the ``governance_purge_audit``
  function (migration 0015), which refuses rows younger than the floor
  (:data:`clinicos.config.AUDIT_RETENTION_FLOOR_DAYS`) whatever the caller asks;
- a category that fails marks the organization's run ``failed`` with the error's class (never
  data) and the job goes on with the next organization; the job then reports the failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import sqlite

from clinicos.config import AUDIT_RETENTION_FLOOR_DAYS, RetentionSettings
from clinicos.governance.audit.chain import chain_key_for
from clinicos.governance.models import AuditChainAnchor, AuditEvent, KpiEvent, RetentionRun
from clinicos.identity import organization_ids, purge_ended_sessions, purge_spent_account_tokens
from clinicos.kernel.actor import Actor
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.observability.logging import get_logger

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]
# What a category purges in one transaction: (uow, organization, cutoff, limit) → rows purged.
Purge = Callable[[SqlUnitOfWork, str, datetime, int], Awaitable[int]]

CATEGORIES = ("audit", "governance_events", "auth")
RUNS_LISTED = 50

log = get_logger("clinicos.retention")


class RetentionIncomplete(RuntimeError):
    """At least one organization's run failed; what was done is committed and reported."""


@dataclass(frozen=True)
class RetentionRunView:
    id: str
    organization_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    purged: dict[str, int]
    cutoffs: dict[str, str]
    error: str | None


def cutoffs_for(policy: RetentionSettings, now: datetime) -> dict[str, datetime]:
    """The instant before which each category is past retention."""
    return {
        "audit": now - timedelta(days=policy.audit_days),
        "governance_events": now - timedelta(days=policy.governance_events_days),
        "auth": now - timedelta(days=policy.auth_days),
    }


# -- the purges, one batch each --------------------------------------------------------------


async def purge_audit_batch(
    uow: SqlUnitOfWork, org: str | None, before: datetime, limit: int
) -> int:
    """Purge up to ``limit`` of a chain's oldest rows older than ``before`` and move its anchor."""
    floor = uow.clock.now() - timedelta(days=AUDIT_RETENTION_FLOOR_DAYS)
    if before > floor:
        raise ValueError(f"audit rows younger than {AUDIT_RETENTION_FLOOR_DAYS} days are kept")
    chain_key = chain_key_for(org)
    session = uow.session
    if session.get_bind().dialect.name == "postgresql":
        purged = await session.scalar(
            text("SELECT governance_purge_audit(:chain, :before, :limit)"),
            {"chain": chain_key, "before": before, "limit": limit},
        )
        return int(purged or 0)
    # SQLite: the same steps as the PostgreSQL function (one writer holds the database lock).
    anchor = await session.get(AuditChainAnchor, chain_key)
    start = anchor.purged_through_seq if anchor is not None else 0
    in_chain = (AuditEvent.chain_key == chain_key, AuditEvent.seq > start)
    first_young = await session.scalar(
        select(func.min(AuditEvent.seq)).where(*in_chain, AuditEvent.occurred_at >= before)
    )
    upto_query = select(func.max(AuditEvent.seq)).where(*in_chain, AuditEvent.seq <= start + limit)
    if first_young is not None:
        upto_query = upto_query.where(AuditEvent.seq < first_young)
    upto = await session.scalar(upto_query)
    if upto is None:
        return 0
    last_hash = await session.scalar(
        select(AuditEvent.hash).where(AuditEvent.chain_key == chain_key, AuditEvent.seq == upto)
    )
    result = await session.execute(delete(AuditEvent).where(*in_chain, AuditEvent.seq <= upto))
    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    values = {
        "chain_key": chain_key,
        "purged_through_seq": upto,
        "anchor_hash": last_hash,
        "purged_rows": deleted,
        "updated_at": uow.clock.now(),
    }
    await session.execute(
        sqlite.insert(AuditChainAnchor)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["chain_key"],
            set_={
                "purged_through_seq": upto,
                "anchor_hash": last_hash,
                "purged_rows": AuditChainAnchor.purged_rows + deleted,
                "updated_at": values["updated_at"],
            },
        )
    )
    return deleted


async def purge_kpi_events_batch(uow: SqlUnitOfWork, org: str, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` counted events older than ``before`` (the daily counts stay)."""
    ids = (
        select(KpiEvent.event_id)
        .where(KpiEvent.organization_id == org, KpiEvent.occurred_at < before)
        .limit(limit)
    )
    result = await uow.session.execute(
        delete(KpiEvent).where(KpiEvent.event_id.in_(ids.scalar_subquery()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _purge_sessions_batch(uow: SqlUnitOfWork, org: str, before: datetime, limit: int) -> int:
    return await purge_ended_sessions(uow, organization_id=org, ended_before=before, limit=limit)


PURGES: dict[str, Purge] = {
    "audit": purge_audit_batch,
    "governance_events": purge_kpi_events_batch,
    "auth": _purge_sessions_batch,
}


# -- the run ---------------------------------------------------------------------------------


async def run_retention(
    *, uows: UnitOfWorkFor, policy: RetentionSettings, purges: dict[str, Purge] | None = None
) -> list[RetentionRunView]:
    """Purge every organization's data past retention; one report row per organization
    (a failed one has ``status`` ``failed``; see :func:`retention_job`). ``purges`` replaces
    the category purges (tests inject a failing one)."""
    steps = purges or PURGES
    async with uows(None) as uow:
        now = uow.clock.now()
        organizations = await organization_ids(uow)
    cutoffs = cutoffs_for(policy, now)
    views = [await _run_one(uows, org, cutoffs, policy.batch_size, steps) for org in organizations]
    installation = await _installation(uows, cutoffs, policy.batch_size)
    log.info(
        "retention_run_finished",
        organizations=len(views),
        failed=sum(1 for v in views if v.status == "failed"),
        **{f"installation_{k}": n for k, n in installation.items()},
    )
    return views


async def retention_job(uows: UnitOfWorkFor, policy: RetentionSettings) -> None:
    """The scheduled job: a run, which the worker counts as failed when any clinic's failed."""
    views = await run_retention(uows=uows, policy=policy)
    if any(v.status == "failed" for v in views):
        raise RetentionIncomplete("retention failed for some organizations; see retention_run")


async def _run_one(
    uows: UnitOfWorkFor,
    org: str,
    cutoffs: dict[str, datetime],
    batch_size: int,
    steps: dict[str, Purge],
) -> RetentionRunView:
    run_id = new_id()
    async with uows(org) as uow:
        uow.session.add(
            RetentionRun(
                id=run_id,
                organization_id=org,
                started_at=uow.clock.now(),
                status="running",
                purged=dict.fromkeys(CATEGORIES, 0),
                cutoffs={k: v.isoformat() for k, v in cutoffs.items()},
            )
        )
        await uow.commit()
    error: str | None = None
    for category in CATEGORIES:
        try:
            while True:
                async with uows(org) as uow:
                    purged = await steps[category](uow, org, cutoffs[category], batch_size)
                    if purged:
                        run = await uow.session.get(RetentionRun, run_id)
                        assert run is not None
                        run.purged = {**run.purged, category: run.purged[category] + purged}
                    await uow.commit()
                if purged < batch_size:
                    break
        except Exception as exc:  # recorded, reported; the next organization still runs
            error = f"{category}: {type(exc).__name__}"[:200]
            log.warning("retention_category_failed", category=category, exc_info=exc)
            break
    async with uows(org) as uow:
        run = await uow.session.get(RetentionRun, run_id)
        assert run is not None
        run.status = "failed" if error else "completed"
        run.error = error
        run.finished_at = uow.clock.now()
        await uow.commit()
        return _view(run)


async def _installation(
    uows: UnitOfWorkFor, cutoffs: dict[str, datetime], batch_size: int
) -> dict[str, int]:
    """The installation's own audit chain and users' spent account tokens (no organization)."""
    done = {"audit": 0, "auth": 0}
    while True:
        async with uows(None) as uow:
            purged = await purge_audit_batch(uow, None, cutoffs["audit"], batch_size)
            await uow.commit()
        done["audit"] += purged
        if purged < batch_size:
            break
    async with uows(None) as uow:
        done["auth"] = await purge_spent_account_tokens(uow, ended_before=cutoffs["auth"])
        await uow.commit()
    return done


async def list_retention_runs(*, uows: UnitOfWorkFor, actor: Actor) -> list[RetentionRunView]:
    """The organization's latest retention runs, newest first."""
    async with uows(actor.organization_id) as uow:
        rows = await uow.session.scalars(
            select(RetentionRun)
            .where(RetentionRun.organization_id == actor.organization_id)
            .order_by(RetentionRun.started_at.desc(), RetentionRun.id.desc())
            .limit(RUNS_LISTED)
        )
        return [_view(r) for r in rows]


def _view(row: RetentionRun) -> RetentionRunView:
    return RetentionRunView(
        id=row.id,
        organization_id=row.organization_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=row.status,
        purged=dict(row.purged),
        cutoffs=dict(row.cutoffs),
        error=row.error,
    )
