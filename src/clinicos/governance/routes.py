"""Governance's HTTP API: the organization's audit trail (read, verify), patients' consent
(record, read) and feature flags (read, change)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from clinicos.governance.audit import list_audit_events, record_audit, verify_audit_chain
from clinicos.governance.consent import consent_overview, record_consent
from clinicos.governance.flags import list_flags, set_flag
from clinicos.governance.kpi import KpiReport, kpi_report
from clinicos.governance.retention import list_retention_runs
from clinicos.governance.schemas import (
    AuditEventPage,
    AuditEventRead,
    ChainVerification,
    ConsentCreate,
    ConsentOverview,
    ConsentRead,
    ConsentStateRead,
    FlagRead,
    FlagUpdate,
    KpiRead,
    RetentionRunRead,
)
from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor
from clinicos.platform.http.strict import IsoDatetime
from clinicos.records import require_patient

router = APIRouter()
audit_router = APIRouter(prefix="/api/v1/audit", tags=["governance"])
consent_router = APIRouter(prefix="/api/v1/patients/{patient_id}/consents", tags=["governance"])
flags_router = APIRouter(prefix="/api/v1/flags", tags=["governance"])
kpi_router = APIRouter(prefix="/api/v1", tags=["governance"])
retention_router = APIRouter(prefix="/api/v1/retention", tags=["governance"])

CODE = r"^[a-z0-9_.:-]{1,100}$"
IDENTIFIER = r"^[A-Za-z0-9_.:-]{1,200}$"


@audit_router.get("", response_model=AuditEventPage, summary="Audit events, newest first")
async def list_events(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.audit_read))],
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    action: Annotated[str | None, Query(pattern=CODE)] = None,
    target_type: Annotated[str | None, Query(pattern=CODE)] = None,
    target_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    # Aware datetimes only: a bare "2026-01-01T00:00" would be ambiguous across clinics' zones.
    occurred_from: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[IsoDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # le: sequence numbers are 64-bit integers in both databases (past it, the driver overflows).
    before_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> AuditEventPage:
    async with request.app.state.container.uow(actor.organization_id) as uow:
        rows = await list_audit_events(
            uow.session,
            organization_id=actor.organization_id,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            occurred_from=occurred_from,
            occurred_to=occurred_to,
            limit=limit,
            before_seq=before_seq,
        )
        # Reading the audit trail is itself audited.
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action="audit.read",
            target_type="audit_trail",
            target_id=actor.organization_id,
            purpose="audit",
            outcome="success",
            request_id=actor.request_id,
        )
        await uow.commit()
    items = [AuditEventRead.model_validate(r) for r in rows]
    return AuditEventPage(
        items=items, next_before_seq=items[-1].seq if len(items) == limit else None
    )


@audit_router.get(
    "/verify",
    response_model=ChainVerification,
    summary="Re-hash the organization's chain and report the first broken row",
)
async def verify(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.audit_verify))]
) -> ChainVerification:
    async with request.app.state.container.uow(actor.organization_id) as uow:
        report = await verify_audit_chain(uow, organization_id=actor.organization_id)
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action="audit.verify",
            target_type="audit_trail",
            target_id=actor.organization_id,
            purpose="audit",
            outcome="success" if report.ok else "failure",
            request_id=actor.request_id,
        )
        await uow.commit()
    return ChainVerification(
        ok=report.ok,
        rows_checked=report.rows_checked,
        first_bad_seq=report.first_bad_seq,
        first_bad_id=report.first_bad_id,
        reason=report.reason,
        purged_through_seq=report.purged_through_seq,
    )


# -- consent -------------------------------------------------------------------------------------

PATIENT_ID = Path(pattern=r"^[A-Za-z0-9-]{1,64}$")


@consent_router.post(
    "", response_model=ConsentRead, status_code=201, summary="Record a consent decision"
)
async def record_patient_consent(
    patient_id: Annotated[str, PATIENT_ID],
    body: ConsentCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.consent_write))],
) -> ConsentRead:
    view = await record_consent(
        uows=request.app.state.container.uow,
        actor=actor,
        patient_check=require_patient,
        patient_id=patient_id,
        purpose=body.purpose,
        decision=body.decision,
        method=body.method,
        policy_version=body.policy_version,
        given_at=body.given_at,
    )
    return ConsentRead.model_validate(view)


@consent_router.get(
    "", response_model=ConsentOverview, summary="Current consent per purpose and its history"
)
async def read_patient_consents(
    patient_id: Annotated[str, PATIENT_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.consent_read))],
) -> ConsentOverview:
    states, history = await consent_overview(
        uows=request.app.state.container.uow,
        actor=actor,
        patient_check=require_patient,
        patient_id=patient_id,
    )
    return ConsentOverview(
        patient_id=patient_id,
        current=[
            ConsentStateRead(
                purpose=s.purpose,
                allowed=s.allowed,
                decision=s.decision,
                latest=ConsentRead.model_validate(s.latest) if s.latest else None,
            )
            for s in states
        ],
        history=[ConsentRead.model_validate(v) for v in history],
    )


# -- feature flags -------------------------------------------------------------------------------


@flags_router.get("", response_model=list[FlagRead], summary="The organization's feature flags")
async def read_flags(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.flag_read))]
) -> list[FlagRead]:
    flags = await list_flags(uows=request.app.state.container.uow, actor=actor)
    return [FlagRead.model_validate(f) for f in flags]


@flags_router.put("/{key}", response_model=FlagRead, summary="Turn a feature flag on or off")
async def change_flag(
    key: Annotated[str, Path(pattern=r"^[a-z0-9_.:-]{1,100}$")],
    body: FlagUpdate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.flag_manage))],
) -> FlagRead:
    view = await set_flag(
        uows=request.app.state.container.uow, actor=actor, key=key, enabled=body.enabled
    )
    return FlagRead.model_validate(view)


# -- KPIs --------------------------------------------------------------------------------------

KPI_FROM = Query(
    alias="from",
    max_length=40,
    description="First local date (YYYY-MM-DD, included) or an instant with a UTC offset.",
)
KPI_TO = Query(
    alias="to",
    max_length=40,
    description="Last local date (YYYY-MM-DD, included) or an instant with an offset (excluded).",
)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


async def _kpi(
    request: Request, actor: Actor, raw_from: str | None, raw_to: str | None, granularity: str
) -> KpiReport:
    return await kpi_report(
        uows=request.app.state.container.uow,
        actor=actor,
        raw_from=raw_from,
        raw_to=raw_to,
        granularity=granularity,
    )


def _csv(report: KpiReport) -> Response:
    name = f"clinicos-kpi-{report.range.start:%Y%m%d}-{report.range.end:%Y%m%d}.csv"
    return Response(
        content=report.as_csv(),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@kpi_router.get(
    "/kpi",
    response_model=KpiRead,
    summary="Decision-support KPIs of the organization (JSON, or CSV with Accept: text/csv)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def read_kpi(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.kpi_read))],
    raw_from: Annotated[str | None, KPI_FROM] = None,
    raw_to: Annotated[str | None, KPI_TO] = None,
    granularity: Annotated[str, Query(max_length=10)] = "day",
) -> KpiRead | Response:
    report = await _kpi(request, actor, raw_from, raw_to, granularity)
    if "text/csv" in request.headers.get("accept", ""):
        return _csv(report)
    return KpiRead.model_validate(report.as_json())


@kpi_router.get(
    "/kpi.csv",
    summary="The same KPIs as CSV (scope, metric, key, value)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def read_kpi_csv(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.kpi_read))],
    raw_from: Annotated[str | None, KPI_FROM] = None,
    raw_to: Annotated[str | None, KPI_TO] = None,
    granularity: Annotated[str, Query(max_length=10)] = "day",
) -> Response:
    return _csv(await _kpi(request, actor, raw_from, raw_to, granularity))


# -- retention -----------------------------------------------------------------------------------


@retention_router.get(
    "/runs",
    response_model=list[RetentionRunRead],
    summary="What the retention job purged for the organization, newest run first",
)
async def read_retention_runs(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.retention_read))]
) -> list[RetentionRunRead]:
    runs = await list_retention_runs(uows=request.app.state.container.uow, actor=actor)
    return [RetentionRunRead.model_validate(r, from_attributes=True) for r in runs]


router.include_router(audit_router)
router.include_router(consent_router)
router.include_router(flags_router)
router.include_router(kpi_router)
router.include_router(retention_router)
