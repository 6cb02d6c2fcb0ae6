"""Clinical note use cases: write a draft, edit it, finalize it (immutable from then on, with a
content hash and its signer), discard it, amend a final note with an addendum; read and list.

Who sees what: a final note is visible to everyone in the organization who may read notes. A
note that was never finalized — a draft, or a draft that was discarded — is visible to its
author only: to anyone else it does not exist (404 ``not_found``, exactly like an unknown id),
so only the author can read, edit, finalize or discard it, and its existence is not disclosed
until it is signed. Every read or write appends one audit entry naming the patient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm.exc import StaleDataError

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, FieldError, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.errors import NoteNotEditable, RecordNotFound, VersionConflict
from clinicos.records.events import EntryRecorded
from clinicos.records.models import ClinicalNote, Encounter
from clinicos.records.services.common import (
    Cells,
    UnitOfWorkFor,
    audit_access,
    check_version,
    load_entry,
    load_patient,
)
from clinicos.records.services.patients import decode_cursor, encode_cursor

# FHIR has no note resource of its own: a clinical note is a DocumentReference (US Core).
RESOURCE = "DocumentReference"
MAX_PAGE = 100
MAX_TEXT = 100_000

DRAFT = "draft"
FINAL = "final"
ENTERED_IN_ERROR = "entered-in-error"
STATUSES = (DRAFT, FINAL, ENTERED_IN_ERROR)
KINDS = ("progress", "admission", "discharge", "consult", "nursing")

# Must read exactly as load_entry's message: another author's draft answers like a missing id.
_NOT_FOUND = "no such clinical note for this patient"
EDITABLE_FIELDS = frozenset({"kind", "text", "encounter_id"})


class NoteNotFinal(Conflict):
    code = "note_not_final"
    title = "Only a final note can be amended"


@dataclass(frozen=True)
class NoteFields:
    """A note's content as the caller gives it (``text`` in plaintext; sealed here)."""

    kind: str
    text: str
    encounter_id: str | None = None


@dataclass(frozen=True)
class NoteView(NoteFields):
    """A note as read back (decrypted). ``addenda``: ids of the notes that amend this one and
    that the reader may see (discarded ones left out), oldest first."""

    id: str = ""
    patient_id: str = ""
    amends_note_id: str | None = None
    status: str = DRAFT
    author_id: str = ""
    content_sha256: str | None = None
    finalized_by: str | None = None
    finalized_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1
    addenda: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotePage:
    patient_id: str
    items: list[NoteView]
    next_cursor: str | None


