"""Listing audit events: one chain only, newest first, filters, keyset pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from clinicos.bootstrap import Container
from clinicos.governance import AuditEvent, list_audit_events, record_audit
from clinicos.kernel.clock import FixedClock

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock(container: Container) -> FixedClock:
    fixed = FixedClock(START)
    container.clock = fixed
    return fixed


async def record(
    container: Container,
    clock: FixedClock,
    organization_id: str | None,
    *,
    actor_id: str | None = "user-1",
    action: str = "patient.read",
    target_id: str | None = "patient-1",
) -> None:
    clock.advance(timedelta(minutes=1))
    async with container.uow(organization_id) as uow:
        await record_audit(
            uow,
            organization_id=organization_id,
            actor_type="user" if actor_id else "anonymous",
            actor_id=actor_id,
            action=action,
            target_type="patient" if target_id else None,
            target_id=target_id,
            purpose="treatment",
        )
        await uow.commit()


async def listed(container: Container, organization_id: str | None, **filters: object) -> list[int]:
    async with container.uow(organization_id) as uow:
        events = await list_audit_events(
            uow.session,
            organization_id=organization_id,
            **filters,  # type: ignore[arg-type]
        )
    return [e.seq for e in events]


@pytest.fixture
async def org(container: Container, clock: FixedClock) -> str:
    """An org with six events (seq 1..6, a minute apart); other chains write in between."""
    org_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    await record(container, clock, org_id)  # 1
    await record(container, clock, org_id, actor_id="user-2")  # 2
    await record(container, clock, org_id, action="note.write", target_id="patient-2")  # 3
    await record(container, clock, other)
    await record(container, clock, None, actor_id=None, action="auth.login", target_id=None)
    await record(container, clock, org_id, actor_id="user-2", target_id="patient-2")  # 4
    await record(container, clock, org_id, action="auth.login", target_id=None)  # 5
    await record(container, clock, org_id)  # 6
    return org_id


async def test_list_audit_events_newest_first_only_own_chain(
    container: Container, org: str
) -> None:
    assert await listed(container, org) == [6, 5, 4, 3, 2, 1]


async def test_list_audit_events_installation_chain(container: Container, org: str) -> None:
    async with container.uow() as uow:
        events = await list_audit_events(uow.session, organization_id=None)

    assert [(e.seq, e.organization_id, e.action) for e in events] == [(1, None, "auth.login")]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"actor_id": "user-2"}, [4, 2]),
        ({"action": "note.write"}, [3]),
        ({"target_type": "patient", "target_id": "patient-2"}, [4, 3]),
        ({"actor_id": "user-1", "action": "patient.read"}, [6, 1]),
        ({"actor_id": "nobody"}, []),
    ],
)
async def test_list_audit_events_filters(
    container: Container, org: str, filters: dict[str, object], expected: list[int]
) -> None:
    assert await listed(container, org, **filters) == expected


async def test_list_audit_events_time_range_from_inclusive_to_exclusive(
    container: Container, org: str
) -> None:
    async with container.uow(org) as uow:
        third = (await list_audit_events(uow.session, organization_id=org, action="note.write"))[0]

    # seq 3 at t, seq 4 at t+3min (other chains wrote in between), seq 5 at t+4min: excluded.
    window = {
        "occurred_from": third.occurred_at,
        "occurred_to": third.occurred_at + timedelta(minutes=4),
    }
    assert await listed(container, org, **window) == [4, 3]


async def test_list_audit_events_keyset_pages_cover_everything_once(
    container: Container, org: str
) -> None:
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        page = await listed(container, org, limit=4, before_seq=before)
        if not page:
            break
        pages.append(page)
        before = page[-1]

    assert pages == [[6, 5, 4, 3], [2, 1]]


async def test_list_audit_events_rows_readable_after_unit_of_work(
    container: Container, org: str
) -> None:
    async with container.uow(org) as uow:
        events = await list_audit_events(uow.session, organization_id=org, limit=1)

    assert isinstance(events[0], AuditEvent)
    assert (events[0].seq, events[0].action, events[0].chain_key) == (6, "patient.read", org)


@pytest.mark.parametrize("limit", [0, 501])
async def test_list_audit_events_limit_out_of_range_rejected(
    container: Container, limit: int
) -> None:
    async with container.uow() as uow:
        with pytest.raises(ValueError, match="limit"):
            await list_audit_events(uow.session, organization_id=None, limit=limit)


async def test_list_audit_events_free_text_filter_rejected(container: Container) -> None:
    async with container.uow() as uow:
        with pytest.raises(ValueError):
            await list_audit_events(uow.session, organization_id=None, actor_id="Maria Perez")
