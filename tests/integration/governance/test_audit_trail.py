"""Audit trail on a real database: append in the caller's transaction, verify, find tampering.

Runs on SQLite and PostgreSQL (the `container` fixture is parametrized over both engines).
Tampering is done through the owner engine: the app role may not change audit rows at all.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance import (
    AuditEvent,
    ChainReport,
    InvalidAuditValue,
    record_audit,
    verify_audit_chain,
)
from clinicos.governance.models import AuditChainHead
from clinicos.kernel.clock import FixedClock

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def new_org() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def clock(container: Container) -> FixedClock:
    fixed = FixedClock(NOW)
    container.clock = fixed
    return fixed


async def append(
    container: Container, organization_id: str | None, count: int, **fields: str | None
) -> None:
    """`count` audit rows, each in its own committed unit of work (one per request)."""
    for n in range(count):
        async with container.uow(organization_id) as uow:
            await record_audit(
                uow,
                organization_id=organization_id,
                actor_type=fields.get("actor_type") or "user",
                actor_id=fields.get("actor_id", "user-1"),
                action=fields.get("action") or "patient.read",
                target_type=fields.get("target_type", "patient"),
                target_id=fields.get("target_id", f"patient-{n + 1}"),
                purpose=fields.get("purpose", "treatment"),
                outcome=fields.get("outcome") or "success",
                request_id=fields.get("request_id"),
            )
            await uow.commit()


async def verify(container: Container, organization_id: str | None) -> ChainReport:
    async with container.uow(organization_id) as uow:
        return await verify_audit_chain(uow, organization_id=organization_id)


async def owner_sql(owner_engine: AsyncEngine, sql: str, **params: object) -> None:
    async with owner_engine.begin() as conn:
        await conn.execute(text(sql), params)


async def row_id(owner_engine: AsyncEngine, chain_key: str, seq: int) -> str:
    async with owner_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT id FROM audit_event WHERE chain_key = :k AND seq = :s"),
            {"k": chain_key, "s": seq},
        )
        return str(found.scalar_one())


async def test_record_audit_several_chains_each_verifies(container: Container) -> None:
    org_a, org_b = new_org(), new_org()
    await append(container, org_a, 4)
    await append(container, org_b, 2)
    await append(container, None, 3, actor_type="anonymous", actor_id=None, action="auth.login")

    reports = [await verify(container, org) for org in (org_a, org_b, None)]

    assert [r.ok for r in reports] == [True, True, True]
    assert [r.rows_checked for r in reports] == [4, 2, 3]
    assert [r.chain_key for r in reports] == [org_a, org_b, "installation"]


async def test_record_audit_row_fields_and_links(container: Container, clock: FixedClock) -> None:
    org = new_org()
    await append(container, org, 2, request_id="req-1", outcome="denied", purpose="emergency")

    async with container.uow(org) as uow:
        rows = (
            (await uow.session.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars().all()
        )
        head = await uow.session.get(AuditChainHead, org)

        assert [r.seq for r in rows] == [1, 2]
        first, second = rows
        assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash
        assert (first.organization_id, first.chain_key, first.occurred_at) == (org, org, NOW)
        assert (first.outcome, first.purpose, first.request_id) == ("denied", "emergency", "req-1")
        assert head is not None and (head.last_seq, head.last_hash) == (2, second.hash)


async def test_verify_empty_chain_ok(container: Container) -> None:
    report = await verify(container, new_org())

    assert report.ok and report.rows_checked == 0


async def test_verify_small_batches_walk_whole_chain(container: Container) -> None:
    org = new_org()
    await append(container, org, 7)

    async with container.uow(org) as uow:
        report = await verify_audit_chain(uow.session, organization_id=org, batch_size=3)

    assert report.ok and report.rows_checked == 7


async def test_rolled_back_unit_of_work_leaves_no_row_and_no_head_advance(
    container: Container,
) -> None:
    org = new_org()
    await append(container, org, 2)

    with pytest.raises(RuntimeError, match="change failed"):
        async with container.uow(org) as uow:
            await record_audit(
                uow, organization_id=org, actor_type="user", actor_id="u", action="note.write"
            )
            raise RuntimeError("change failed")
    async with container.uow(org) as uow:
        await record_audit(uow, organization_id=org, actor_type="user", actor_id="u", action="x")
        # leaving without commit: rolled back as well

    async with container.uow(org) as uow:
        count = (await uow.session.execute(select(func.count()).select_from(AuditEvent))).scalar()
        head = await uow.session.get(AuditChainHead, org)
        assert count == 2
        assert head is not None and head.last_seq == 2
    await append(container, org, 1)
    report = await verify(container, org)
    assert report.ok and report.rows_checked == 3


async def test_rolled_back_first_event_leaves_no_head(container: Container) -> None:
    org = new_org()

    async with container.uow(org) as uow:
        await record_audit(
            uow, organization_id=org, actor_type="system", actor_id="cli", action="a"
        )

    async with container.uow(org) as uow:
        assert await uow.session.get(AuditChainHead, org) is None


async def test_verify_chain_isolation_tampered_org_does_not_affect_other(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org_a, org_b = new_org(), new_org()
    await append(container, org_a, 3)
    await append(container, org_b, 3)

    await owner_sql(
        owner_engine,
        "UPDATE audit_event SET action = 'patient.write' WHERE chain_key = :k",
        k=org_a,
    )

    assert not (await verify(container, org_a)).ok
    report_b = await verify(container, org_b)
    assert report_b.ok and report_b.rows_checked == 3


async def test_verify_updated_field_found_at_that_row(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 6)
    tampered = await row_id(owner_engine, org, 4)

    await owner_sql(
        owner_engine, "UPDATE audit_event SET target_id = 'patient-99' WHERE id = :id", id=tampered
    )

    report = await verify(container, org)
    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_id) == (4, tampered)
    assert report.rows_checked == 3
    assert "changed" in (report.reason or "")


async def test_verify_updated_timestamp_found_at_that_row(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 3)
    earlier = datetime(2020, 1, 1, tzinfo=UTC)

    await owner_sql(
        owner_engine,
        "UPDATE audit_event SET occurred_at = :t WHERE chain_key = :k AND seq = 2",
        # SQLite keeps UTC as naive text; PostgreSQL a timestamptz.
        t=earlier if owner_engine.dialect.name == "postgresql" else "2020-01-01 00:00:00.000000",
        k=org,
    )

    report = await verify(container, org)
    assert not report.ok and report.first_bad_seq == 2


@pytest.mark.parametrize("deleted_seq", [1, 5])
async def test_verify_deleted_row_found_at_its_seq(
    container: Container, owner_engine: AsyncEngine, deleted_seq: int
) -> None:
    org = new_org()
    await append(container, org, 8)

    await owner_sql(
        owner_engine,
        "DELETE FROM audit_event WHERE chain_key = :k AND seq = :s",
        k=org,
        s=deleted_seq,
    )

    report = await verify(container, org)
    assert not report.ok
    assert report.first_bad_seq == deleted_seq
    assert report.rows_checked == deleted_seq - 1
    assert "missing" in (report.reason or "")


async def test_verify_swapped_seq_found_at_first_swapped_row(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 6)

    # Three steps, because (chain_key, seq) is unique at every statement.
    for old, new in ((3, 1000), (4, 3), (1000, 4)):
        await owner_sql(
            owner_engine,
            "UPDATE audit_event SET seq = :new WHERE chain_key = :k AND seq = :old",
            new=new,
            old=old,
            k=org,
        )

    report = await verify(container, org)
    assert not report.ok and report.first_bad_seq == 3
    assert "reordered" in (report.reason or "")


async def test_verify_swapped_content_found_at_first_swapped_row(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 6)

    async with owner_engine.begin() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, target_id, hash, prev_hash FROM audit_event "
                    "WHERE chain_key = :k AND seq IN (2, 5) ORDER BY seq"
                ),
                {"k": org},
            )
        ).all()
        for (seq, *_), (_, target_id, hash_, prev_hash) in zip(rows, reversed(rows), strict=True):
            await conn.execute(
                text(
                    "UPDATE audit_event SET target_id = :t, hash = :h, prev_hash = :p "
                    "WHERE chain_key = :k AND seq = :s"
                ),
                {"t": target_id, "h": hash_, "p": prev_hash, "k": org, "s": seq},
            )

    report = await verify(container, org)
    assert not report.ok and report.first_bad_seq == 2


async def test_verify_truncated_tail_found_after_last_row(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 10)

    await owner_sql(owner_engine, "DELETE FROM audit_event WHERE chain_key = :k AND seq > 8", k=org)

    report = await verify(container, org)
    assert not report.ok
    assert (report.first_bad_seq, report.rows_checked) == (9, 8)
    assert "truncated" in (report.reason or "")


async def test_verify_deleted_head_reported(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 2)

    await owner_sql(owner_engine, "DELETE FROM audit_chain_head WHERE chain_key = :k", k=org)

    report = await verify(container, org)
    assert not report.ok and "head" in (report.reason or "")


async def test_verify_row_written_around_head_reported(
    container: Container, owner_engine: AsyncEngine
) -> None:
    org = new_org()
    await append(container, org, 3)

    async with owner_engine.begin() as conn:
        # A copy of row 3 as seq 4 with a fresh id: the head was never moved for it.
        await conn.execute(
            text(
                "INSERT INTO audit_event (id, organization_id, chain_key, seq, occurred_at, "
                "actor_type, actor_id, action, target_type, target_id, purpose, outcome, "
                "request_id, prev_hash, hash) "
                "SELECT :new_id, organization_id, chain_key, 4, occurred_at, actor_type, "
                "actor_id, action, target_type, target_id, purpose, outcome, request_id, "
                "prev_hash, hash FROM audit_event WHERE chain_key = :k AND seq = 3"
            ),
            {"new_id": str(uuid.uuid4()), "k": org},
        )

    report = await verify(container, org)
    assert not report.ok and report.first_bad_seq == 4


async def test_verify_installation_chain_tampering_found(
    container: Container, owner_engine: AsyncEngine
) -> None:
    await append(container, None, 3, actor_type="anonymous", actor_id=None, action="auth.login")

    await owner_sql(
        owner_engine,
        "UPDATE audit_event SET actor_type = 'user' WHERE chain_key = 'installation' AND seq = 2",
    )

    report = await verify(container, None)
    assert not report.ok and report.first_bad_seq == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"action": "Viewed chart of Maria Perez"},
        {"target_id": "maria.perez@example.org"},
        {"purpose": "follow-up of her HIV result"},
        {"outcome": "ok"},
        {"actor_type": "nurse"},
        {"request_id": "x" * 201},
        {"actor_id": "Maria Perez"},
        {"target_type": "Patient Record"},
    ],
)
async def test_record_audit_free_text_rejected_and_nothing_written(
    container: Container, overrides: dict[str, str]
) -> None:
    org = new_org()
    fields: dict[str, str] = {
        "actor_type": "user",
        "actor_id": "user-1",
        "action": "patient.read",
        "target_type": "patient",
        "target_id": "p-1",
        "purpose": "treatment",
        "outcome": "success",
        "request_id": "req-1",
    } | overrides

    async with container.uow(org) as uow:
        with pytest.raises(InvalidAuditValue):
            await record_audit(uow, organization_id=org, **fields)
        await uow.commit()

    async with container.uow(org) as uow:
        count = (await uow.session.execute(select(func.count()).select_from(AuditEvent))).scalar()
    assert count == 0


@pytest.mark.parametrize("uow_org", ["other", None])
async def test_record_audit_other_organization_than_unit_of_work_rejected(
    container: Container, uow_org: str | None
) -> None:
    async with container.uow(new_org() if uow_org else None) as uow:
        with pytest.raises(ValueError, match="scope"):
            await record_audit(
                uow, organization_id=new_org(), actor_type="user", actor_id="u", action="a"
            )


async def test_record_audit_scoped_midway_lands_in_that_chain(container: Container) -> None:
    org = new_org()

    # Sign-in learns the organization midway: the unit of work is re-scoped before auditing.
    async with container.uow() as uow:
        await record_audit(
            uow,
            organization_id=None,
            actor_type="anonymous",
            actor_id=None,
            action="auth.login",
            outcome="failure",
        )
        await uow.scope_to(org)
        await record_audit(
            uow, organization_id=org, actor_type="user", actor_id="u", action="auth.login"
        )
        await uow.commit()

    assert (await verify(container, None)).rows_checked == 1
    assert (await verify(container, org)).rows_checked == 1


async def test_record_audit_concurrent_units_of_work_get_consecutive_seqs(
    container: Container,
) -> None:
    org = new_org()

    async def one(n: int) -> None:
        async with container.uow(org) as uow:
            await record_audit(
                uow,
                organization_id=org,
                actor_type="user",
                actor_id=f"user-{n}",
                action="patient.read",
            )
            await uow.commit()

    await asyncio.gather(*(one(n) for n in range(20)))

    async with container.uow(org) as uow:
        seqs = (await uow.session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq))).all()
        actors = (await uow.session.execute(select(AuditEvent.actor_id))).scalars().all()
    assert [s for (s,) in seqs] == list(range(1, 21))
    assert sorted(str(a) for a in actors) == sorted(f"user-{n}" for n in range(20))
    report = await verify(container, org)
    assert report.ok and report.rows_checked == 20
