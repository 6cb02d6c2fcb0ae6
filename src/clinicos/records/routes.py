"""The record's JSON API for patients: register, read, update, list and search.

PHI is never in a URL: search criteria (MRN, names, national id, phone, email) travel in the
body of ``POST /api/v1/patients/search``; ids in paths are random UUIDs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.records.schemas import (
    AddressBody,
    PatientCreate,
    PatientPageRead,
    PatientRead,
    PatientSearchBody,
    PatientUpdate,
)
from clinicos.records.services.patients import (
    MAX_PAGE,
    Address,
    PatientFields,
    PatientSearch,
    PatientView,
    get_patient,
    register_patient,
    search_patients,
    update_patient,
)

router = APIRouter(prefix="/api/v1/patients", tags=["records"])


def _address(body: AddressBody | None) -> Address | None:
    if body is None:
        return None
    return Address(
        lines=tuple(body.lines),
        city=body.city,
        district=body.district,
        state=body.state,
        postal_code=body.postal_code,
        country=body.country,
    )


def patient_read(view: PatientView) -> PatientRead:
    address = view.address
    return PatientRead(
        id=view.id,
        mrn=view.mrn,
        family_name=view.family_name,
        given_name=view.given_name,
        birth_date=view.birth_date,
        sex=view.sex,
        national_id=view.national_id,
        phone=view.phone,
        email=view.email,
        address=None
        if address is None
        else AddressBody(
            lines=list(address.lines),
            city=address.city,
            district=address.district,
            state=address.state,
            postal_code=address.postal_code,
            country=address.country,
        ),
        preferred_language=view.preferred_language,
        active=view.active,
        created_at=view.created_at,
        updated_at=view.updated_at,
        version=view.version,
    )


@router.post("", response_model=PatientRead, status_code=201, summary="Register a patient")
async def create_patient(
    body: PatientCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.patient_write))],
) -> PatientRead:
    container = request.app.state.container
    view = await register_patient(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        values=PatientFields(
            mrn=body.mrn,
            family_name=body.family_name,
            given_name=body.given_name,
            birth_date=body.birth_date,
            sex=body.sex,
            national_id=body.national_id,
            phone=body.phone,
            email=body.email,
            address=_address(body.address),
            preferred_language=body.preferred_language,
            active=body.active,
        ),
    )
    return patient_read(view)


@router.get("", response_model=PatientPageRead, summary="List patients, newest first")
async def list_patients(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.patient_read))],
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> PatientPageRead:
    return await _search(request, actor, PatientSearch(active=active), limit, cursor)


@router.post(
    "/search",
    response_model=PatientPageRead,
    summary="Find patients by exact MRN, name, family name, national id, phone or email",
    description=(
        "Criteria travel in the body, never in the URL: they identify people, and URLs end "
        "up in proxy logs and browser history. Every given criterion must match exactly "
        "(names case- and space-insensitively, phone and national id by their digits)."
    ),
)
async def search(
    body: PatientSearchBody,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.patient_read))],
) -> PatientPageRead:
    criteria = PatientSearch(
        mrn=body.mrn,
        name=body.name,
        family_name=body.family_name,
        national_id=body.national_id,
        phone=body.phone,
        email=body.email,
        active=body.active,
    )
    return await _search(request, actor, criteria, body.limit, body.cursor)


async def _search(
    request: Request, actor: Actor, criteria: PatientSearch, limit: int, cursor: str | None
) -> PatientPageRead:
    container = request.app.state.container
    page = await search_patients(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        criteria=criteria,
        limit=limit,
        cursor=cursor,
    )
    return PatientPageRead(
        items=[patient_read(view) for view in page.items], next_cursor=page.next_cursor
    )


@router.get("/{patient_id}", response_model=PatientRead, summary="Read one patient")
async def read_patient(
    patient_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.patient_read))],
) -> PatientRead:
    container = request.app.state.container
    view = await get_patient(
        uows=container.uow, phi=container.phi, actor=actor, patient_id=patient_id
    )
    return patient_read(view)


@router.patch("/{patient_id}", response_model=PatientRead, summary="Update a patient")
async def patch_patient(
    patient_id: str,
    body: PatientUpdate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.patient_write))],
) -> PatientRead:
    container = request.app.state.container
    sent = body.model_dump(exclude_unset=True)
    version = sent.pop("version", None)
    # The typed attribute, not the dumped dict (dates stay dates, the address a dataclass).
    changes: dict[str, Any] = {
        key: _address(body.address) if key == "address" else getattr(body, key) for key in sent
    }
    _refuse_clearing_required(changes)
    view = await update_patient(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        changes=changes,
        expected_version=version,
    )
    return patient_read(view)


def _refuse_clearing_required(changes: dict[str, Any]) -> None:
    required = [
        k for k in ("mrn", "family_name", "sex", "active") if k in changes and changes[k] is None
    ]
    if required:
        raise ValidationFailed(
            "invalid fields: " + ", ".join(f"body.{k}" for k in required),
            errors=tuple(FieldError(loc=("body", k), message="may not be null") for k in required),
        )
