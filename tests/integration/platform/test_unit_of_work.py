"""SqlUnitOfWork: the change and its domain events land in one transaction, or not at all.

Runs on SQLite and PostgreSQL (the `container` fixture is parametrized over both engines).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from clinicos.bootstrap import Container
from clinicos.kernel.clock import FixedClock
from clinicos.kernel.events import DomainEvent
from clinicos.platform.db.models import OUTBOX_PENDING, OutboxMessage

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ORG_ID = "0f0e0d0c-0000-4000-8000-000000000001"


@dataclass(frozen=True, kw_only=True)
class AppointmentBooked(DomainEvent):
    event_type: ClassVar[str] = "tests.AppointmentBooked"
    appointment_id: str
    slot_count: int
    starts_at: datetime


def booked(**overrides: object) -> AppointmentBooked:
    fields: dict[str, object] = {
        "organization_id": ORG_ID,
        "appointment_id": "appt-1",
        "slot_count": 2,
        "starts_at": NOW + timedelta(days=1),
        "occurred_at": NOW - timedelta(seconds=5),
    }
    fields.update(overrides)
    return AppointmentBooked(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clock(container: Container) -> FixedClock:
    fixed = FixedClock(NOW)
    container.clock = fixed
    return fixed


@pytest.fixture
async def change_table(owner_engine: AsyncEngine) -> AsyncIterator[str]:
    """A throwaway table standing in for a context's own write (the 'change')."""
    async with owner_engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS test_uow_change"))
        await conn.execute(text("CREATE TABLE test_uow_change (ref VARCHAR(64) NOT NULL)"))
    try:
        yield "test_uow_change"
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS test_uow_change"))


async def write_change(session: AsyncSession, ref: str) -> None:
    await session.execute(text("INSERT INTO test_uow_change (ref) VALUES (:ref)"), {"ref": ref})


async def change_refs(container: Container) -> list[str]:
    async with container.sessions() as session:
        rows = await session.execute(text("SELECT ref FROM test_uow_change ORDER BY ref"))
        return [r[0] for r in rows]


async def outbox_messages(container: Container) -> list[OutboxMessage]:
    async with container.sessions() as session:
        return list(
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars()
        )


async def outbox_count(container: Container) -> int:
    async with container.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


@pytest.mark.parametrize("organization_id", [ORG_ID, None])
async def test_commit_when_events_recorded_writes_change_and_pending_outbox_row(
    container: Container, clock: FixedClock, change_table: str, organization_id: str | None
) -> None:
    # Arrange
    event = booked(organization_id=organization_id)
    uow = container.uow()

    # Act
    async with uow:
        await write_change(uow.session, "appt-1")
        uow.record(event)
        await uow.commit()

    # Assert
    assert await change_refs(container) == ["appt-1"]
    [message] = await outbox_messages(container)
    assert message.event_id == event.event_id
    assert message.event_type == "tests.AppointmentBooked"
    assert message.organization_id == organization_id
    assert message.payload == {
        "appointment_id": "appt-1",
        "slot_count": 2,
        "starts_at": (NOW + timedelta(days=1)).isoformat(),
    }
    assert message.occurred_at == event.occurred_at
    assert message.created_at == clock.now()
    assert message.available_at == clock.now()
    assert message.status == OUTBOX_PENDING
    assert message.attempts == 0
    assert message.claimed_by is None
    assert message.claimed_until is None
    assert message.delivered_at is None
    assert message.last_error is None


