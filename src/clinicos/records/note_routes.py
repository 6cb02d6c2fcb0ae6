"""The record's JSON API for a patient's encounters and clinical notes (draft → final →
addendum). Encounters need the clinical permissions; notes the note permissions, which fewer
roles hold (note text is the most sensitive part of the record)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor
from clinicos.records.note_schemas import (
    AddendumCreate,
    EncounterCreate,
    EncounterPageRead,
    EncounterRead,
    EncounterUpdate,
    NoteCreate,
    NotePageRead,
    NoteRead,
    NoteStatus,
    NoteUpdate,
    NoteVersion,
)
from clinicos.records.services.encounters import (
    MAX_PAGE,
    EncounterFields,
    EncounterView,
    get_encounter,
    list_encounters,
    record_encounter,
    update_encounter,
)
from clinicos.records.services.notes import (
    NoteFields,
    NoteView,
    amend_note,
    discard_note,
    edit_note,
    finalize_note,
    get_note,
    list_notes,
    write_note,
)

router = APIRouter(prefix="/api/v1/patients", tags=["records"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=200)]


def _sent(body: Any) -> tuple[dict[str, Any], int | None]:
    """The fields a PATCH body sets (typed values, not dumped), and its ``version``."""
    names = set(body.model_fields_set) - {"version"}
    return {name: getattr(body, name) for name in names}, body.version


# -- encounters ---------------------------------------------------------------------------------


def encounter_read(view: EncounterView) -> EncounterRead:
    return EncounterRead.model_validate(view, from_attributes=True)


@router.post(
    "/{patient_id}/encounters",
    response_model=EncounterRead,
    status_code=201,
    summary="Record an encounter",
)
async def create_encounter(
    patient_id: str,
    body: EncounterCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.clinical_write))],
) -> EncounterRead:
    container = request.app.state.container
    view = await record_encounter(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        values=EncounterFields(**body.model_dump()),
    )
    return encounter_read(view)


@router.get(
    "/{patient_id}/encounters",
    response_model=EncounterPageRead,
    summary="List a patient's encounters, latest first",
)
async def list_patient_encounters(
    patient_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.clinical_read))],
    limit: Limit = 20,
    cursor: Cursor = None,
) -> EncounterPageRead:
    container = request.app.state.container
    page = await list_encounters(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        limit=limit,
        cursor=cursor,
    )
    return EncounterPageRead(
        patient_id=page.patient_id,
        items=[encounter_read(view) for view in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{patient_id}/encounters/{encounter_id}",
    response_model=EncounterRead,
    summary="Read one encounter",
)
async def read_encounter(
    patient_id: str,
    encounter_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.clinical_read))],
) -> EncounterRead:
    container = request.app.state.container
    view = await get_encounter(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        encounter_id=encounter_id,
    )
    return encounter_read(view)


@router.patch(
    "/{patient_id}/encounters/{encounter_id}",
    response_model=EncounterRead,
    summary="Update an encounter or move it along its status lifecycle",
)
async def patch_encounter(
    patient_id: str,
    encounter_id: str,
    body: EncounterUpdate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.clinical_write))],
) -> EncounterRead:
    container = request.app.state.container
    changes, version = _sent(body)
    view = await update_encounter(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        encounter_id=encounter_id,
        changes=changes,
        expected_version=version,
    )
    return encounter_read(view)


# -- notes --------------------------------------------------------------------------------------


def note_read(view: NoteView) -> NoteRead:
    return NoteRead.model_validate(view, from_attributes=True)


@router.post(
    "/{patient_id}/notes",
    response_model=NoteRead,
    status_code=201,
    summary="Start a draft note (the caller is its author)",
)
async def create_note(
    patient_id: str,
    body: NoteCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_write))],
) -> NoteRead:
    container = request.app.state.container
    view = await write_note(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        values=NoteFields(kind=body.kind, text=body.text, encounter_id=body.encounter_id),
    )
    return note_read(view)


@router.get(
    "/{patient_id}/notes",
    response_model=NotePageRead,
    summary="List a patient's final notes and the caller's own drafts, newest first",
)
async def list_patient_notes(
    patient_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_read))],
    status: NoteStatus | None = None,
    encounter_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> NotePageRead:
    container = request.app.state.container
    page = await list_notes(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        status=status,
        encounter_id=encounter_id,
        limit=limit,
        cursor=cursor,
    )
    return NotePageRead(
        patient_id=page.patient_id,
        items=[note_read(view) for view in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{patient_id}/notes/{note_id}",
    response_model=NoteRead,
    summary="Read one note, with the ids of its addenda",
)
async def read_note(
    patient_id: str,
    note_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_read))],
) -> NoteRead:
    container = request.app.state.container
    view = await get_note(
        uows=container.uow, phi=container.phi, actor=actor, patient_id=patient_id, note_id=note_id
    )
    return note_read(view)


@router.patch(
    "/{patient_id}/notes/{note_id}",
    response_model=NoteRead,
    summary="Edit a draft note (author only; a final note is immutable)",
)
async def patch_note(
    patient_id: str,
    note_id: str,
    body: NoteUpdate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_write))],
) -> NoteRead:
    container = request.app.state.container
    changes, version = _sent(body)
    view = await edit_note(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        note_id=note_id,
        changes=changes,
        expected_version=version,
    )
    return note_read(view)


@router.post(
    "/{patient_id}/notes/{note_id}/finalize",
    response_model=NoteRead,
    summary="Finalize (sign) a draft note: it becomes immutable",
)
async def finalize_patient_note(
    patient_id: str,
    note_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_write))],
    body: NoteVersion | None = None,
) -> NoteRead:
    container = request.app.state.container
    view = await finalize_note(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        note_id=note_id,
        expected_version=body.version if body else None,
    )
    return note_read(view)


@router.post(
    "/{patient_id}/notes/{note_id}/discard",
    response_model=NoteRead,
    summary="Discard a draft note (status entered-in-error)",
)
async def discard_patient_note(
    patient_id: str,
    note_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_write))],
    body: NoteVersion | None = None,
) -> NoteRead:
    container = request.app.state.container
    view = await discard_note(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        note_id=note_id,
        expected_version=body.version if body else None,
    )
    return note_read(view)


@router.post(
    "/{patient_id}/notes/{note_id}/addenda",
    response_model=NoteRead,
    status_code=201,
    summary="Start an addendum (a new draft note) to a final note",
)
async def create_addendum(
    patient_id: str,
    note_id: str,
    body: AddendumCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.note_write))],
) -> NoteRead:
    container = request.app.state.container
    view = await amend_note(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        patient_id=patient_id,
        note_id=note_id,
        text=body.text,
        kind=body.kind,
    )
    return note_read(view)
