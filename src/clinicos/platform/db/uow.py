"""SQLAlchemy unit of work: one session, one commit, domain events written to the outbox."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clinicos.kernel.clock import Clock, SystemClock
from clinicos.kernel.events import DomainEvent
from clinicos.platform.db.models import OUTBOX_PENDING, OutboxMessage


class SqlUnitOfWork:
    """``async with uow: ...; await uow.commit()`` — events recorded inside land in the outbox
    in the same transaction as the change, or not at all."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock | None = None,
        organization_id: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock or SystemClock()
        self.organization_id = organization_id
        self._session: AsyncSession | None = None
        self._events: list[DomainEvent] = []
        self._committed = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside its 'async with' block")
        return self._session

    @property
    def clock(self) -> Clock:
        return self._clock

    async def __aenter__(self) -> Self:
        if self._session is not None or self._committed:
            raise RuntimeError("a unit of work is used for exactly one use case")
        self._session = self._sessions()
        if self.organization_id is not None:
            await self.scope_to(self.organization_id)
        return self

    async def scope_to(self, organization_id: str | None) -> None:
        """Point row-level security at one tenant (None: installation-level rows only) for the
        rest of this transaction. For use cases that learn the tenant midway, e.g. sign-in."""
        self.organization_id = organization_id
        if self.session.get_bind().dialect.name != "postgresql":
            return
        # `true` = local to this transaction, so a pooled connection never carries one
        # tenant's setting into another's request.
        await self.session.execute(
            text("SELECT set_config('app.organization_id', :org, true)"),
            {"org": organization_id or ""},
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back an uncommitted transaction and detaches the objects *without*
        # expiring them, so what a read-only use case loaded stays readable after the block.
        self._events.clear()
        await self.session.close()

    def record(self, event: DomainEvent) -> None:
        if self._committed:
            raise RuntimeError("cannot record events after commit")
        self._events.append(event)

    async def commit(self) -> None:
        if self._committed:
            raise RuntimeError("a unit of work commits once")
        session = self.session
        if self._events:
            now = self._clock.now()
            # One Core INSERT for the batch (executemany): the ORM's unit of work built, tracked
            # and flushed an object per message, a visible share of every write request's CPU.
            await session.execute(
                _INSERT_OUTBOX,
                [
                    {
                        "event_id": event.event_id,
                        "event_type": event.event_type,
                        "organization_id": event.organization_id,
                        "payload": event.payload(),
                        "occurred_at": event.occurred_at,
                        "created_at": now,
                        "status": OUTBOX_PENDING,
                        "attempts": 0,
                        "available_at": now,
                    }
                    for event in self._events
                ],
            )
        await session.commit()
        self._committed = True
        self._events.clear()


_INSERT_OUTBOX = insert(OutboxMessage)

UnitOfWorkFactory = Callable[[], SqlUnitOfWork]
