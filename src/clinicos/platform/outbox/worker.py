"""Drains the outbox at-least-once with idempotent handler bookkeeping, backoff and dead letters,
and runs due scheduled jobs. Several workers may run at once (lease + SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clinicos.config import OutboxSettings
from clinicos.kernel.clock import Clock, SystemClock
from clinicos.kernel.ids import new_id
from clinicos.platform.db.models import (
    OUTBOX_DEAD,
    OUTBOX_DELIVERED,
    OUTBOX_PENDING,
    JobSchedule,
    OutboxDelivery,
    OutboxMessage,
)
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.observability.logging import get_logger
from clinicos.platform.observability.metrics import (
    JOB_RUNS,
    OUTBOX_DEAD_LETTERED,
    OUTBOX_HANDLED,
)
from clinicos.platform.outbox.registry import (
    Handler,
    HandlerRegistry,
    JobRegistry,
    OutboxEnvelope,
    ScheduledJob,
)

log = get_logger("clinicos.worker")


def backoff_delay(attempts: int, settings: OutboxSettings) -> timedelta:
    """Exponential backoff after the n-th failed attempt, capped."""
    # Bound the exponent: max_attempts has no upper limit, and base * 2**n overflows a float
    # from n ~ 1024, which would crash failure bookkeeping and leave the message un-dead-letterable.
    # 2**64 * base already exceeds any sane cap, so the result is unchanged below that.
    exponent = min(max(attempts - 1, 0), 64)
    seconds = settings.backoff_base_seconds * (2**exponent)
    return timedelta(seconds=min(seconds, settings.backoff_max_seconds))


@dataclass
class DrainResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0


class OutboxWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        handlers: HandlerRegistry,
        jobs: JobRegistry,
        settings: OutboxSettings,
        clock: Clock | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.handlers = handlers
        self.jobs = jobs
        self.settings = settings
        self.clock = clock or SystemClock()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"

    # -- outbox -------------------------------------------------------------------------------

    async def claim_batch(self) -> list[OutboxEnvelope]:
        """Lease up to ``batch_size`` due messages to this worker (others skip them)."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        due = and_(
            OutboxMessage.status == OUTBOX_PENDING,
            OutboxMessage.available_at <= now,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        async with self.sessions() as session, session.begin():
            candidates = (
                (
                    await session.execute(
                        select(OutboxMessage.seq)
                        .where(due)
                        .order_by(OutboxMessage.seq)
                        .limit(self.settings.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not candidates:
                return []
            # Re-check `due` in the UPDATE: on SQLite there is no row lock, and a competing
            # worker may have leased some of these between our SELECT and UPDATE.
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.seq.in_(candidates), due)
                .values(claimed_by=self.worker_id, claimed_until=lease_until)
            )
            rows = (
                (
                    await session.execute(
                        select(OutboxMessage)
                        .where(
                            OutboxMessage.seq.in_(candidates),
                            OutboxMessage.claimed_by == self.worker_id,
                            OutboxMessage.claimed_until == lease_until,
                        )
                        .order_by(OutboxMessage.seq)
                    )
                )
                .scalars()
                .all()
            )
            return [
                OutboxEnvelope(
                    seq=m.seq,
                    event_id=m.event_id,
                    event_type=m.event_type,
                    organization_id=m.organization_id,
                    occurred_at=m.occurred_at,
                    payload=dict(m.payload),
                    attempts=m.attempts,
                )
                for m in rows
            ]

    async def drain_once(self) -> DrainResult:
        result = DrainResult()
        batch = await self.claim_batch()
        result.claimed = len(batch)
        for envelope in batch:
            outcome = await self._process(envelope)
            if outcome == OUTBOX_DELIVERED:
                result.delivered += 1
            elif outcome == OUTBOX_DEAD:
                result.dead += 1
            else:
                result.retried += 1
        return result

    async def drain_until_empty(self, max_batches: int = 1000) -> DrainResult:
        """Drain everything currently due (tests, `clinicos worker --once`)."""
        total = DrainResult()
        for _ in range(max_batches):
            r = await self.drain_once()
            if r.claimed == 0:
                break
            total.claimed += r.claimed
            total.delivered += r.delivered
            total.retried += r.retried
            total.dead += r.dead
        return total

    async def _process(self, envelope: OutboxEnvelope) -> str:
        failure: tuple[str, BaseException] | None = None
        for name, handler in self.handlers.handlers_for(envelope.event_type).items():
            try:
                await self._run_handler(envelope, name, handler)
            except Exception as exc:  # a handler's failure must not stop the others' messages
                failure = (name, exc)
                OUTBOX_HANDLED.labels(handler=name, outcome="failed").inc()
                log.warning(
                    "outbox_handler_failed",
                    handler=name,
                    event_type=envelope.event_type,
                    seq=envelope.seq,
                    attempt=envelope.attempts + 1,
                    exc_info=exc,
                )
                break
        if failure is None:
            await self._finish(envelope)
            return OUTBOX_DELIVERED
        return await self._record_failure(envelope, *failure)

    async def _run_handler(self, envelope: OutboxEnvelope, name: str, handler: Handler) -> None:
        uow = SqlUnitOfWork(self.sessions, clock=self.clock)
        async with uow:
            done = await uow.session.get(OutboxDelivery, (envelope.seq, name))
            if done is not None:
                OUTBOX_HANDLED.labels(handler=name, outcome="skipped_duplicate").inc()
                return
            uow.session.add(
                OutboxDelivery(
                    message_seq=envelope.seq, handler=name, delivered_at=self.clock.now()
                )
            )
            # Claim the (message, handler) row *before* the handler runs, and treat only this
            # flush's IntegrityError as "another worker got here first" (its lease expired and
            # it was re-claimed). Catching IntegrityError around the final commit instead also
            # swallowed the handler's own constraint violations, marking the message delivered
            # with the handler's writes lost. On PostgreSQL this flush waits for a competing
            # transaction holding the same key, so the handler never runs twice concurrently.
            try:
                await uow.session.flush()
            except IntegrityError:
                OUTBOX_HANDLED.labels(handler=name, outcome="skipped_duplicate").inc()
                return
            await handler(envelope, uow)
            await uow.commit()
        OUTBOX_HANDLED.labels(handler=name, outcome="ok").inc()

    async def _finish(self, envelope: OutboxEnvelope) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.seq == envelope.seq, OutboxMessage.claimed_by == self.worker_id
                )
                .values(
                    status=OUTBOX_DELIVERED,
                    delivered_at=now,
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    async def _record_failure(
        self, envelope: OutboxEnvelope, handler: str, exc: BaseException
    ) -> str:
        attempts = envelope.attempts + 1
        dead = attempts >= self.settings.max_attempts
        now = self.clock.now()
        error = f"{handler}: {type(exc).__module__}.{type(exc).__qualname__}"
        async with self.sessions() as session, session.begin():
            recorded = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.seq == envelope.seq, OutboxMessage.claimed_by == self.worker_id
                )
                .values(
                    attempts=attempts,
                    status=OUTBOX_DEAD if dead else OUTBOX_PENDING,
                    available_at=now + backoff_delay(attempts, self.settings),
                    last_error=error[:500],
                    claimed_by=None,
                    claimed_until=None,
                )
            )
        if not recorded.rowcount:  # type: ignore[attr-defined]
            # Our lease expired and another worker re-claimed the message: its outcome is the
            # one that counts. Counting ours too double-counted dead letters.
            log.warning("outbox_lease_lost", event_type=envelope.event_type, seq=envelope.seq)
            return OUTBOX_PENDING
        if dead:
            OUTBOX_DEAD_LETTERED.inc()
            log.error("outbox_dead_lettered", event_type=envelope.event_type, seq=envelope.seq)
            return OUTBOX_DEAD
        return OUTBOX_PENDING

    # -- scheduled jobs -----------------------------------------------------------------------

    async def run_due_jobs(self) -> list[str]:
        """Run each registered job whose time has come; exactly one worker wins each slot."""
        ran: list[str] = []
        for job in self.jobs.all():
            if await self._claim_job(job):
                await self._run_job(job)
                ran.append(job.name)
        return ran

    async def _claim_job(self, job: ScheduledJob) -> bool:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            exists = await session.get(JobSchedule, job.name)
            if exists is None:
                try:
                    async with session.begin_nested():
                        await session.execute(
                            insert(JobSchedule).values(name=job.name, next_run_at=now, run_count=0)
                        )
                except IntegrityError:
                    pass  # another worker created it at the same moment
            # Compare-and-set on next_run_at: only one worker's UPDATE matches a due slot.
            won = await session.execute(
                update(JobSchedule)
                .where(JobSchedule.name == job.name, JobSchedule.next_run_at <= now)
                .values(
                    next_run_at=now + job.interval,
                    last_started_at=now,
                    run_count=JobSchedule.run_count + 1,
                )
            )
            return bool(won.rowcount)  # type: ignore[attr-defined]

    async def _run_job(self, job: ScheduledJob) -> None:
        outcome = "ok"
        uow = SqlUnitOfWork(self.sessions, clock=self.clock)
        try:
            async with uow:
                await job.run(uow)
                await uow.commit()
        except Exception as exc:  # a failing job is logged and retried at its next slot
            outcome = "failed"
            log.error("scheduled_job_failed", job=job.name, exc_info=exc)
        JOB_RUNS.labels(job=job.name, outcome=outcome).inc()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(JobSchedule)
                .where(JobSchedule.name == job.name)
                .values(last_finished_at=self.clock.now(), last_outcome=outcome)
            )

    # -- loop ---------------------------------------------------------------------------------

    async def run_forever(
        self, stop: asyncio.Event, *, ready: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Loop until ``stop``. ``ready`` (e.g. "the schema is current") is asked before each
        round; while it says no, the worker idles instead of touching tables it may not know."""
        log.info("worker_started", worker=self.worker_id)
        while not stop.is_set():
            busy = False
            try:
                if ready is None or await ready():
                    busy = (await self.drain_once()).claimed > 0
                    await self.run_due_jobs()
            except Exception as exc:  # database blips: log, back off, keep going
                log.error("worker_iteration_failed", exc_info=exc)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_interval_seconds)
        log.info("worker_stopped", worker=self.worker_id)


async def purge_delivered_outbox(uow: SqlUnitOfWork, *, retention: timedelta) -> int:
    """Scheduled job body: delete delivered messages older than the retention window."""
    cutoff: datetime = uow.clock.now() - retention
    result = await uow.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status == OUTBOX_DELIVERED, OutboxMessage.delivered_at < cutoff
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
