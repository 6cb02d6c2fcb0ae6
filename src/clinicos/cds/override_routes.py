"""Decision support's override API (issue 5 point 5): record an override of a BLOCK/WARN
evaluation, co-sign a pending BLOCK override, and list the reasons in CDS Hooks shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from clinicos.cds.overrides import (
    OverridePolicy,
    OverrideView,
    cosign_override,
    override_reasons,
    record_override,
)
from clinicos.cds.schemas import OverrideRead, OverrideReasonRead, OverrideRequest
from clinicos.config import Settings
from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor

router = APIRouter(prefix="/api/v1/cds", tags=["cds"])


def _policy(settings: Settings) -> OverridePolicy:
    return OverridePolicy(
        reason_codes=tuple(settings.cds.override_reason_codes),
        block_needs_cosign=settings.cds.block_override_needs_cosign,
    )


def _read(view: OverrideView) -> OverrideRead:
    return OverrideRead(
        override_id=view.override_id,
        evaluation_id=view.evaluation_id,
        status=view.status,
        reason_code=view.reason_code,
        created_by=view.created_by,
        created_at=view.created_at,
        cosigned_by=view.cosigned_by,
        cosigned_at=view.cosigned_at,
    )


@router.get(
    "/override-reasons",
    response_model=list[OverrideReasonRead],
    summary="The override reasons this installation accepts (CDS Hooks overrideReasons)",
)
async def list_override_reasons(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.cds_evaluate))],
) -> list[OverrideReasonRead]:
    codes = request.app.state.container.settings.cds.override_reason_codes
    return [
        OverrideReasonRead(code=r.code, system=r.system, display=r.display)
        for r in override_reasons(codes)
    ]


@router.post(
    "/overrides",
    response_model=OverrideRead,
    status_code=201,
    summary="Override a BLOCK or WARN evaluation with a reason",
)
async def create_override(
    body: OverrideRequest,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.cds_override))],
) -> OverrideRead:
    container = request.app.state.container
    view = await record_override(
        uows=container.uow,
        actor=actor,
        policy=_policy(container.settings),
        evaluation_id=body.evaluation_id,
        reason_code=body.reason_code,
        comment=body.comment,
        phi=container.phi,
    )
    return _read(view)


@router.post(
    "/overrides/{override_id}/cosign",
    response_model=OverrideRead,
    summary="Give a pending BLOCK override its second sign-off",
)
async def cosign(
    override_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.cds_cosign))],
) -> OverrideRead:
    view = await cosign_override(
        uows=request.app.state.container.uow, actor=actor, override_id=override_id
    )
    return _read(view)
