"""The HTTP edge of data-subject requests and legal holds — and the one place where governance's
DSR use cases are wired to the record (``clinicos.records``) and the FHIR mapping
(``clinicos.interop``), which both depend on governance (ADR 0017)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from clinicos.governance.dsr import (
    Correction,
    DsrContext,
    DsrPorts,
    HoldView,
    RequestFilter,
    RequestView,
    access_report,
    decide_correction,
    erase,
    lift_hold,
    list_requests,
    patient_holds,
    place_hold,
    portability_export,
    read_request,
    submit_request,
)
from clinicos.governance.dsr_schemas import (
    ID,
    AccessReportCreate,
    AccessReportRead,
    CorrectionDecision,
    DataRequestCreate,
    DataRequestPage,
    DataRequestRead,
    ErasureRead,
    KindField,
    LegalHoldCreate,
    LegalHoldLift,
    LegalHoldList,
    LegalHoldRead,
    StatusField,
    SummaryRead,
)
from clinicos.identity import Permission, require
from clinicos.interop import subject_bundle
from clinicos.kernel.actor import Actor
from clinicos.records import (
    apply_correction,
    check_correction,
    erase_contact_details,
    read_subject_record,
    require_patient,
)

router = APIRouter(prefix="/api/v1", tags=["governance"])

PORTS = DsrPorts(
    require_patient=require_patient,
    read_subject=read_subject_record,
    erase_contact=erase_contact_details,
    check_correction=check_correction,
    apply_correction=apply_correction,
    to_bundle=subject_bundle,
)
PATIENT_ID = Path(pattern=ID)
REQUEST_ID = Path(pattern=ID)
FHIR_JSON = "application/fhir+json"


def _ctx(request: Request, actor: Actor) -> DsrContext:
    container = request.app.state.container
    return DsrContext(uows=container.uow, phi=container.phi, actor=actor, ports=PORTS)


def _fhir_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _read(view: RequestView) -> DataRequestRead:
    return DataRequestRead.model_validate(view)


def _hold(view: HoldView) -> LegalHoldRead:
    return LegalHoldRead.model_validate(view)


@router.post(
    "/patients/{patient_id}/data-requests",
    response_model=DataRequestRead,
    status_code=201,
    summary="Take a patient's data-subject request (access, correction, portability, erasure)",
)
async def create_data_request(
    patient_id: Annotated[str, PATIENT_ID],
    body: DataRequestCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_request))],
) -> DataRequestRead:
    correction = None
    if body.correction is not None:
        correction = Correction(**body.correction.model_dump())
    view = await submit_request(
        _ctx(request, actor),
        patient_id=patient_id,
        kind=body.kind,
        channel=body.channel,
        correction=correction,
        erasure_categories=tuple(body.erasure_categories) if body.erasure_categories else None,
    )
    return _read(view)


@router.get(
    "/data-requests",
    response_model=DataRequestPage,
    summary="The organization's data-subject requests, newest first",
)
async def list_data_requests(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_read))],
    status: StatusField | None = None,
    kind: KindField | None = None,
    overdue: bool | None = None,
    patient_id: Annotated[str | None, Query(pattern=ID)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DataRequestPage:
    page = await list_requests(
        _ctx(request, actor),
        criteria=RequestFilter(status=status, kind=kind, overdue=overdue, patient_id=patient_id),
        limit=limit,
        cursor=cursor,
    )
    return DataRequestPage(items=[_read(v) for v in page.items], next_cursor=page.next_cursor)


@router.get(
    "/data-requests/{request_id}",
    response_model=DataRequestRead,
    summary="One data-subject request with its history",
)
async def read_data_request(
    request_id: Annotated[str, REQUEST_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_read))],
) -> DataRequestRead:
    return _read(await read_request(_ctx(request, actor), request_id=request_id))


@router.post(
    "/data-requests/{request_id}/access-report",
    response_model=AccessReportRead,
    summary="Answer an access request: everything held (FHIR Bundle) and a readable summary",
)
async def create_access_report(
    request_id: Annotated[str, REQUEST_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_fulfil))],
    body: AccessReportCreate | None = None,
) -> AccessReportRead:
    report = await access_report(
        _ctx(request, actor),
        request_id=request_id,
        base_url=_fhir_base(request),
        language=body.language if body else None,
    )
    return AccessReportRead(
        request_id=report.request.id,
        status=report.request.status,
        bundle=report.bundle,
        summary=SummaryRead(language=report.language, text=report.summary),
    )


@router.post(
    "/data-requests/{request_id}/export",
    summary="Answer a portability request: the patient's data as a FHIR Bundle",
    response_class=Response,
)
async def create_portability_export(
    request_id: Annotated[str, REQUEST_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_fulfil))],
) -> Response:
    bundle: dict[str, Any] = await portability_export(
        _ctx(request, actor), request_id=request_id, base_url=_fhir_base(request)
    )
    return Response(
        content=json.dumps(bundle, separators=(",", ":"), ensure_ascii=False),
        media_type=FHIR_JSON,
        headers={"Content-Disposition": f'attachment; filename="data-export-{request_id}.json"'},
    )


@router.post(
    "/data-requests/{request_id}/erasure",
    response_model=ErasureRead,
    summary="Answer an erasure request (409 under a legal hold or a legal retention)",
)
async def perform_erasure(
    request_id: Annotated[str, REQUEST_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_fulfil))],
) -> ErasureRead:
    result = await erase(_ctx(request, actor), request_id=request_id)
    return ErasureRead(
        request_id=result.request.id,
        status=result.request.status,
        erased=result.erased,
        retained=result.retained,
    )


@router.post(
    "/data-requests/{request_id}/decision",
    response_model=DataRequestRead,
    summary="Accept (apply through the record) or reject a correction request",
)
async def decide_data_request(
    request_id: Annotated[str, REQUEST_ID],
    body: CorrectionDecision,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_fulfil))],
) -> DataRequestRead:
    view = await decide_correction(
        _ctx(request, actor),
        request_id=request_id,
        accept=body.decision == "accept",
        note=body.note,
    )
    return _read(view)


# -- legal holds ---------------------------------------------------------------------------------


@router.post(
    "/patients/{patient_id}/legal-holds",
    response_model=LegalHoldRead,
    status_code=201,
    summary="Place a legal hold on a patient's data (blocks erasure)",
)
async def create_legal_hold(
    patient_id: Annotated[str, PATIENT_ID],
    body: LegalHoldCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.legal_hold_manage))],
) -> LegalHoldRead:
    view = await place_hold(
        _ctx(request, actor),
        patient_id=patient_id,
        reason_code=body.reason_code,
        reference=body.reference,
    )
    return _hold(view)


@router.get(
    "/patients/{patient_id}/legal-holds",
    response_model=LegalHoldList,
    summary="A patient's legal holds, current and lifted",
)
async def read_legal_holds(
    patient_id: Annotated[str, PATIENT_ID],
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.dsr_read))],
) -> LegalHoldList:
    views = await patient_holds(_ctx(request, actor), patient_id=patient_id)
    return LegalHoldList(
        patient_id=patient_id,
        under_hold=any(v.active for v in views),
        holds=[_hold(v) for v in views],
    )


@router.post(
    "/legal-holds/{hold_id}/lift",
    response_model=LegalHoldRead,
    summary="Lift a legal hold",
)
async def lift_legal_hold(
    hold_id: Annotated[str, Path(pattern=ID)],
    body: LegalHoldLift,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.legal_hold_manage))],
) -> LegalHoldRead:
    view = await lift_hold(_ctx(request, actor), hold_id=hold_id, reason_code=body.reason_code)
    return _hold(view)
