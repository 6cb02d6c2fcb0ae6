"""Decision support's attestation API (issue 5 point 4): attest that missing or stale data is
acceptable for one patient's order, or record the fresh value instead.

Mounted under ``/api/v1/cds`` through ``clinicos.cds.routes`` (the app includes the context's
routers; this one rides on the evaluation router)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from clinicos.cds.attestations import AttestationView, record_attestation, record_fresh_value
from clinicos.cds.schemas import AttestationRead, AttestationRequest
from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor

router = APIRouter(tags=["cds"])


def _read(view: AttestationView) -> AttestationRead:
    return AttestationRead(
        kind=view.kind,
        attestation_id=view.attestation_id,
        observation_id=view.observation_id,
        evaluation_id=view.evaluation_id,
        patient_id=view.patient_id,
        facts=list(view.facts),
        attested_by=view.attested_by,
        attested_at=view.attested_at,
        expires_at=view.expires_at,
    )


@router.post(
    "/attestations",
    response_model=AttestationRead,
    status_code=201,
    summary="Attest that missing or stale data is acceptable for one patient's order, "
    "or record the value",
)
async def create_attestation(
    body: AttestationRequest,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.cds_override))],
) -> AttestationRead:
    """``cds:override`` (clinicians; pharmacists may not attest, as they may not override).
    The ``record`` form also needs ``clinical:write``, checked by the use case."""
    body.require_one_form()
    container = request.app.state.container
    if body.record is not None:
        view = await record_fresh_value(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            evaluation_id=body.evaluation_id,
            value=body.record.fresh_value(),
        )
    else:
        view = await record_attestation(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            evaluation_id=body.evaluation_id,
            facts=list(body.facts or ()),
            reason=body.reason,
            expires_in_hours=body.expires_in_hours,
        )
    return _read(view)