async def test_commit_when_several_events_recorded_stores_them_in_recording_order(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    events = [booked(appointment_id=f"appt-{i}") for i in range(3)]
    uow = container.uow()

    # Act
    async with uow:
        for event in events:
            uow.record(event)
        await uow.commit()

    # Assert
    stored = await outbox_messages(container)
    assert [m.event_id for m in stored] == [e.event_id for e in events]


async def test_uow_when_left_without_commit_stores_neither_change_nor_event(
    container: Container, clock: FixedClock, change_table: str
) -> None:
    # Arrange
    uow = container.uow()

    # Act
    async with uow:
        await write_change(uow.session, "appt-1")
        uow.record(booked())

    # Assert
    assert await change_refs(container) == []
    assert await outbox_count(container) == 0


async def test_uow_when_block_raises_stores_neither_change_nor_event(
    container: Container, clock: FixedClock, change_table: str
) -> None:
    # Arrange
    uow = container.uow()

    # Act
    with pytest.raises(LookupError):
        async with uow:
            await write_change(uow.session, "appt-1")
            uow.record(booked())
            raise LookupError("use case failed")

    # Assert
    assert await change_refs(container) == []
    assert await outbox_count(container) == 0


async def test_uow_when_block_raises_after_commit_keeps_committed_work(
    container: Container, clock: FixedClock, change_table: str
) -> None:
    # Arrange
    uow = container.uow()

    # Act
    with pytest.raises(LookupError):
        async with uow:
            await write_change(uow.session, "appt-1")
            uow.record(booked())
            await uow.commit()
            raise LookupError("failure after the commit")

    # Assert
    assert await change_refs(container) == ["appt-1"]
    assert await outbox_count(container) == 1


async def test_commit_when_called_twice_raises_runtime_error(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    uow = container.uow()

    # Act / Assert
    async with uow:
        uow.record(booked())
        await uow.commit()
        with pytest.raises(RuntimeError, match="commits once"):
            await uow.commit()
    assert await outbox_count(container) == 1


async def test_record_when_after_commit_raises_and_stores_nothing_more(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    uow = container.uow()

    # Act / Assert
    async with uow:
        uow.record(booked(appointment_id="appt-1"))
        await uow.commit()
        with pytest.raises(RuntimeError, match="after commit"):
            uow.record(booked(appointment_id="appt-2"))
    [message] = await outbox_messages(container)
    assert message.payload["appointment_id"] == "appt-1"


async def test_uow_when_entered_twice_raises_runtime_error(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    uow = container.uow()
    async with uow:
        await uow.commit()

    # Act / Assert
    with pytest.raises(RuntimeError, match="exactly one use case"):
        async with uow:
            raise AssertionError("a used unit of work must refuse to open again")


async def test_session_when_used_outside_block_raises_runtime_error(
    container: Container,
) -> None:
    # Arrange
    uow = container.uow()

    # Act / Assert
    with pytest.raises(RuntimeError, match="outside its 'async with' block"):
        _ = uow.session


async def test_commit_when_outbox_insert_violates_unique_event_id_stores_nothing(
    container: Container, clock: FixedClock, change_table: str
) -> None:
    # Arrange
    first = booked(appointment_id="appt-1")
    duplicate = booked(appointment_id="appt-2", event_id=first.event_id)
    uow = container.uow()

    # Act
    with pytest.raises(IntegrityError):
        async with uow:
            await write_change(uow.session, "appt-1")
            uow.record(first)
            uow.record(duplicate)
            await uow.commit()

    # Assert: the change went down with the events, so they share one transaction
    assert await change_refs(container) == []
    assert await outbox_count(container) == 0


async def test_commit_when_event_id_already_in_outbox_rolls_back_the_change(
    container: Container, clock: FixedClock, change_table: str
) -> None:
    # Arrange
    event = booked()
    async with container.uow() as earlier:
        earlier.record(event)
        await earlier.commit()
    uow = container.uow()

    # Act
    with pytest.raises(IntegrityError):
        async with uow:
            await write_change(uow.session, "appt-2")
            uow.record(booked(appointment_id="appt-2", event_id=event.event_id))
            await uow.commit()

    # Assert
    assert await change_refs(container) == []
    [message] = await outbox_messages(container)
    assert message.payload["appointment_id"] == "appt-1"
