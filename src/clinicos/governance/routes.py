"""Governance's HTTP API: read and verify the organization's audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from clinicos.governance.audit import list_audit_events, record_audit, verify_audit_chain
from clinicos.governance.schemas import AuditEventPage, AuditEventRead, ChainVerification
from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor

router = APIRouter(prefix="/api/v1/audit", tags=["governance"])

CODE = r"^[a-z0-9_.:-]{1,100}$"
IDENTIFIER = r"^[A-Za-z0-9_.:-]{1,200}$"


@router.get("", response_model=AuditEventPage, summary="Audit events, newest first")
async def list_events(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.audit_read))],
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    action: Annotated[str | None, Query(pattern=CODE)] = None,
    target_type: Annotated[str | None, Query(pattern=CODE)] = None,
    target_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    # Aware datetimes only: a bare "2026-01-01T00:00" would be ambiguous across clinics' zones.
    occurred_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
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


@router.get(
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
    )