def content_sha256(text: str) -> str:
    """The hash a final note keeps of its text: SHA-256 of the UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- rows ---------------------------------------------------------------------------------------


def _visible_to(actor: Actor) -> ColumnElement[bool]:
    return or_(ClinicalNote.status == FINAL, ClinicalNote.author_id == actor.user_id)


def _validate(values: NoteFields) -> None:
    """The limits the API schema also checks, for callers that skip it (imports)."""
    errors: list[FieldError] = []
    if values.kind not in KINDS:
        errors.append(FieldError(("kind",), f"one of {list(KINDS)}"))
    if not 1 <= len(values.text) <= MAX_TEXT or not values.text.strip():
        errors.append(FieldError(("text",), f"1 to {MAX_TEXT} characters, not only blanks"))
    if errors:
        raise ValidationFailed(
            "invalid fields: " + ", ".join(e.field for e in errors), errors=errors
        )


async def _require_encounter(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str, encounter_id: str | None
) -> None:
    """A referenced encounter must be one of this patient's (a 422 naming the field, whether
    it is missing, another patient's or another organization's)."""
    if encounter_id is None:
        return
    found = await uow.session.scalar(
        select(Encounter.id).where(
            Encounter.id == encounter_id,
            Encounter.organization_id == actor.organization_id,
            Encounter.patient_id == patient_id,
        )
    )
    if found is None:
        raise ValidationFailed(
            "invalid fields: encounter_id",
            errors=[FieldError(("encounter_id",), "no such encounter for this patient")],
        )


async def _load_note(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str, note_id: str
) -> ClinicalNote:
    """The patient (404 if not the actor's organization's), then the note, if the actor may
    see it (404 otherwise, indistinguishable from a missing note)."""
    await load_patient(uow, actor, patient_id)
    row = await load_entry(uow, actor, ClinicalNote, note_id, patient_id=patient_id)
    if row.status != FINAL and row.author_id != actor.user_id:
        raise RecordNotFound(_NOT_FOUND)
    return row


async def _addenda(
    uow: SqlUnitOfWork, actor: Actor, note_ids: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """note id → ids of the visible, not discarded notes amending it (oldest first)."""
    if not note_ids:
        return {}
    rows = await uow.session.execute(
        select(ClinicalNote.amends_note_id, ClinicalNote.id)
        .where(
            ClinicalNote.organization_id == actor.organization_id,
            ClinicalNote.amends_note_id.in_(note_ids),
            ClinicalNote.status != ENTERED_IN_ERROR,
            _visible_to(actor),
        )
        .order_by(ClinicalNote.created_at, ClinicalNote.id)
    )
    found: dict[str, list[str]] = {}
    for amended, addendum in rows:
        if amended is not None:  # always, by the query; narrows the type
            found.setdefault(amended, []).append(addendum)
    return {k: tuple(v) for k, v in found.items()}


def open_note(phi: PhiKeyring, row: ClinicalNote, addenda: tuple[str, ...] = ()) -> NoteView:
    """Decrypt a note row; a text that does not open raises ``PhiDecryptionFailed`` (an
    explicit 500), never a blank or garbled note."""
    return NoteView(
        id=row.id,
        patient_id=row.patient_id,
        encounter_id=row.encounter_id,
        amends_note_id=row.amends_note_id,
        kind=row.kind,
        status=row.status,
        text=Cells.of(phi, row).open("text", row.text) or "",
        author_id=row.author_id,
        content_sha256=row.content_sha256,
        finalized_by=row.finalized_by,
        finalized_at=row.finalized_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        addenda=addenda,
    )


def _seal_final(row: ClinicalNote, text: str, actor: Actor, now: datetime) -> None:
    row.status = FINAL
    row.content_sha256 = content_sha256(text)
    row.finalized_by = actor.user_id
    row.finalized_at = now


def _require_draft(row: ClinicalNote) -> None:
    if row.status == FINAL:
        raise NoteNotEditable("this note is final; changes go in an addendum")
    if row.status != DRAFT:
        raise NoteNotEditable("this note was discarded")


async def _flush(uow: SqlUnitOfWork) -> None:
    try:
        await uow.session.flush()
    except StaleDataError:  # a concurrent change bumped the version between read and write
        raise VersionConflict("the note changed meanwhile; read it again") from None


def _event(actor: Actor, row: ClinicalNote, change: str) -> EntryRecorded:
    return EntryRecorded(
        organization_id=actor.organization_id,
        patient_id=row.patient_id,
        resource_type=RESOURCE,
        resource_id=row.id,
        change=change,
    )


# -- use cases ----------------------------------------------------------------------------------


async def write_note(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, values: NoteFields
) -> NoteView:
    """Start a draft note for a patient; the actor is its author."""
    async with uows(actor.organization_id) as uow:
        row = await add_note(uow, phi, actor, values, patient_id=patient_id)
        await uow.commit()
    return open_note(phi, row)


async def add_note(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    values: NoteFields,
    *,
    patient_id: str,
    amends_note_id: str | None = None,
    final: bool = False,
    row_id: str | None = None,
) -> ClinicalNote:
    """Add a note inside the caller's unit of work (FHIR transactions, imports): row, audit
    entry and event; no commit. A draft by default; ``final=True`` stores it signed at once
    (a document imported already signed), hash and signer included. ``amends_note_id`` is
    trusted here: the caller has checked that it names a final note of the same patient."""
    _validate(values)
    patient = await load_patient(uow, actor, patient_id)
    await _require_encounter(uow, actor, patient.id, values.encounter_id)
    now = uow.clock.now()
    row = ClinicalNote(
        id=row_id or new_id(),
        organization_id=actor.organization_id,
        patient_id=patient.id,
        encounter_id=values.encounter_id,
        amends_note_id=amends_note_id,
        kind=values.kind,
        status=DRAFT,
        author_id=actor.user_id,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    row.text = Cells.of(phi, row).seal("text", values.text) or ""
    if final:
        _seal_final(row, values.text, actor, now)
    uow.session.add(row)
    await uow.session.flush()
    action = "records.note.amend" if amends_note_id else "records.note.create"
    await audit_access(uow, actor, action, target_id=patient.id)
    uow.record(_event(actor, row, "created"))
    return row


async def get_note(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, note_id: str
) -> NoteView:
    async with uows(actor.organization_id) as uow:
        row = await _load_note(uow, actor, patient_id, note_id)
        addenda = await _addenda(uow, actor, [row.id])
        view = open_note(phi, row, addenda.get(row.id, ()))
        await audit_access(uow, actor, "records.note.read", target_id=patient_id)
        await uow.commit()
    return view


async def list_notes(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    status: str | None = None,
    encounter_id: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> NotePage:
    """A patient's notes the actor may see (final ones, and the actor's own drafts), newest
    first, keyset-paginated, optionally of one status or encounter. One audit entry per page."""
    limit = max(1, min(limit, MAX_PAGE))
    async with uows(actor.organization_id) as uow:
        await load_patient(uow, actor, patient_id)
        query = select(ClinicalNote).where(
            ClinicalNote.organization_id == actor.organization_id,
            ClinicalNote.patient_id == patient_id,
            _visible_to(actor),
        )
        if status is not None:
            query = query.where(ClinicalNote.status == status)
        if encounter_id is not None:
            query = query.where(ClinicalNote.encounter_id == encounter_id)
        if cursor is not None:
            created_at, row_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    ClinicalNote.created_at < created_at,
                    and_(ClinicalNote.created_at == created_at, ClinicalNote.id < row_id),
                )
            )
        query = query.order_by(ClinicalNote.created_at.desc(), ClinicalNote.id.desc())
        rows = list((await uow.session.scalars(query.limit(limit + 1))).all())
        page, more = rows[:limit], len(rows) > limit
        addenda = await _addenda(uow, actor, [row.id for row in page])
        items = [open_note(phi, row, addenda.get(row.id, ())) for row in page]
        await audit_access(uow, actor, "records.note.list", target_id=patient_id)
        await uow.commit()
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more and page else None
    return NotePage(patient_id=patient_id, items=items, next_cursor=next_cursor)


async def edit_note(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    note_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> NoteView:
    """Change a draft's ``kind``, ``text`` or ``encounter_id`` (None detaches it). Only the
    author sees a draft, so only the author edits it; a final or discarded note is 409
    ``note_not_editable``; a stale ``expected_version`` is 409 ``version_conflict``."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"unknown note fields: {sorted(unknown)}")
    async with uows(actor.organization_id) as uow:
        row = await _load_note(uow, actor, patient_id, note_id)
        _require_draft(row)
        check_version(row, expected_version)
        cells = Cells.of(phi, row)
        current = NoteFields(
            kind=row.kind, text=cells.open("text", row.text) or "", encounter_id=row.encounter_id
        )
        updated = replace(current, **changes)
        if updated != current:
            _validate(updated)
            if updated.encounter_id != current.encounter_id:
                await _require_encounter(uow, actor, patient_id, updated.encounter_id)
            row.kind = updated.kind
            row.encounter_id = updated.encounter_id
            if updated.text != current.text:
                row.text = cells.seal("text", updated.text) or ""
            row.updated_at = uow.clock.now()
            await _flush(uow)
            uow.record(_event(actor, row, "updated"))
        view = open_note(phi, row)  # a note that was a draft until now has no addenda
        await audit_access(uow, actor, "records.note.update", target_id=patient_id)
        await uow.commit()
    return view


