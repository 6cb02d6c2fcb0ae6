"""The medication list (FHIR ``MedicationStatement``): what the patient takes — record, read,
list, update — and the drug fields it shares with prescriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import MedicationStatement
from clinicos.records.services.common import UnitOfWorkFor
from clinicos.records.services.entries import (
    DATE_SKEW,
    EntryColumns,
    EntryCriteria,
    EntryPage,
    add_entry,
    apply_fields,
    coded_as,
    criteria_clauses,
    fields_of,
    list_entries,
    merge,
    raise_invalid,
    read_entry,
    update_entry,
)
from clinicos.records.services.terminology import (
    ATC,
    DOSE_INTEGER_DIGITS,
    RXNORM,
    code_problem,
    magnitude_problem,
    normalise_unit,
    plain_decimal,
)

MEDICATION_CODE_SYSTEMS = (RXNORM, ATC)
StatementStatus = Literal["active", "completed", "stopped", "on-hold", "entered-in-error"]


@dataclass(frozen=True, kw_only=True)
class MedicationFields:
    """The drug (RxNorm or ATC) and how it is taken. ``frequency`` is a code such as ``BID``
    (stored upper-case), ``route`` a word such as ``oral`` (stored lower-case)."""

    code_system: str
    code: str
    display: str
    dose: Decimal | None = None
    dose_unit: str | None = None
    frequency: str | None = None
    route: str | None = None


@dataclass(frozen=True, kw_only=True)
class StatementFields(MedicationFields):
    """An entry of the patient's medication list."""

    status: StatementStatus = "active"
    effective_start: date | None = None
    effective_end: date | None = None


MEDICATION_UPDATABLE = ("code_system", "code", "display", "dose", "dose_unit", "frequency", "route")
STATEMENT_UPDATABLE = (*MEDICATION_UPDATABLE, "status", "effective_start", "effective_end")


def normalise_medication(values: Any) -> Any:
    return replace(
        values,
        code=values.code.strip(),
        dose=plain_decimal(values.dose),
        dose_unit=normalise_unit(values.dose_unit),
        frequency=values.frequency.strip().upper() if values.frequency else None,
        route=values.route.strip().lower() if values.route else None,
    )


def medication_problems(values: MedicationFields, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    if values.code_system not in MEDICATION_CODE_SYSTEMS:
        errors.append(
            FieldError(("code_system",), f"one of {list(MEDICATION_CODE_SYSTEMS)}", "enum")
        )
    else:
        problem = code_problem(values.code_system, values.code)
        if problem is not None:
            errors.append(problem)
    if not values.display.strip():
        errors.append(FieldError(("display",), "the drug's name is required", "missing"))
    if values.dose is not None and values.dose <= 0:
        errors.append(FieldError(("dose",), "must be above 0", "range"))
    elif (too_large := magnitude_problem(values.dose, ("dose",), DOSE_INTEGER_DIGITS)) is not None:
        errors.append(too_large)
    if (values.dose is None) != (values.dose_unit is None):
        field = "dose_unit" if values.dose is not None else "dose"
        errors.append(FieldError((field,), "dose and dose_unit go together", "missing"))
    return errors


def statement_problems(values: StatementFields, now: datetime) -> list[FieldError]:
    errors = medication_problems(values, now)
    if values.status not in get_args(StatementStatus):
        errors.append(FieldError(("status",), f"one of {list(get_args(StatementStatus))}", "enum"))
    start, end = values.effective_start, values.effective_end
    if start is not None and start > (now + DATE_SKEW).date():
        errors.append(FieldError(("effective_start",), "may not be in the future", "future"))
    if start is not None and end is not None and end < start:
        errors.append(FieldError(("effective_end",), "may not be before effective_start", "order"))
    return errors


# FHIR MedicationStatement search: ``effective`` (our ``date``) is the day it was started.
STATEMENT_COLUMNS = EntryColumns(
    code=coded_as(MedicationStatement.code_system, MedicationStatement.code),
    status=MedicationStatement.status,
    date=MedicationStatement.effective_start,
    date_is_day=True,
)


async def record_medication(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, values: StatementFields
) -> MedicationStatement:
    async with uows(actor.organization_id) as uow:
        row = await add_medication_statement(uow, phi, actor, patient_id=patient_id, values=values)
        await uow.commit()
    return row


async def add_medication_statement(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    values: StatementFields,
    source_prescription_id: str | None = None,
    row_id: str | None = None,
) -> MedicationStatement:
    """Add to the medication list inside the caller's unit of work: row, audit entry, event."""

    def apply(row: MedicationStatement, values: StatementFields) -> None:
        apply_fields(row, values)
        row.source_prescription_id = source_prescription_id

    row: MedicationStatement = await add_entry(
        uow,
        actor,
        model=MedicationStatement,
        noun="medication",
        resource_type="MedicationStatement",
        patient_id=patient_id,
        values=normalise_medication(values),
        problems=statement_problems,
        apply=apply,
        row_id=row_id,
    )
    return row


async def get_medication(
    *, uows: UnitOfWorkFor, actor: Actor, patient_id: str, medication_id: str
) -> MedicationStatement:
    row: MedicationStatement = await read_entry(
        uows=uows,
        actor=actor,
        model=MedicationStatement,
        noun="medication",
        patient_id=patient_id,
        row_id=medication_id,
    )
    return row


async def list_medications(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    status: str | None = None,
    criteria: EntryCriteria | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> EntryPage:
    """The medication list (``status="active"``: what the patient takes now), newest first."""
    where = [] if status is None else [MedicationStatement.status == status]
    where = [*where, *criteria_clauses(criteria, STATEMENT_COLUMNS)]
    return await list_entries(
        uows=uows,
        actor=actor,
        model=MedicationStatement,
        noun="medication",
        patient_id=patient_id,
        where=where,
        limit=limit,
        cursor=cursor,
        descending=not (criteria and criteria.oldest_first),
    )


async def update_medication(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    medication_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> MedicationStatement:
    def revise(current: StatementFields, changes: Mapping[str, Any], now: datetime) -> Any:
        updated = normalise_medication(merge(current, changes, STATEMENT_UPDATABLE))
        raise_invalid(statement_problems(updated, now))
        return updated

    row: MedicationStatement = await update_entry(
        uows=uows,
        actor=actor,
        model=MedicationStatement,
        read=lambda row: fields_of(StatementFields, row),
        noun="medication",
        resource_type="MedicationStatement",
        patient_id=patient_id,
        row_id=medication_id,
        changes=changes,
        expected_version=expected_version,
        revise=revise,
    )
    return row
