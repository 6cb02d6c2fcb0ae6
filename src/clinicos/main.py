"""create_app(): routers, middleware, error handlers and lifespan. No logic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from clinicos.bootstrap import Container, build_container
from clinicos.cds.hooks.routes import router as cds_hooks_router
from clinicos.cds.override_routes import router as cds_override_router
from clinicos.cds.routes import router as cds_router
from clinicos.config import Settings, load_settings
from clinicos.console import install as install_console
from clinicos.governance.dsr_routes import router as governance_dsr_router
from clinicos.governance.routes import router as governance_router
from clinicos.identity.keyring import ensure_active_key
from clinicos.identity.routes import router as identity_router
from clinicos.interop.research_routes import router as interop_research_router
from clinicos.interop.routes import install as install_fhir
from clinicos.platform.db.schema import SchemaStatus
from clinicos.platform.http.middleware import install_middleware
from clinicos.platform.http.openapi import install_error_documentation
from clinicos.platform.http.ops_routes import router as ops_router
from clinicos.platform.http.problems import install_problem_handlers
from clinicos.platform.observability.logging import configure_logging, get_logger
from clinicos.platform.observability.metrics import SCHEMA_CURRENT
from clinicos.platform.observability.tracing import configure_tracing
from clinicos.records.clinical_routes import router as records_clinical_router
from clinicos.records.note_routes import router as records_note_router
from clinicos.records.routes import router as records_router

log = get_logger("clinicos.app")


async def ensure_signing_key(container: Container) -> None:
    """First start of an installation: create the token-signing key before any sign-in."""
    async with container.uow() as uow:
        await ensure_active_key(uow.session, container.identity.signing_box, uow.clock.now())
        await uow.commit()


async def schema_usable(container: Container) -> bool:
    if container.schema.status not in (SchemaStatus.current, SchemaStatus.ahead):
        with contextlib.suppress(Exception):  # unreachable: try again next round
            await container.schema.refresh()
    return container.schema.status in (SchemaStatus.current, SchemaStatus.ahead)


async def refresh_schema_state(container: Container) -> SchemaStatus:
    try:
        status = await container.schema.refresh()
    except Exception as exc:  # database down at start-up: requests answer 503 until it is back
        log.error("schema_state_unavailable", exc_info=exc)
        return SchemaStatus.unknown
    state = container.schema.last_state
    if status is SchemaStatus.behind and state is not None:
        log.error(
            "schema_not_current",
            current=list(state.current),
            head=list(state.head),
            hint="run `clinicos db upgrade`",
        )
    SCHEMA_CURRENT.set(0 if status is SchemaStatus.behind else 1)
    return status


def create_app(
    settings: Settings | None = None,
    *,
    container: Container | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    settings = settings or (container.settings if container else load_settings())
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    container = container or build_container(settings)
    tracing = configure_tracing(
        settings.observability.otlp_endpoint, settings.observability.service_name
    )
    in_process_worker = settings.outbox.run_in_process if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        schema_status = await refresh_schema_state(container)
        stop = asyncio.Event()
        worker_task = None
        if schema_status is SchemaStatus.current:
            await ensure_signing_key(container)
        if in_process_worker:
            # Handlers may need this release's tables: the worker idles until the schema is
            # current (or ahead), e.g. until someone runs `clinicos db upgrade`.
            worker_task = asyncio.create_task(
                container.worker().run_forever(stop, ready=lambda: schema_usable(container))
            )
        log.info("app_started", environment=settings.env.value, schema=schema_status.value)
        try:
            yield
        finally:
            stop.set()
            if worker_task is not None:
                await worker_task
            tracing.shutdown()
            await container.dispose()

    app = FastAPI(
        title="clinicos",
        version="0.1.0",
        debug=False,  # never let Starlette render tracebacks to clients
        lifespan=lifespan,
    )
    app.state.container = container
    install_problem_handlers(app)
    install_middleware(
        app,
        tracing=tracing,
        max_body_bytes=settings.http.max_body_bytes,
        schema_gate=container.schema,
        hsts=settings.http.behind_tls,
    )
    app.include_router(ops_router)
    app.include_router(identity_router)
    app.include_router(governance_router)
    app.include_router(governance_dsr_router)
    app.include_router(cds_router)
    app.include_router(cds_override_router)
    app.include_router(cds_hooks_router)
    app.include_router(records_router)
    app.include_router(records_clinical_router)
    install_fhir(app)
    app.include_router(interop_research_router)
    app.include_router(records_note_router)
    install_console(app)
    install_error_documentation(app)
    return app
