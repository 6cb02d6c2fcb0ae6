"""The HTTP edge of de-identified research exports (``/api/v1/research``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from clinicos.identity import Permission, require
from clinicos.interop.research import ResearchRequest, run_research_export
from clinicos.interop.research_schemas import (
    ResearchExportCreate,
    ResearchExportRead,
    ResearchPatient,
)
from clinicos.kernel.actor import Actor

router = APIRouter(prefix="/api/v1/research", tags=["research"])


@router.post(
    "/exports",
    response_model=ResearchExportRead,
    summary="Run a de-identified research export of the patients who granted research consent",
)
async def create_research_export(
    body: ResearchExportCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.research_export))],
) -> ResearchExportRead:
    container = request.app.state.container
    export = await run_research_export(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        request=ResearchRequest(
            datasets=tuple(body.datasets),
            loinc_codes=tuple(body.loinc_codes),
            from_period=body.from_period,
            to_period=body.to_period,
            date_precision=body.date_precision,
        ),
    )
    return ResearchExportRead(
        export_id=export.id,
        ran_at=export.ran_at,
        datasets=list(export.datasets),
        date_precision=export.date_precision,
        patients_included=export.patients_included,
        patients_excluded_for_consent=export.patients_excluded_for_consent,
        patients=[ResearchPatient.model_validate(p) for p in export.patients],
    )
