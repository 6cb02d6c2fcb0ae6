"""OutboxWorker: at-least-once delivery with idempotent handler bookkeeping, backoff, dead
letters, leases, scheduled jobs and concurrent workers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.config import OutboxSettings
from clinicos.kernel.clock import FixedClock
from clinicos.kernel.events import DomainEvent
from clinicos.platform.db.models import (
    OUTBOX_DEAD,
    OUTBOX_DELIVERED,
    OUTBOX_PENDING,
    JobSchedule,
    OutboxDelivery,
    OutboxMessage,
)
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.observability.metrics import REGISTRY
from clinicos.platform.outbox.registry import (
    JobRegistry,
    OutboxEnvelope,
    ScheduledJob,
)
from clinicos.platform.outbox.worker import OutboxWorker, backoff_delay

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ORG_ID = "0f0e0d0c-0000-4000-8000-000000000001"
FAKE_PATIENT = "Maria Aparecida da Silva"


@dataclass(frozen=True, kw_only=True)
class ReferralSent(DomainEvent):
    event_type: ClassVar[str] = "tests.ReferralSent"
    referral_id: str


@dataclass(frozen=True, kw_only=True)
class NobodyCares(DomainEvent):
    event_type: ClassVar[str] = "tests.NobodyCares"
    thing_id: str


class PatientLookupError(Exception):
    """Stands in for a driver/domain error whose message quotes PHI."""


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def clock(container: Container) -> FixedClock:
    fixed = FixedClock(NOW)
    container.clock = fixed
    return fixed


@pytest.fixture
async def side_table(owner_engine: AsyncEngine) -> AsyncIterator[str]:
    """Where handlers and jobs write, as evidence of their effects. No unique constraint on
    event_id on purpose: a handler that runs twice leaves two rows."""
    async with owner_engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS test_side_effect"))
        await conn.execute(
            text(
                "CREATE TABLE test_side_effect ("
                " event_id VARCHAR(36) NOT NULL,"
                " handler VARCHAR(200) NOT NULL,"
                " worker VARCHAR(64))"
            )
        )
    try:
        yield "test_side_effect"
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS test_side_effect"))


def outbox_settings(container: Container, **overrides: Any) -> OutboxSettings:
    return container.settings.outbox.model_copy(update=overrides)


def make_worker(
    container: Container,
    clock: FixedClock,
    worker_id: str = "worker-a",
    *,
    jobs: JobRegistry | None = None,
    **overrides: Any,
) -> OutboxWorker:
    return OutboxWorker(
        sessions=container.sessions,
        handlers=container.handlers,
        jobs=jobs if jobs is not None else JobRegistry(),
        settings=outbox_settings(container, **overrides),
        clock=clock,
        worker_id=worker_id,
    )


async def publish(container: Container, *events: DomainEvent) -> None:
    async with container.uow() as uow:
        for event in events:
            uow.record(event)
        await uow.commit()


def referral(n: int = 1) -> ReferralSent:
    return ReferralSent(organization_id=ORG_ID, referral_id=f"ref-{n}", occurred_at=NOW)


async def messages(container: Container) -> list[OutboxMessage]:
    async with container.sessions() as session:
        result = await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))
        return list(result.scalars())


async def one_message(container: Container) -> OutboxMessage:
    [message] = await messages(container)
    return message


async def deliveries(container: Container) -> list[tuple[int, str]]:
    async with container.sessions() as session:
        result = await session.execute(
            select(OutboxDelivery.message_seq, OutboxDelivery.handler).order_by(
                OutboxDelivery.message_seq, OutboxDelivery.handler
            )
        )
        return [(seq, handler) for seq, handler in result]


async def side_effects(container: Container) -> list[tuple[str, str]]:
    async with container.sessions() as session:
        result = await session.execute(
            text("SELECT event_id, handler FROM test_side_effect ORDER BY event_id, handler")
        )
        return [(event_id, handler) for event_id, handler in result]


async def write_side_effect(uow: SqlUnitOfWork, event_id: str, handler: str) -> None:
    await uow.session.execute(
        text("INSERT INTO test_side_effect (event_id, handler) VALUES (:e, :h)"),
        {"e": event_id, "h": handler},
    )


async def job_schedule(container: Container, name: str) -> JobSchedule:
    async with container.sessions() as session:
        row = await session.get(JobSchedule, name)
        assert row is not None
        return row


def dead_lettered_total() -> float:
    return REGISTRY.get_sample_value("clinicos_outbox_dead_lettered_total") or 0.0


def handler_runs(handler: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "clinicos_outbox_handler_runs_total", {"handler": handler, "outcome": outcome}
        )
        or 0.0
    )


HandlerFn = Callable[[OutboxEnvelope, SqlUnitOfWork], Awaitable[None]]


def recording_handler(name: str, calls: Counter[str]) -> HandlerFn:
    """Counts calls per event id and writes a side-effect row in the handler's transaction."""

    async def handle(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
        calls[envelope.event_id] += 1
        await write_side_effect(uow, envelope.event_id, name)

    return handle


def failing_handler(name: str, calls: Counter[str], *, failures: int = 10**6) -> HandlerFn:
    """Writes its side effect, then raises (PHI in the message) for its first `failures` calls."""

    async def handle(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
        calls[envelope.event_id] += 1
        await write_side_effect(uow, envelope.event_id, name)
        if calls[envelope.event_id] <= failures:
            raise PatientLookupError(f"no chart for patient {FAKE_PATIENT}")

    return handle


# -- backoff_delay (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "expected_seconds"),
    [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (8, 256.0), (9, 300.0), (20, 300.0)],
)
def test_backoff_delay_when_attempts_grow_doubles_until_capped(
    attempts: int, expected_seconds: float
) -> None:
    # Arrange
    settings = OutboxSettings(backoff_base_seconds=2.0, backoff_max_seconds=300.0)

    # Act
    delay = backoff_delay(attempts, settings)

    # Assert
    assert delay == timedelta(seconds=expected_seconds)


def test_backoff_delay_when_attempts_huge_returns_cap_without_overflow() -> None:
    # Arrange: max_attempts has no upper bound, so the exponent can get very large
    settings = OutboxSettings(backoff_base_seconds=2.0, backoff_max_seconds=900.0)

    # Act
    delay = backoff_delay(5000, settings)

    # Assert
    assert delay == timedelta(seconds=900)


# -- delivery ---------------------------------------------------------------------------------


async def test_drain_when_handler_registered_passes_envelope_and_commits_writes_with_bookkeeping(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    seen: list[OutboxEnvelope] = []

    async def handle(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
        seen.append(envelope)
        await write_side_effect(uow, envelope.event_id, "notify")

    container.handlers.register(ReferralSent.event_type, "notify", handle)
    event = referral()
    await publish(container, event)
    worker = make_worker(container, clock)

    # Act
    result = await worker.drain_until_empty()

    # Assert
    assert (result.claimed, result.delivered, result.retried, result.dead) == (1, 1, 0, 0)
    [envelope] = seen
    message = await one_message(container)
    assert envelope == OutboxEnvelope(
        seq=message.seq,
        event_id=event.event_id,
        event_type="tests.ReferralSent",
        organization_id=ORG_ID,
        occurred_at=NOW,
        payload={"referral_id": "ref-1"},
        attempts=0,
    )
    assert await side_effects(container) == [(event.event_id, "notify")]
    assert await deliveries(container) == [(message.seq, "notify")]
    assert message.status == OUTBOX_DELIVERED
    assert message.delivered_at == clock.now()
    assert message.claimed_by is None
    assert message.claimed_until is None


async def test_drain_when_event_has_no_handlers_marks_it_delivered(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    await publish(container, NobodyCares(thing_id="t-1"))
    worker = make_worker(container, clock)

    # Act
    result = await worker.drain_until_empty()

    # Assert
    assert result.delivered == 1
    message = await one_message(container)
    assert message.status == OUTBOX_DELIVERED
    assert await deliveries(container) == []


async def test_drain_when_message_not_yet_available_leaves_it_pending(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    calls: Counter[str] = Counter()
    container.handlers.register(ReferralSent.event_type, "notify", recording_handler("n", calls))
    await publish(container, referral())
    async with container.sessions() as session, session.begin():
        await session.execute(
            update(OutboxMessage).values(available_at=clock.now() + timedelta(seconds=1))
        )
    worker = make_worker(container, clock)

    # Act
    result = await worker.drain_until_empty()

    # Assert
    assert result.claimed == 0
    assert calls == Counter()
    assert (await one_message(container)).status == OUTBOX_PENDING


async def test_drain_when_redelivered_after_crash_before_marking_delivered_skips_handler(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange: the handler committed with its bookkeeping, then the process "died" before the
    # message was marked delivered -- simulated by putting the message back by SQL.
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "notify", recording_handler("notify", calls)
    )
    event = referral()
    await publish(container, event)
    await make_worker(container, clock).drain_until_empty()
    async with container.sessions() as session, session.begin():
        await session.execute(
            update(OutboxMessage).values(
                status=OUTBOX_PENDING, delivered_at=None, claimed_by=None, claimed_until=None
            )
        )
    skipped_before = handler_runs("notify", "skipped_duplicate")

    # Act
    result = await make_worker(container, clock, "worker-b").drain_until_empty()

    # Assert
    assert result.delivered == 1
    assert calls[event.event_id] == 1
    assert await side_effects(container) == [(event.event_id, "notify")]
    message = await one_message(container)
    assert await deliveries(container) == [(message.seq, "notify")]
    assert message.status == OUTBOX_DELIVERED
    assert handler_runs("notify", "skipped_duplicate") == skipped_before + 1


async def test_drain_when_worker_crashed_after_handler_commit_next_worker_delivers_once(
    container: Container,
    clock: FixedClock,
    side_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: worker A commits the handler, then crashes before marking the message delivered
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "notify", recording_handler("notify", calls)
    )
    event = referral()
    await publish(container, event)
    crashing = make_worker(container, clock, "worker-a", lease_seconds=30)

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionError("process killed")

    monkeypatch.setattr(crashing, "_finish", crash)
    with pytest.raises(ConnectionError):
        await crashing.drain_once()
    survivor = make_worker(container, clock, "worker-b", lease_seconds=30)
    still_leased = await survivor.drain_until_empty()
    clock.advance(timedelta(seconds=31))

    # Act
    result = await survivor.drain_until_empty()

    # Assert
    assert still_leased.claimed == 0
    assert result.delivered == 1
    assert calls[event.event_id] == 1
    assert await side_effects(container) == [(event.event_id, "notify")]
    assert (await one_message(container)).status == OUTBOX_DELIVERED


async def test_drain_when_handler_fails_counts_attempt_backs_off_and_rolls_back_its_writes(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "chart_sync", failing_handler("chart_sync", calls)
    )
    await publish(container, referral())
    worker = make_worker(container, clock, backoff_base_seconds=2.0, backoff_max_seconds=900.0)

    # Act
    result = await worker.drain_until_empty()

    # Assert
    assert (result.claimed, result.delivered, result.retried, result.dead) == (1, 0, 1, 0)
    message = await one_message(container)
    assert message.status == OUTBOX_PENDING
    assert message.attempts == 1
    assert message.available_at == clock.now() + backoff_delay(1, worker.settings)
    assert message.available_at == clock.now() + timedelta(seconds=2)
    assert message.claimed_by is None
    assert message.claimed_until is None
    assert message.delivered_at is None
    assert await side_effects(container) == []
    assert await deliveries(container) == []


async def test_drain_when_handler_fails_stores_handler_and_exception_class_but_no_phi(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    container.handlers.register(
        ReferralSent.event_type, "chart_sync", failing_handler("chart_sync", Counter())
    )
    await publish(container, referral())

    # Act
    await make_worker(container, clock).drain_until_empty()

    # Assert
    message = await one_message(container)
    assert message.last_error == f"chart_sync: {__name__}.PatientLookupError"
    assert FAKE_PATIENT not in (message.last_error or "")
    assert "Maria" not in (message.last_error or "")


async def test_drain_when_retried_before_backoff_elapses_does_not_claim_then_retries_after(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "chart_sync", failing_handler("chart_sync", calls)
    )
    event = referral()
    await publish(container, event)
    worker = make_worker(container, clock, backoff_base_seconds=2.0, backoff_max_seconds=900.0)
    await worker.drain_until_empty()

    # Act
    clock.advance(timedelta(seconds=1))
    too_early = await worker.drain_until_empty()
    clock.advance(timedelta(seconds=1))
    on_time = await worker.drain_until_empty()

    # Assert
    assert too_early.claimed == 0
    assert on_time.retried == 1
    assert calls[event.event_id] == 2
    message = await one_message(container)
    assert message.attempts == 2
    assert message.available_at == clock.now() + timedelta(seconds=4)


async def test_drain_when_max_attempts_reached_dead_letters_and_counts_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "chart_sync", failing_handler("chart_sync", calls)
    )
    event = referral()
    await publish(container, event)
    worker = make_worker(
        container, clock, max_attempts=3, backoff_base_seconds=1.0, backoff_max_seconds=10.0
    )
    dead_before = dead_lettered_total()
    outcomes = []

    # Act
    for _ in range(5):
        outcomes.append(await worker.drain_until_empty())
        clock.advance(timedelta(seconds=10))

    # Assert
    assert [(r.retried, r.dead) for r in outcomes] == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    assert calls[event.event_id] == 3
    message = await one_message(container)
    assert message.status == OUTBOX_DEAD
    assert message.attempts == 3
    assert message.last_error == f"chart_sync: {__name__}.PatientLookupError"
    assert message.claimed_by is None
    assert dead_lettered_total() == dead_before + 1


async def test_drain_when_two_handlers_and_second_fails_does_not_rerun_first_on_retry(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    ok_calls: Counter[str] = Counter()
    flaky_calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "audit", recording_handler("audit", ok_calls)
    )
    container.handlers.register(
        ReferralSent.event_type,
        "chart_sync",
        failing_handler("chart_sync", flaky_calls, failures=1),
    )
    event = referral()
    await publish(container, event)
    worker = make_worker(container, clock, backoff_base_seconds=2.0)
    first = await worker.drain_until_empty()
    seq = (await one_message(container)).seq
    after_failure = await deliveries(container)
    clock.advance(timedelta(seconds=2))

    # Act
    second = await worker.drain_until_empty()

    # Assert
    assert (first.retried, second.delivered) == (1, 1)
    assert after_failure == [(seq, "audit")]
    assert ok_calls[event.event_id] == 1
    assert flaky_calls[event.event_id] == 2
    assert await deliveries(container) == [(seq, "audit"), (seq, "chart_sync")]
    assert await side_effects(container) == [
        (event.event_id, "audit"),
        (event.event_id, "chart_sync"),
    ]
    assert (await one_message(container)).status == OUTBOX_DELIVERED


async def test_drain_when_handler_write_violates_constraint_records_failure_not_delivery(
    container: Container, clock: FixedClock
) -> None:
    # Arrange: the handler's own write (flushed at commit) hits a primary-key violation; that is
    # the handler failing, not another worker having delivered the message already.
    async with container.sessions() as session, session.begin():
        session.add(JobSchedule(name="taken", next_run_at=NOW, run_count=0))

    async def handle(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
        uow.session.add(JobSchedule(name="taken", next_run_at=NOW, run_count=0))

    container.handlers.register(ReferralSent.event_type, "scheduler", handle)
    await publish(container, referral())

    # Act
    result = await make_worker(container, clock).drain_until_empty()

    # Assert
    assert (result.delivered, result.retried) == (0, 1)
    message = await one_message(container)
    assert message.status == OUTBOX_PENDING
    assert message.attempts == 1
    assert message.last_error == f"scheduler: {IntegrityError.__module__}.IntegrityError"
    assert await deliveries(container) == []


# -- leases -----------------------------------------------------------------------------------


async def test_claim_batch_when_lease_unexpired_other_worker_gets_nothing(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    await publish(container, referral())
    owner = make_worker(container, clock, "worker-a", lease_seconds=60)
    other = make_worker(container, clock, "worker-b", lease_seconds=60)
    await owner.claim_batch()
    clock.advance(timedelta(seconds=59))

    # Act
    claimed = await other.claim_batch()

    # Assert
    assert claimed == []
    message = await one_message(container)
    assert message.claimed_by == "worker-a"
    assert message.claimed_until == NOW + timedelta(seconds=60)


async def test_claim_batch_when_lease_expired_other_worker_reclaims(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    event = referral()
    await publish(container, event)
    owner = make_worker(container, clock, "worker-a", lease_seconds=60)
    other = make_worker(container, clock, "worker-b", lease_seconds=60)
    await owner.claim_batch()
    clock.advance(timedelta(seconds=61))

    # Act
    claimed = await other.claim_batch()

    # Assert
    assert [e.event_id for e in claimed] == [event.event_id]
    message = await one_message(container)
    assert message.claimed_by == "worker-b"
    assert message.claimed_until == clock.now() + timedelta(seconds=60)


async def test_claim_batch_when_more_due_than_batch_size_leases_oldest_first(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    events = [referral(n) for n in range(5)]
    await publish(container, *events)
    worker = make_worker(container, clock, batch_size=3)

    # Act
    claimed = await worker.claim_batch()

    # Assert
    assert [e.event_id for e in claimed] == [e.event_id for e in events[:3]]
    leased = [m.claimed_by for m in await messages(container)]
    assert leased == ["worker-a", "worker-a", "worker-a", None, None]


async def test_process_when_lease_lost_midway_handler_still_runs_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange: A leases the message, stalls past its lease, B re-claims; both then process it
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "notify", recording_handler("notify", calls)
    )
    event = referral()
    await publish(container, event)
    slow = make_worker(container, clock, "worker-a", lease_seconds=60)
    fast = make_worker(container, clock, "worker-b", lease_seconds=60)
    [slow_envelope] = await slow.claim_batch()
    clock.advance(timedelta(seconds=61))
    [fast_envelope] = await fast.claim_batch()

    # Act
    await slow._process(slow_envelope)
    await fast._process(fast_envelope)

    # Assert
    assert calls[event.event_id] == 1
    assert await side_effects(container) == [(event.event_id, "notify")]
    assert (await one_message(container)).status == OUTBOX_DELIVERED


async def test_process_when_lease_lost_on_last_attempt_dead_letters_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange: both the stalled owner and the re-claimer fail the final attempt
    container.handlers.register(
        ReferralSent.event_type, "chart_sync", failing_handler("chart_sync", Counter())
    )
    await publish(container, referral())
    async with container.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).values(attempts=2))
    slow = make_worker(container, clock, "worker-a", lease_seconds=60, max_attempts=3)
    fast = make_worker(container, clock, "worker-b", lease_seconds=60, max_attempts=3)
    [slow_envelope] = await slow.claim_batch()
    clock.advance(timedelta(seconds=61))
    [fast_envelope] = await fast.claim_batch()
    dead_before = dead_lettered_total()

    # Act
    await fast._process(fast_envelope)
    await slow._process(slow_envelope)

    # Assert
    message = await one_message(container)
    assert message.status == OUTBOX_DEAD
    assert message.attempts == 3
    assert dead_lettered_total() == dead_before + 1


# -- scheduled jobs ---------------------------------------------------------------------------


def counting_job(name: str, runs: list[datetime], *, fail_first: int = 0) -> ScheduledJob:
    async def run(uow: SqlUnitOfWork) -> None:
        runs.append(uow.clock.now())
        await write_side_effect(uow, f"job-run-{len(runs)}", name)
        if len(runs) <= fail_first:
            raise RuntimeError(f"job failed for patient {FAKE_PATIENT}")

    return ScheduledJob(name=name, interval=timedelta(hours=1), run=run)


async def test_run_due_jobs_when_interval_elapses_runs_job_once_per_slot(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    runs: list[datetime] = []
    jobs = JobRegistry()
    jobs.register(counting_job("tests.hourly", runs))
    worker = make_worker(container, clock, jobs=jobs)

    # Act
    ran = [await worker.run_due_jobs()]
    ran.append(await worker.run_due_jobs())
    clock.advance(timedelta(minutes=59))
    ran.append(await worker.run_due_jobs())
    clock.advance(timedelta(minutes=1))
    ran.append(await worker.run_due_jobs())
    ran.append(await worker.run_due_jobs())

    # Assert
    assert ran == [["tests.hourly"], [], [], ["tests.hourly"], []]
    assert runs == [NOW, NOW + timedelta(hours=1)]
    schedule = await job_schedule(container, "tests.hourly")
    assert schedule.run_count == 2
    assert schedule.last_outcome == "ok"
    assert schedule.last_started_at == clock.now()
    assert schedule.last_finished_at == clock.now()
    assert schedule.next_run_at == clock.now() + timedelta(hours=1)
    assert len(await side_effects(container)) == 2


async def test_run_due_jobs_when_job_fails_records_failed_and_retries_at_next_slot(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    runs: list[datetime] = []
    jobs = JobRegistry()
    jobs.register(counting_job("tests.flaky", runs, fail_first=1))
    worker = make_worker(container, clock, jobs=jobs)

    # Act
    first = await worker.run_due_jobs()
    after_failure = await job_schedule(container, "tests.flaky")
    failed_writes = await side_effects(container)
    same_slot = await worker.run_due_jobs()
    clock.advance(timedelta(hours=1))
    next_slot = await worker.run_due_jobs()

    # Assert
    assert (first, same_slot, next_slot) == (["tests.flaky"], [], ["tests.flaky"])
    assert after_failure.last_outcome == "failed"
    assert after_failure.next_run_at == NOW + timedelta(hours=1)
    assert failed_writes == []
    assert (await job_schedule(container, "tests.flaky")).last_outcome == "ok"
    assert await side_effects(container) == [("job-run-2", "tests.flaky")]


async def test_run_due_jobs_when_two_workers_race_for_one_slot_runs_job_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    # Arrange
    runs: list[datetime] = []
    jobs = JobRegistry()
    jobs.register(counting_job("tests.hourly", runs))
    workers = [make_worker(container, clock, f"worker-{i}", jobs=jobs) for i in range(3)]

    # Act
    ran = await asyncio.gather(*(w.run_due_jobs() for w in workers))

    # Assert
    assert sorted(ran) == [[], [], ["tests.hourly"]]
    assert runs == [NOW]
    assert (await job_schedule(container, "tests.hourly")).run_count == 1


async def test_purge_delivered_job_when_run_deletes_only_delivered_older_than_retention(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    retention = timedelta(days=container.settings.outbox.retention_days)
    cases = {
        "old-delivered": (OUTBOX_DELIVERED, NOW - retention - timedelta(seconds=1)),
        "at-cutoff-delivered": (OUTBOX_DELIVERED, NOW - retention),
        "recent-delivered": (OUTBOX_DELIVERED, NOW - timedelta(days=1)),
        "old-pending": (OUTBOX_PENDING, None),
        "old-dead": (OUTBOX_DEAD, None),
    }
    await publish(container, *(ReferralSent(referral_id=key) for key in cases))
    async with container.sessions() as session, session.begin():
        for message in (await session.execute(select(OutboxMessage))).scalars():
            status, delivered_at = cases[message.payload["referral_id"]]
            message.status = status
            message.delivered_at = delivered_at
            message.created_at = NOW - retention - timedelta(days=5)
            session.add(OutboxDelivery(message_seq=message.seq, handler="h", delivered_at=NOW))
    worker = container.worker("worker-a")

    # Act
    ran = await worker.run_due_jobs()

    # Assert
    assert ran == ["outbox.purge_delivered", "governance.retention"]
    remaining = {m.payload["referral_id"] for m in await messages(container)}
    assert remaining == {"at-cutoff-delivered", "recent-delivered", "old-pending", "old-dead"}
    assert len(await deliveries(container)) == 4  # the purged message's bookkeeping went too
    assert (await job_schedule(container, "outbox.purge_delivered")).last_outcome == "ok"
    assert (await job_schedule(container, "governance.retention")).last_outcome == "ok"


# -- run loop ---------------------------------------------------------------------------------


async def test_run_forever_when_stop_set_delivers_and_returns(
    container: Container, clock: FixedClock
) -> None:
    # Arrange
    stop = asyncio.Event()
    seen: list[str] = []

    async def handle(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
        seen.append(envelope.event_id)
        stop.set()

    container.handlers.register(ReferralSent.event_type, "notify", handle)
    event = referral()
    await publish(container, event)
    worker = make_worker(container, clock, poll_interval_seconds=0.01)

    # Act
    await asyncio.wait_for(worker.run_forever(stop), timeout=10)

    # Assert
    assert seen == [event.event_id]
    assert (await one_message(container)).status == OUTBOX_DELIVERED


# -- concurrency ------------------------------------------------------------------------------


async def drain_concurrently(
    container: Container, clock: FixedClock, *, events: int, workers: int
) -> tuple[list[str], Counter[str], int]:
    """Publish `events` events, drain with `workers` concurrent workers; return the event ids,
    handler calls per event id and the total number of claims."""
    calls: Counter[str] = Counter()
    container.handlers.register(
        ReferralSent.event_type, "notify", recording_handler("notify", calls)
    )
    published = [referral(n) for n in range(events)]
    await publish(container, *published)
    pool = [make_worker(container, clock, f"worker-{i}", batch_size=7) for i in range(workers)]
    results = await asyncio.gather(*(w.drain_until_empty() for w in pool))
    return [e.event_id for e in published], calls, sum(r.claimed for r in results)


async def assert_each_delivered_once(
    container: Container, event_ids: list[str], calls: Counter[str], claims: int
) -> None:
    stored = await messages(container)
    assert {m.status for m in stored} == {OUTBOX_DELIVERED}
    assert calls == Counter(dict.fromkeys(event_ids, 1))
    assert claims == len(event_ids)
    assert len(await deliveries(container)) == len(event_ids)
    effects = await side_effects(container)
    assert sorted(e for e, _ in effects) == sorted(event_ids)
    async with container.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert total == len(event_ids)


async def test_drain_when_four_workers_run_concurrently_on_postgres_delivers_each_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row locks with SKIP LOCKED are PostgreSQL's; see the SQLite variant")
    # Arrange / Act
    event_ids, calls, claims = await drain_concurrently(container, clock, events=200, workers=4)

    # Assert
    await assert_each_delivered_once(container, event_ids, calls, claims)


async def test_drain_when_two_workers_run_concurrently_on_sqlite_delivers_each_once(
    container: Container, clock: FixedClock, side_table: str
) -> None:
    if container.engine.dialect.name != "sqlite":
        pytest.skip("SQLite variant; PostgreSQL has its own four-worker test")
    # Arrange / Act
    event_ids, calls, claims = await drain_concurrently(container, clock, events=60, workers=2)

    # Assert
    await assert_each_delivered_once(container, event_ids, calls, claims)
