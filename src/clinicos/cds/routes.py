"""Decision support's HTTP API: the order check (issue 5 point 3), on facts given inline or on
a patient's stored record (record mode); the attestation route rides on this router."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from clinicos.cds.attestation_routes import router as attestation_router
from clinicos.cds.schemas import (
    EvaluationRead,
    EvaluationRequest,
    evaluation_read,
    preferred_language,
)
from clinicos.cds.services import record_inline_evaluation_in, record_patient_evaluation_in
from clinicos.identity import Authorized, Permission, require_unit_of_work

router = APIRouter(prefix="/api/v1/cds", tags=["cds"])
# POST /api/v1/cds/attestations: included here so the app's router list needs no change.
router.include_router(attestation_router)


@router.post(
    "/evaluate",
    response_model=EvaluationRead,
    summary="Check an anticoagulant order against facts given inline or the patient's record",
)
async def evaluate_order(
    body: EvaluationRequest,
    request: Request,
    authorized: Annotated[
        Authorized,
        # The session is checked in the unit of work the evaluation is then recorded in: one
        # transaction per request ("function": it closes when this function returns).
        Depends(require_unit_of_work(Permission.cds_evaluate), scope="function"),
    ],
    accept_language: Annotated[str | None, Header(max_length=500)] = None,
) -> EvaluationRead:
    """Record mode (``patient_id``) also needs ``patient:read`` and ``clinical:read``, checked
    by the use case (a route declares one permission)."""
    body.require_one_subject()
    actor, uow = authorized.actor, authorized.uow
    container = request.app.state.container
    production = container.settings.env.value == "production"
    if body.patient_id is not None:
        recorded = await record_patient_evaluation_in(
            uow,
            phi=container.phi,
            actor=actor,
            patient_id=body.patient_id,
            order=body.order,
            as_of=body.as_of,
            production=production,
        )
    else:
        assert body.patient is not None  # require_one_subject
        recorded = await record_inline_evaluation_in(
            uow,
            actor=actor,
            facts=body.patient,
            order=body.order,
            as_of=body.as_of,
            production=production,
        )
    return evaluation_read(
        evaluation_id=recorded.evaluation_id,
        evaluation=recorded.evaluation,
        language=preferred_language(accept_language),
        record=recorded.record,
        attested=recorded.attested,
    )
