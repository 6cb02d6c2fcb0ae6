"""Retention: what is past its window is purged in batches, reported per clinic, never twice;
the audit chain keeps verifying from the anchor the purge leaves; nothing inside its window goes,
and on PostgreSQL the database itself refuses to purge recent audit rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container, build_container
from clinicos.config import RetentionSettings
from clinicos.governance import record_audit, verify_audit_chain
from clinicos.governance.models import AuditEvent, KpiEvent, RetentionRun
from clinicos.governance.retention import PURGES, purge_audit_batch, run_retention
from clinicos.identity.models import AuthSession
from clinicos.kernel.clock import FixedClock
from clinicos.platform.db.uow import SqlUnitOfWork
from tests.integration.governance.test_kpi import evaluation, publish
from tests.support.records_fixtures import clinic
from tests.support.tenancy_fixtures import new_organization

NOW = datetime.now(UTC)


@pytest.fixture
async def past(container: Container) -> AsyncIterator[dict[int, Container]]:
    """Containers on the same database whose clocks stand N days ago (built on demand)."""
    made: dict[int, Container] = {}

    class Past(dict[int, Container]):
        def __missing__(self, days: int) -> Container:
            made[days] = build_container(
                container.settings, clock=FixedClock(NOW - timedelta(days=days))
            )
            return made[days]

    yield Past()
    for c in made.values():
        await c.dispose()


async def audit(c: Container, org: str | None, n: int) -> None:
    async with c.uow(org) as uow:
        for i in range(n):
            await record_audit(
                uow,
                organization_id=org,
                actor_type="system",
                actor_id="retention-test",
                action="patient.read",
                target_type="patient",
                target_id=f"p-{i}",
                purpose="treatment",
            )
        await uow.commit()


async def rows_of(owner_engine: AsyncEngine, model: type, org: str) -> int:
    async with owner_engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(model).where(model.organization_id == org)  # type: ignore[attr-defined]
            )
            or 0
        )


def policy(**overrides: int) -> RetentionSettings:
    return RetentionSettings(**{"audit_days": 730, "batch_size": 2, **overrides})


async def test_audit_rows_when_past_retention_are_purged_and_the_chain_still_verifies(
    container: Container, past: dict[int, Container], owner_engine: AsyncEngine
) -> None:
    org = await new_organization(past[800], "ret-audit")  # its creation is audited 800 days ago
    await audit(past[800], org, 5)
    await audit(past[400], org, 3)  # inside a 730-day window
    await audit(container, org, 2)
    total = await rows_of(owner_engine, AuditEvent, org)
    old = total - 5

    first = await run_retention(uows=container.uow, policy=policy())
    again = await run_retention(uows=container.uow, policy=policy())

    (mine,) = [v for v in first if v.organization_id == org]
    assert (mine.status, mine.purged["audit"]) == ("completed", old)
    assert [v.purged["audit"] for v in again if v.organization_id == org] == [0]
    assert await rows_of(owner_engine, AuditEvent, org) == 5
    async with container.uow(org) as uow:
        report = await verify_audit_chain(uow, organization_id=org)
    assert report.ok, report
    assert (report.purged_through_seq, report.rows_checked) == (old, 5)
    # The chain keeps growing from where it was, and still verifies.
    await audit(container, org, 1)
    async with container.uow(org) as uow:
        assert (await verify_audit_chain(uow, organization_id=org)).ok


async def test_audit_rows_when_inside_their_window_are_never_purged(
    container: Container, past: dict[int, Container], owner_engine: AsyncEngine
) -> None:
    org = await new_organization(past[364], "ret-window")
    await audit(past[364], org, 3)
    before = await rows_of(owner_engine, AuditEvent, org)

    views = await run_retention(uows=container.uow, policy=policy(audit_days=365))

    assert [v.purged["audit"] for v in views if v.organization_id == org] == [0]
    assert await rows_of(owner_engine, AuditEvent, org) == before
    async with container.uow(org) as uow:
        with pytest.raises(ValueError, match="365 days"):
            await purge_audit_batch(uow, org, NOW - timedelta(days=10), 100)


async def test_audit_purge_function_when_asked_for_recent_rows_or_another_chain_refuses(
    container: Container, past: dict[int, Container], owner_engine: AsyncEngine
) -> None:
    if container.settings.is_sqlite:
        pytest.skip("the database-side floor is PostgreSQL's purge function")
    org = await new_organization(past[800], "ret-floor")
    other = await new_organization(past[800], "ret-other")
    await audit(past[800], other, 2)
    purge = text("SELECT governance_purge_audit(:chain, :before, 100)")

    async with container.uow(org) as uow:
        with pytest.raises(DBAPIError, match="younger than 365 days"):
            await uow.session.scalar(purge, {"chain": org, "before": NOW})
    async with container.uow(org) as uow:
        with pytest.raises(DBAPIError, match="own chain"):
            await uow.session.scalar(purge, {"chain": other, "before": NOW - timedelta(days=700)})
    async with container.uow(org) as uow:  # and the app role still may not delete directly
        with pytest.raises(DBAPIError):
            await uow.session.execute(text("DELETE FROM audit_event"))
    assert await rows_of(owner_engine, AuditEvent, other) >= 2


async def test_kpi_events_and_ended_sessions_when_past_retention_are_purged(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "ret-kpi", "admin")
    org = staff["admin"].member.organization_id
    old = (NOW - timedelta(days=2000)).isoformat()
    await publish(
        container,
        org,
        [evaluation(org, old, "BLOCK", "k1"), evaluation(org, NOW.isoformat(), "PASS", "k2")],
    )
    async with owner_engine.begin() as conn:  # a session that ended 100 days ago
        await conn.execute(
            AuthSession.__table__.insert().values(
                id="s-ended",
                user_id=staff["admin"].member.user_id,
                organization_id=org,
                created_at=NOW - timedelta(days=101),
                expires_at=NOW - timedelta(days=100),
                revoked_at=None,
                revoked_reason=None,
            )
        )

    views = await run_retention(uows=container.uow, policy=policy())

    (mine,) = [v for v in views if v.organization_id == org]
    assert mine.purged["governance_events"] == 1
    assert mine.purged["auth"] == 1
    assert await rows_of(owner_engine, KpiEvent, org) == 1
    async with owner_engine.connect() as conn:
        sessions = (
            (await conn.execute(select(AuthSession.id).where(AuthSession.organization_id == org)))
            .scalars()
            .all()
        )
    assert "s-ended" not in sessions and sessions  # the admin's live session stays
    me = await client.get("/api/v1/retention/runs", headers=staff["admin"].headers)
    assert me.status_code == 200  # still signed in


async def test_run_when_it_fails_half_way_resumes_without_deleting_or_counting_twice(
    container: Container, past: dict[int, Container], owner_engine: AsyncEngine
) -> None:
    org = await new_organization(past[800], "ret-resume")
    await audit(past[800], org, 5)
    await publish(
        container, org, [evaluation(org, (NOW - timedelta(days=2000)).isoformat(), "WARN", "r1")]
    )
    audit_old = await rows_of(owner_engine, AuditEvent, org)

    async def broken(uow: SqlUnitOfWork, o: str, before: datetime, limit: int) -> int:
        raise RuntimeError("disk went away")

    failed = await run_retention(
        uows=container.uow, policy=policy(), purges={**PURGES, "governance_events": broken}
    )
    resumed = await run_retention(uows=container.uow, policy=policy())

    (first,) = [v for v in failed if v.organization_id == org]
    (second,) = [v for v in resumed if v.organization_id == org]
    assert (first.status, first.error) == ("failed", "governance_events: RuntimeError")
    assert first.purged == {"audit": audit_old, "governance_events": 0, "auth": 0}
    assert second.status == "completed"
    assert second.purged == {"audit": 0, "governance_events": 1, "auth": 0}
    assert await rows_of(owner_engine, KpiEvent, org) == 0
    async with container.uow(org) as uow:
        assert (await verify_audit_chain(uow, organization_id=org)).ok
    async with owner_engine.connect() as conn:
        statuses = (
            (
                await conn.execute(
                    select(RetentionRun.status)
                    .where(RetentionRun.organization_id == org)
                    .order_by(RetentionRun.started_at)
                )
            )
            .scalars()
            .all()
        )
    assert statuses == ["failed", "completed"]


async def test_runs_when_listed_are_the_clinic_s_own_and_only_for_admins_and_auditors(
    container: Container, client: AsyncClient
) -> None:
    a = await clinic(container, client, "ret-list-a", "admin", "clinician")
    b = await clinic(container, client, "ret-list-b", "auditor")
    await run_retention(uows=container.uow, policy=policy())

    mine = await client.get("/api/v1/retention/runs", headers=a["admin"].headers)
    theirs = await client.get("/api/v1/retention/runs", headers=b["auditor"].headers)
    clinician = await client.get("/api/v1/retention/runs", headers=a["clinician"].headers)

    assert mine.status_code == 200 and theirs.status_code == 200
    assert len(mine.json()) == 1 and mine.json()[0]["status"] == "completed"
    assert set(mine.json()[0]["purged"]) == {"audit", "governance_events", "auth"}
    assert {r["id"] for r in mine.json()}.isdisjoint({r["id"] for r in theirs.json()})
    assert clinician.status_code == 403