async def finalize_note(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    note_id: str,
    expected_version: int | None = None,
) -> NoteView:
    """Sign a draft (author only): status ``final``, ``content_sha256`` of its text,
    ``finalized_by`` and ``finalized_at``. From then on the note never changes (409
    ``note_not_editable``); corrections are addenda."""
    async with uows(actor.organization_id) as uow:
        row = await _load_note(uow, actor, patient_id, note_id)
        _require_draft(row)
        check_version(row, expected_version)
        text = Cells.of(phi, row).open("text", row.text) or ""
        now = uow.clock.now()
        _seal_final(row, text, actor, now)
        row.updated_at = now
        await _flush(uow)
        uow.record(_event(actor, row, FINAL))
        view = open_note(phi, row)  # a note that was a draft until now has no addenda
        await audit_access(uow, actor, "records.note.finalize", target_id=patient_id)
        await uow.commit()
    return view


async def discard_note(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    note_id: str,
    expected_version: int | None = None,
) -> NoteView:
    """Discard a draft (author only): status ``entered-in-error``; the row stays, still
    visible to its author only. A final note cannot be discarded (409 ``note_not_editable``)."""
    async with uows(actor.organization_id) as uow:
        row = await _load_note(uow, actor, patient_id, note_id)
        _require_draft(row)
        check_version(row, expected_version)
        row.status = ENTERED_IN_ERROR
        row.updated_at = uow.clock.now()
        await _flush(uow)
        uow.record(_event(actor, row, ENTERED_IN_ERROR))
        view = open_note(phi, row)  # a note that was a draft until now has no addenda
        await audit_access(uow, actor, "records.note.discard", target_id=patient_id)
        await uow.commit()
    return view


async def amend_note(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    note_id: str,
    text: str,
    kind: str | None = None,
) -> NoteView:
    """Start an addendum to a final note: a new draft of the same patient and encounter whose
    ``amends_note_id`` names that note, authored by the actor, with its own edit → finalize
    lifecycle. ``kind`` defaults to the amended note's. Amending a draft or a discarded note
    is 409 ``note_not_final``."""
    async with uows(actor.organization_id) as uow:
        amended = await _load_note(uow, actor, patient_id, note_id)
        if amended.status != FINAL:
            raise NoteNotFinal("only a final note can be amended; edit the draft instead")
        values = NoteFields(kind=kind or amended.kind, text=text, encounter_id=amended.encounter_id)
        row = await add_note(
            uow, phi, actor, values, patient_id=patient_id, amends_note_id=amended.id
        )
        await uow.commit()
    return open_note(phi, row)
