"""The plumbing the clinical-entry use cases share (observations, conditions, allergies, the
medication list, prescriptions): new rows, paging, the read/list/update use-case shapes, the
audit entry and event each one writes, and 422s naming the field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, false, or_, select, true

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records.events import EntryRecorded
from clinicos.records.models import Encounter
from clinicos.records.services.common import (
    UnitOfWorkFor,
    audit_access,
    check_version,
    load_entry,
    load_patient,
)
from clinicos.records.services.patients import decode_cursor, encode_cursor
from clinicos.records.services.terminology import plain_decimal

MAX_PAGE = 100
# Devices and lab systems disagree with our clock by seconds to minutes; beyond that a
# measurement "in the future" is a data-entry error (wrong day, wrong time zone).
CLOCK_SKEW = timedelta(minutes=5)
# Dates carry no zone: "today" somewhere on Earth may already be tomorrow in UTC.
DATE_SKEW = timedelta(days=1)

Revise = Callable[[Any, Mapping[str, Any], datetime], Any]


def raise_invalid(errors: Sequence[FieldError]) -> None:
    """422 ``validation_failed`` naming every invalid field (never its value), if any."""
    if errors:
        names = ", ".join(sorted({e.field for e in errors}))
        raise ValidationFailed(f"invalid fields: {names}", errors=errors)


def aware_utc(value: datetime, field: str) -> datetime:
    """An aware datetime in UTC; a naive one is a 422 naming ``field``."""
    if value.tzinfo is None:
        raise_invalid([FieldError((field,), "a timezone-aware datetime is required", "naive")])
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC instant
        error = FieldError((field,), "is outside the range of dates", "range")
        raise ValidationFailed(f"invalid fields: {field}", errors=(error,)) from None


def length_problems(model: Any, values: Any) -> list[FieldError]:
    """A text field longer than its column holds is a 422 naming it — checked here, whatever
    the caller (an API schema, a FHIR mapping, an import), so the database never truncates or
    refuses a value mid-transaction."""
    errors: list[FieldError] = []
    columns = model.__table__.columns
    for f in fields(values):
        value = getattr(values, f.name)
        column = columns.get(f.name)
        limit = getattr(column.type, "length", None) if column is not None else None
        if isinstance(value, str) and limit and len(value) > limit:
            errors.append(FieldError((f.name,), f"at most {limit} characters", "too_long"))
    return errors


def merge(current: Any, changes: Mapping[str, Any], allowed: Iterable[str]) -> Any:
    """``current`` (a frozen fields dataclass) with ``changes`` applied.

    A change to a field outside ``allowed`` is a 422 naming it (an update that restates the
    whole entry — a FHIR ``PUT`` — may repeat those fields unchanged); a name that is not a
    field at all is a programming error."""
    names = {f.name for f in fields(current)}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(f"not fields of {type(current).__name__}: {sorted(unknown)}")
    allowed = set(allowed)
    fixed = sorted(
        name
        for name, value in changes.items()
        if name not in allowed and value != getattr(current, name)
    )
    raise_invalid(
        [
            FieldError((name,), "cannot be changed once recorded; record a new entry", "immutable")
            for name in fixed
        ]
    )
    return replace(current, **{k: v for k, v in changes.items() if k in allowed})


def fields_of(fields_type: Any, row: Any) -> Any:
    """The fields dataclass of a row whose columns carry the same names."""
    values = {f.name: getattr(row, f.name) for f in fields(fields_type)}
    return fields_type(
        **{k: plain_decimal(v) if isinstance(v, Decimal) else v for k, v in values.items()}
    )


def apply_fields(row: Any, values: Any, *, skip: Iterable[str] = ()) -> None:
    for f in fields(values):
        if f.name not in skip:
            setattr(row, f.name, getattr(values, f.name))


def new_row(
    model: Any, uow: SqlUnitOfWork, actor: Actor, patient_id: str, row_id: str | None
) -> Any:
    now = uow.clock.now()
    return model(
        id=row_id or new_id(),
        organization_id=actor.organization_id,
        patient_id=patient_id,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )


def entry_event(actor: Actor, row: Any, resource_type: str, change: str) -> EntryRecorded:
    return EntryRecorded(
        organization_id=actor.organization_id,
        patient_id=row.patient_id,
        resource_type=resource_type,
        resource_id=row.id,
        change=change,
    )


def of_patient(model: Any, actor: Actor, patient_id: str) -> Select[Any]:
    return select(model).where(
        model.organization_id == actor.organization_id, model.patient_id == patient_id
    )


async def check_encounter(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str, encounter_id: str | None
) -> None:
    """An entry may name an encounter only of the same patient in the same organization."""
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
        raise_invalid([FieldError(("encounter_id",), "no such encounter for this patient")])


@dataclass(frozen=True)
class EntryCriteria:
    """What a search of a patient's entries may ask, beyond the patient (the FHIR facade's
    ``code``, ``status``, ``clinical-status``, ``date`` and ``_sort`` map onto it).

    ``codes`` are ``(system, code)`` tokens, either part optional, OR-ed; ``statuses`` and
    ``clinical_statuses`` are OR-ed; the date window is ``[date_from, date_before)`` on the
    entry's own date (see each family's ``*_COLUMNS``); a criterion a family has no column
    for matches nothing rather than everything."""

    codes: tuple[tuple[str | None, str | None], ...] = ()
    statuses: tuple[str, ...] = ()
    clinical_statuses: tuple[str, ...] = ()
    date_from: datetime | None = None
    date_before: datetime | None = None
    oldest_first: bool = False


@dataclass(frozen=True)
class EntryColumns:
    """Where a family keeps what :class:`EntryCriteria` asks about. ``code`` builds the clause
    of one ``(system, code)`` token; ``date`` is a datetime or (``date_is_day``) a date column."""

    code: Callable[[str | None, str | None], Any] | None = None
    status: Any = None
    clinical_status: Any = None
    date: Any = None
    date_is_day: bool = False


def coded_as(system_column: Any, code_column: Any) -> Callable[[str | None, str | None], Any]:
    """The token clause of a family coded as ``(code_system, code)`` columns."""

    def clause(system: str | None, code: str | None) -> Any:
        parts = []
        if system is not None:
            parts.append(system_column == system)
        if code is not None:
            parts.append(code_column == code)
        return and_(*parts) if parts else true()

    return clause


def _first_day_from(moment: datetime) -> date:
    """The first whole day at or after ``moment`` (a date column's inclusive lower bound)."""
    day = moment.astimezone(UTC).date()
    return day if moment.astimezone(UTC).time() == time.min else day + timedelta(days=1)


def criteria_clauses(criteria: EntryCriteria | None, columns: EntryColumns) -> list[Any]:
    """The WHERE clauses of ``criteria`` on a family's ``columns``."""
    if criteria is None:
        return []
    clauses: list[Any] = []
    if criteria.codes:
        if columns.code is None:
            clauses.append(false())
        else:
            clauses.append(or_(*(columns.code(system, code) for system, code in criteria.codes)))
    for values, column in (
        (criteria.statuses, columns.status),
        (criteria.clinical_statuses, columns.clinical_status),
    ):
        if values:
            clauses.append(false() if column is None else column.in_(values))
    if criteria.date_from is not None or criteria.date_before is not None:
        if columns.date is None:
            clauses.append(false())
        else:
            clauses.append(columns.date.is_not(None))
            low, high = criteria.date_from, criteria.date_before
            if columns.date_is_day:
                # A day is inside the window when the whole of it is after date_from and its
                # start is before date_before.
                if low is not None:
                    clauses.append(columns.date >= _first_day_from(low))
                if high is not None:
                    clauses.append(columns.date < _first_day_from(high))
            else:
                if low is not None:
                    clauses.append(columns.date >= low)
                if high is not None:
                    clauses.append(columns.date < high)
    return clauses


@dataclass(frozen=True)
class EntryPage:
    """One page of a patient's entries (rows, newest first) and where the next one starts."""

    items: list[Any]
    next_cursor: str | None


async def keyset_page(
    uow: SqlUnitOfWork,
    query: Select[Any],
    model: Any,
    column: Any,
    *,
    limit: int,
    cursor: str | None,
    descending: bool = True,
) -> EntryPage:
    """Newest first by ``column`` (oldest first unless ``descending``), ties by id; ``cursor``
    continues after the previous page (a malformed one is a 400 naming the parameter). At
    most ``MAX_PAGE`` rows. ``column`` must not be nullable (a keyset cannot pass a NULL)."""
    limit = max(1, min(limit, MAX_PAGE))
    if cursor is not None:
        at, row_id = decode_cursor(cursor)
        if descending:
            query = query.where(or_(column < at, and_(column == at, model.id < row_id)))
        else:
            query = query.where(or_(column > at, and_(column == at, model.id > row_id)))
    if descending:
        query = query.order_by(column.desc(), model.id.desc())
    else:
        query = query.order_by(column.asc(), model.id.asc())
    query = query.limit(limit + 1)
    rows = list((await uow.session.scalars(query)).all())
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    next_cursor = encode_cursor(getattr(page[-1], column.key), page[-1].id) if more else None
    return EntryPage(items=page, next_cursor=next_cursor)


# -- use-case shapes ----------------------------------------------------------------------------


async def add_entry(
    uow: SqlUnitOfWork,
    actor: Actor,
    *,
    model: Any,
    noun: str,
    resource_type: str,
    patient_id: str,
    values: Any,
    problems: Callable[[Any, datetime], list[FieldError]],
    apply: Callable[[Any, Any], None] = apply_fields,
    row_id: str | None = None,
) -> Any:
    """Create an entry inside the caller's unit of work: the patient must be the actor's
    organization's (404 otherwise), ``values`` must have no ``problems`` (422), a named
    encounter must be the patient's; then the row, one ``records.<noun>.create`` audit entry
    and one ``EntryRecorded`` event. No commit."""
    patient = await load_patient(uow, actor, patient_id)
    raise_invalid(problems(values, uow.clock.now()) + length_problems(model, values))
    await check_encounter(uow, actor, patient.id, getattr(values, "encounter_id", None))
    row = new_row(model, uow, actor, patient.id, row_id)
    apply(row, values)
    uow.session.add(row)
    await uow.session.flush()
    await audit_access(uow, actor, f"records.{noun}.create", target_id=patient.id)
    uow.record(entry_event(actor, row, resource_type, "created"))
    return row


async def read_entry(
    *, uows: UnitOfWorkFor, actor: Actor, model: Any, noun: str, patient_id: str, row_id: str
) -> Any:
    """One entry of a patient, with one ``records.<noun>.read`` audit entry."""
    async with uows(actor.organization_id) as uow:
        patient = await load_patient(uow, actor, patient_id)
        row = await load_entry(uow, actor, model, row_id, patient_id=patient.id)
        await audit_access(uow, actor, f"records.{noun}.read", target_id=patient.id)
        await uow.commit()
    return row


async def list_entries(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    model: Any,
    noun: str,
    patient_id: str,
    where: Sequence[Any] = (),
    order_by: Any = None,
    limit: int = 20,
    cursor: str | None = None,
    descending: bool = True,
) -> EntryPage:
    """A patient's entries of ``model`` matching ``where``, newest ``order_by`` (default
    ``created_at``) first (oldest first unless ``descending``), with one
    ``records.<noun>.list`` audit entry (also for an empty page: it disclosed that there is
    nothing)."""
    async with uows(actor.organization_id) as uow:
        patient = await load_patient(uow, actor, patient_id)
        query = of_patient(model, actor, patient.id).where(*where)
        column = model.created_at if order_by is None else order_by
        page = await keyset_page(
            uow, query, model, column, limit=limit, cursor=cursor, descending=descending
        )
        await audit_access(uow, actor, f"records.{noun}.list", target_id=patient.id)
        await uow.commit()
    return page


async def update_entry(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    model: Any,
    read: Callable[[Any], Any],
    noun: str,
    resource_type: str,
    patient_id: str,
    row_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None,
    revise: Revise,
    guard: Callable[[Any], None] | None = None,
    apply: Callable[[Any, Any], None] = apply_fields,
    describe: Callable[[Any, Any], str] = lambda current, updated: "updated",
) -> Any:
    """Change an entry: load it (404 for another patient or tenant), check the version (409),
    ``guard`` the row's state, ``revise`` its fields as ``read`` from the row (current fields,
    changes, now → new fields, raising on invalid ones), write what changed with an event
    (``describe`` names the change), audit, commit once."""
    async with uows(actor.organization_id) as uow:
        row = await load_entry(uow, actor, model, row_id, patient_id=patient_id)
        check_version(row, expected_version)
        if guard is not None:
            guard(row)
        current = read(row)
        updated = revise(current, changes, uow.clock.now())
        raise_invalid(length_problems(model, updated))
        if updated != current:
            apply(row, updated)
            row.updated_at = uow.clock.now()
            await uow.session.flush()
            uow.record(entry_event(actor, row, resource_type, describe(current, updated)))
        await audit_access(uow, actor, f"records.{noun}.update", target_id=row.patient_id)
        await uow.commit()
    return row
