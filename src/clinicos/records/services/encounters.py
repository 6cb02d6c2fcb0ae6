"""Encounter use cases: record, read, list and update a patient's encounters — the free-text
reason sealed at rest, status changes along the FHIR lifecycle, one audit entry per access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm.exc import StaleDataError

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, FieldError, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.errors import InvalidTransition, VersionConflict
from clinicos.records.events import EntryRecorded
from clinicos.records.models import Encounter
from clinicos.records.services.common import (
    Cells,
    UnitOfWorkFor,
    audit_access,
    check_version,
    load_entry,
    load_patient,
)
from clinicos.records.services.patients import decode_cursor, encode_cursor

RESOURCE = "Encounter"
MAX_PAGE = 100
MAX_REASON = 1000

PLANNED = "planned"
IN_PROGRESS = "in-progress"
FINISHED = "finished"
CANCELLED = "cancelled"
ENTERED_IN_ERROR = "entered-in-error"
STATUSES = (PLANNED, IN_PROGRESS, FINISHED, CANCELLED, ENTERED_IN_ERROR)
# v3 ActCode: ambulatory, emergency, inpatient, virtual, home health.
CLASS_CODES = ("AMB", "EMER", "IMP", "VR", "HH")

# FHIR R4 Encounter.status, narrowed to the path a clinic walks: planned → in-progress →
# finished; anything not yet over may be cancelled; and any encounter, even a finished one,
# may turn out to have been recorded by mistake (entered-in-error), after which nothing changes.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    PLANNED: frozenset({IN_PROGRESS, CANCELLED, ENTERED_IN_ERROR}),
    IN_PROGRESS: frozenset({FINISHED, CANCELLED, ENTERED_IN_ERROR}),
    FINISHED: frozenset({ENTERED_IN_ERROR}),
    CANCELLED: frozenset({ENTERED_IN_ERROR}),
    ENTERED_IN_ERROR: frozenset(),
}


class EncounterNotEditable(Conflict):
    code = "encounter_not_editable"
    title = "An encounter entered in error cannot change"


@dataclass(frozen=True)
class EncounterFields:
    """An encounter as the caller gives it (``reason_text`` in plaintext; sealed here)."""

    status: str
    class_code: str
    period_start: datetime
    period_end: datetime | None = None
    type_code: str | None = None
    type_display: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True)
class EncounterView(EncounterFields):
    """An encounter as read back (decrypted), with identity and version."""

    id: str = ""
    patient_id: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1


@dataclass(frozen=True)
class EncounterPage:
    patient_id: str
    items: list[EncounterView]
    next_cursor: str | None


# -- rows ---------------------------------------------------------------------------------------


def _validate(values: EncounterFields) -> None:
    """The invariants the API schema also checks, for callers that skip it (imports)."""
    errors: list[FieldError] = []
    if values.status not in STATUSES:
        errors.append(FieldError(("status",), f"one of {list(STATUSES)}"))
    if values.class_code not in CLASS_CODES:
        errors.append(FieldError(("class_code",), f"one of {list(CLASS_CODES)}"))
    if values.period_start.tzinfo is None:
        errors.append(FieldError(("period_start",), "a date-time with a time zone"))
    if values.period_end is not None:
        if values.period_end.tzinfo is None:
            errors.append(FieldError(("period_end",), "a date-time with a time zone"))
        elif values.period_start.tzinfo is not None and values.period_end < values.period_start:
            errors.append(FieldError(("period_end",), "must not be before period_start"))
    if values.reason_text is not None and not 1 <= len(values.reason_text) <= MAX_REASON:
        errors.append(FieldError(("reason_text",), f"1 to {MAX_REASON} characters"))
    if errors:
        raise ValidationFailed(
            "invalid fields: " + ", ".join(e.field for e in errors), errors=errors
        )


def _write(phi: PhiKeyring, row: Encounter, values: EncounterFields) -> None:
    row.status = values.status
    row.class_code = values.class_code
    row.type_code = values.type_code
    row.type_display = values.type_display
    row.reason_text = Cells.of(phi, row).seal("reason_text", values.reason_text)
    row.period_start = values.period_start.astimezone(UTC)
    row.period_end = values.period_end.astimezone(UTC) if values.period_end else None


def open_encounter(phi: PhiKeyring, row: Encounter) -> EncounterView:
    """Decrypt an encounter row; a reason that does not open raises ``PhiDecryptionFailed``."""
    return EncounterView(
        id=row.id,
        patient_id=row.patient_id,
        status=row.status,
        class_code=row.class_code,
        type_code=row.type_code,
        type_display=row.type_display,
        reason_text=Cells.of(phi, row).open("reason_text", row.reason_text),
        period_start=row.period_start,
        period_end=row.period_end,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _fields_of(view: EncounterView) -> EncounterFields:
    return EncounterFields(**{f.name: getattr(view, f.name) for f in fields(EncounterFields)})


async def _flush(uow: SqlUnitOfWork) -> None:
    try:
        await uow.session.flush()
    except StaleDataError:  # a concurrent update bumped the version between read and write
        raise VersionConflict("the encounter changed meanwhile; read it again") from None


# -- use cases ----------------------------------------------------------------------------------


async def record_encounter(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    values: EncounterFields,
) -> EncounterView:
    """Record an encounter of one of the actor's organization's patients."""
    async with uows(actor.organization_id) as uow:
        row = await add_encounter(uow, phi, actor, values, patient_id=patient_id)
        await uow.commit()
    return open_encounter(phi, row)


async def add_encounter(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    values: EncounterFields,
    *,
    patient_id: str,
    row_id: str | None = None,
) -> Encounter:
    """Record an encounter inside the caller's unit of work (FHIR transactions, imports):
    row, audit entry and event; no commit. The patient may have been added in the same
    unit of work."""
    _validate(values)
    patient = await load_patient(uow, actor, patient_id)
    now = uow.clock.now()
    row = Encounter(
        id=row_id or new_id(),
        organization_id=actor.organization_id,
        patient_id=patient.id,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    _write(phi, row, values)
    uow.session.add(row)
    await uow.session.flush()
    await audit_access(uow, actor, "records.encounter.create", target_id=patient.id)
    uow.record(_event(actor, row, "created"))
    return row


async def get_encounter(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, encounter_id: str
) -> EncounterView:
    async with uows(actor.organization_id) as uow:
        await load_patient(uow, actor, patient_id)
        row = await load_entry(uow, actor, Encounter, encounter_id, patient_id=patient_id)
        view = open_encounter(phi, row)
        await audit_access(uow, actor, "records.encounter.read", target_id=patient_id)
        await uow.commit()
    return view


async def list_encounters(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    limit: int = 20,
    cursor: str | None = None,
) -> EncounterPage:
    """A patient's encounters, latest start first, keyset-paginated; one audit entry per page
    (every item belongs to the one patient)."""
    limit = max(1, min(limit, MAX_PAGE))
    async with uows(actor.organization_id) as uow:
        await load_patient(uow, actor, patient_id)
        query = select(Encounter).where(
            Encounter.organization_id == actor.organization_id,
            Encounter.patient_id == patient_id,
        )
        if cursor is not None:
            start, row_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Encounter.period_start < start,
                    and_(Encounter.period_start == start, Encounter.id < row_id),
                )
            )
        query = query.order_by(Encounter.period_start.desc(), Encounter.id.desc()).limit(limit + 1)
        rows = list((await uow.session.scalars(query)).all())
        page, more = rows[:limit], len(rows) > limit
        items = [open_encounter(phi, row) for row in page]
        await audit_access(uow, actor, "records.encounter.list", target_id=patient_id)
        await uow.commit()
    next_cursor = encode_cursor(page[-1].period_start, page[-1].id) if more and page else None
    return EncounterPage(patient_id=patient_id, items=items, next_cursor=next_cursor)


async def update_encounter(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    encounter_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> EncounterView:
    """Apply ``changes`` (field → new value; None clears an optional field). A status change
    must follow ``TRANSITIONS`` (else 409 ``invalid_status_transition``); the other fields of
    an encounter entered in error no longer change either (409 ``encounter_not_editable``),
    while those of a finished or cancelled one may still be corrected. A stale
    ``expected_version`` is 409 ``version_conflict``; a change to nothing is a no-op."""
    unknown = set(changes) - {f.name for f in fields(EncounterFields)}
    if unknown:
        raise ValueError(f"unknown encounter fields: {sorted(unknown)}")
    async with uows(actor.organization_id) as uow:
        await load_patient(uow, actor, patient_id)
        row = await load_entry(uow, actor, Encounter, encounter_id, patient_id=patient_id)
        check_version(row, expected_version)
        current = _fields_of(open_encounter(phi, row))
        updated = replace(current, **changes)
        if updated != current:
            _validate(updated)
            if updated.status != current.status and (
                updated.status not in TRANSITIONS.get(current.status, frozenset())
            ):
                raise InvalidTransition(
                    f"an encounter cannot go from {current.status} to {updated.status}"
                )
            if current.status == ENTERED_IN_ERROR:
                raise EncounterNotEditable("this encounter was entered in error")
            _write(phi, row, updated)
            row.updated_at = uow.clock.now()
            await _flush(uow)
            change = updated.status if updated.status != current.status else "updated"
            uow.record(_event(actor, row, change))
        await audit_access(uow, actor, "records.encounter.update", target_id=patient_id)
        await uow.commit()
    return open_encounter(phi, row)


def _event(actor: Actor, row: Encounter, change: str) -> EntryRecorded:
    return EntryRecorded(
        organization_id=actor.organization_id,
        patient_id=row.patient_id,
        resource_type=RESOURCE,
        resource_id=row.id,
        change=change,
    )
