"""Decision support's HTTP API: the inline order check (issue 5 point 3, patient given inline)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from clinicos.cds.schemas import (
    EvaluationRead,
    EvaluationRequest,
    evaluation_read,
    preferred_language,
)
from clinicos.cds.services import record_inline_evaluation
from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor

router = APIRouter(prefix="/api/v1/cds", tags=["cds"])


@router.post(
    "/evaluate",
    response_model=EvaluationRead,
    summary="Check an anticoagulant order against patient facts given inline",
)
async def evaluate_order(
    body: EvaluationRequest,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.cds_evaluate))],
    accept_language: Annotated[str | None, Header(max_length=500)] = None,
) -> EvaluationRead:
    container = request.app.state.container
    recorded = await record_inline_evaluation(
        uows=container.uow,
        actor=actor,
        facts=body.patient,
        order=body.order,
        as_of=body.as_of,
        production=container.settings.env.value == "production",
    )
    return evaluation_read(
        evaluation_id=recorded.evaluation_id,
        evaluation=recorded.evaluation,
        language=preferred_language(accept_language),
    )
