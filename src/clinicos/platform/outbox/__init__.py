"""Transactional outbox: handler registry, the draining worker, scheduled jobs."""

from clinicos.platform.outbox.registry import (
    HandlerRegistry,
    JobRegistry,
    OutboxEnvelope,
    ScheduledJob,
)

__all__ = ["HandlerRegistry", "JobRegistry", "OutboxEnvelope", "ScheduledJob"]
