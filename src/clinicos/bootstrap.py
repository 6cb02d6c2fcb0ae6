"""Composition root: engine, unit-of-work factory, handler and job registries, from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clinicos.cds import PrescribingGate
from clinicos.cds import models as cds_models
from clinicos.cds.hooks import models as cds_hooks_models
from clinicos.config import Settings
from clinicos.governance import models as governance_models
from clinicos.governance.handlers import register_governance_handlers
from clinicos.governance.retention import retention_job
from clinicos.identity import models as identity_models
from clinicos.identity.runtime import IdentityRuntime, build_identity_runtime
from clinicos.kernel.clock import Clock, SystemClock
from clinicos.platform.db import models as platform_models
from clinicos.platform.db.base import Base
from clinicos.platform.db.engine import create_engine_from_settings, session_factory
from clinicos.platform.db.schema import SchemaGate
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.mail import Mailer, build_mailer
from clinicos.platform.outbox.registry import HandlerRegistry, JobRegistry, ScheduledJob
from clinicos.platform.outbox.worker import OutboxWorker, purge_delivered_outbox
from clinicos.platform.phi import PhiKeyring
from clinicos.platform.ratelimit import RateLimiter, build_rate_limiter
from clinicos.records import PrescriptionCheck
from clinicos.records import models as records_models


def all_models_metadata() -> MetaData:
    """Import every module that declares tables, so Alembic and tests see the whole schema."""
    # every context's `models` module is listed here
    _ = (
        platform_models,
        identity_models,
        governance_models,
        cds_models,
        cds_hooks_models,
        records_models,
    )
    return Base.metadata


def register_handlers(registry: HandlerRegistry) -> None:
    """Every context's outbox handlers are registered here, in one place."""
    register_governance_handlers(registry)


def register_jobs(
    registry: JobRegistry, settings: Settings, uows: Callable[[str | None], SqlUnitOfWork]
) -> None:
    """Every scheduled job is registered here, in one place."""
    retention = timedelta(days=settings.outbox.retention_days)

    async def purge(uow: SqlUnitOfWork) -> None:
        await purge_delivered_outbox(uow, retention=retention)

    async def data_retention(uow: SqlUnitOfWork) -> None:
        # Many transactions (one per batch), so it opens its own units of work.
        _ = uow
        await retention_job(uows, settings.retention)

    registry.register(
        ScheduledJob(name="outbox.purge_delivered", interval=timedelta(hours=1), run=purge)
    )
    registry.register(
        ScheduledJob(name="governance.retention", interval=timedelta(days=1), run=data_retention)
    )


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    identity: IdentityRuntime
    rate_limiter: RateLimiter
    phi: PhiKeyring
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)
    jobs: JobRegistry = field(default_factory=JobRegistry)
    schema: SchemaGate = field(init=False)
    # What issuing a prescription passes (records' seam): decision support's prescribing gate.
    prescription_check: PrescriptionCheck = field(init=False)

    def __post_init__(self) -> None:
        # Refreshed at start-up and by /ready; gates every non-operational request.
        self.schema = SchemaGate(self.engine)
        self.prescription_check = PrescribingGate(
            phi=self.phi, production=self.settings.env.value == "production"
        )

    def uow(self, organization_id: str | None = None) -> SqlUnitOfWork:
        """A unit of work; with ``organization_id`` its transaction is scoped to that tenant."""
        return SqlUnitOfWork(self.sessions, clock=self.clock, organization_id=organization_id)

    def worker(self, worker_id: str | None = None) -> OutboxWorker:
        return OutboxWorker(
            sessions=self.sessions,
            handlers=self.handlers,
            jobs=self.jobs,
            settings=self.settings.outbox,
            clock=self.clock,
            worker_id=worker_id,
        )

    async def dispose(self) -> None:
        await self.rate_limiter.aclose()
        await self.engine.dispose()


def build_container(
    settings: Settings, *, clock: Clock | None = None, mailer: Mailer | None = None
) -> Container:
    engine = create_engine_from_settings(settings)
    sessions = session_factory(engine)
    clock = clock or SystemClock()
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        clock=clock,
        identity=build_identity_runtime(
            settings, mailer=mailer or build_mailer(settings), clock=clock, sessions=sessions
        ),
        rate_limiter=build_rate_limiter(settings),
        phi=PhiKeyring.from_settings(settings),
    )
    register_handlers(container.handlers)
    register_jobs(container.jobs, settings, container.uow)
    all_models_metadata()
    return container
