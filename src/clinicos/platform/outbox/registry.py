"""Where event handlers and scheduled jobs are registered (filled in by the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clinicos.platform.db.uow import SqlUnitOfWork


@dataclass(frozen=True)
class OutboxEnvelope:
    """A stored event as a handler sees it."""

    seq: int
    event_id: str
    event_type: str
    organization_id: str | None
    occurred_at: datetime
    payload: dict[str, Any]
    attempts: int


# A handler runs inside an open unit of work; the worker commits it together with the
# bookkeeping row that marks (message, handler) done, so a redelivery is skipped.
Handler = Callable[[OutboxEnvelope, SqlUnitOfWork], Awaitable[None]]
JobFunc = Callable[[SqlUnitOfWork], Awaitable[None]]


@dataclass
class HandlerRegistry:
    _by_type: dict[str, dict[str, Handler]] = field(default_factory=dict)

    def register(self, event_type: str, name: str, handler: Handler) -> None:
        handlers = self._by_type.setdefault(event_type, {})
        if name in handlers:
            raise ValueError(f"handler {name!r} already registered for {event_type!r}")
        handlers[name] = handler

    def handlers_for(self, event_type: str) -> dict[str, Handler]:
        return dict(self._by_type.get(event_type, {}))


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    interval: timedelta
    run: JobFunc


@dataclass
class JobRegistry:
    _jobs: dict[str, ScheduledJob] = field(default_factory=dict)

    def register(self, job: ScheduledJob) -> None:
        if job.name in self._jobs:
            raise ValueError(f"job {job.name!r} already registered")
        if job.interval <= timedelta(0):
            raise ValueError("job interval must be positive")
        self._jobs[job.name] = job

    def all(self) -> list[ScheduledJob]:
        return list(self._jobs.values())
