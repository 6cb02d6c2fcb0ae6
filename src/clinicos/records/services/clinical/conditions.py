"""Condition use cases (FHIR ``Condition``, coded in ICD-10 and/or SNOMED CT): record, read,
list, update."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import false, or_

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import Condition
from clinicos.records.services.common import UnitOfWorkFor
from clinicos.records.services.entries import (
    DATE_SKEW,
    EntryColumns,
    EntryCriteria,
    EntryPage,
    add_entry,
    criteria_clauses,
    fields_of,
    list_entries,
    merge,
    raise_invalid,
    read_entry,
    update_entry,
)
from clinicos.records.services.terminology import ICD10, SNOMED, is_icd10_code, is_snomed_concept_id

ConditionClinicalStatus = Literal[
    "active", "recurrence", "relapse", "inactive", "remission", "resolved"
]
ConditionVerificationStatus = Literal[
    "unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"
]

# FHIR con-4: an abated condition is no longer active.
ABATED: frozenset[str] = frozenset({"inactive", "remission", "resolved"})


@dataclass(frozen=True, kw_only=True)
class ConditionFields:
    """A problem or diagnosis, coded in ICD-10 and/or SNOMED CT (at least one)."""

    clinical_status: ConditionClinicalStatus
    verification_status: ConditionVerificationStatus = "confirmed"
    icd10_code: str | None = None
    snomed_code: str | None = None
    display: str | None = None
    onset_date: date | None = None
    abatement_date: date | None = None
    encounter_id: str | None = None


CONDITION_UPDATABLE = (
    "clinical_status",
    "verification_status",
    "icd10_code",
    "snomed_code",
    "display",
    "onset_date",
    "abatement_date",
)


def _condition_normalised(values: ConditionFields) -> ConditionFields:
    icd10 = values.icd10_code.strip().upper() if values.icd10_code else None
    snomed = values.snomed_code.strip() if values.snomed_code else None
    return replace(values, icd10_code=icd10, snomed_code=snomed)


def condition_problems(values: ConditionFields, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    if values.icd10_code is None and values.snomed_code is None:
        errors.append(
            FieldError(("icd10_code",), "give icd10_code, snomed_code or both", "missing")
        )
    if values.icd10_code is not None and not is_icd10_code(values.icd10_code):
        errors.append(
            FieldError(("icd10_code",), "not an ICD-10 code, e.g. I48.91", "code_invalid")
        )
    if values.snomed_code is not None and not is_snomed_concept_id(values.snomed_code):
        errors.append(FieldError(("snomed_code",), "not a SNOMED CT concept id", "code_invalid"))
    if values.clinical_status not in get_args(ConditionClinicalStatus):
        errors.append(FieldError(("clinical_status",), "not a clinical status", "enum"))
    if values.verification_status not in get_args(ConditionVerificationStatus):
        errors.append(FieldError(("verification_status",), "not a verification status", "enum"))
    latest = (now + DATE_SKEW).date()
    for field in ("onset_date", "abatement_date"):
        day = getattr(values, field)
        if day is not None and day > latest:
            errors.append(FieldError((field,), "may not be in the future", "future"))
    if values.abatement_date is not None:
        if values.onset_date is not None and values.abatement_date < values.onset_date:
            errors.append(FieldError(("abatement_date",), "may not be before onset_date", "order"))
        if values.clinical_status not in ABATED:
            errors.append(
                FieldError(("clinical_status",), f"an abated condition is one of {sorted(ABATED)}")
            )
    return errors


ICD10_SYSTEMS = (ICD10, "http://hl7.org/fhir/sid/icd-10-cm")


def _condition_code(system: str | None, code: str | None) -> Any:
    """A Condition is coded in ICD-10 and/or SNOMED CT: a token of another system matches
    nothing; a code without a system matches either."""
    icd10 = (
        Condition.icd10_code == code.upper()
        if code is not None
        else Condition.icd10_code.is_not(None)
    )
    snomed = (
        Condition.snomed_code == code if code is not None else Condition.snomed_code.is_not(None)
    )
    if system in ICD10_SYSTEMS:
        return icd10
    if system == SNOMED:
        return snomed
    if system is None:
        return or_(icd10, snomed)
    return false()


# FHIR Condition search: ``onset-date`` (our ``date``) is the day it began.
CONDITION_COLUMNS = EntryColumns(
    code=_condition_code,
    clinical_status=Condition.clinical_status,
    date=Condition.onset_date,
    date_is_day=True,
)


async def record_condition(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, values: ConditionFields
) -> Condition:
    async with uows(actor.organization_id) as uow:
        row = await add_condition(uow, phi, actor, patient_id=patient_id, values=values)
        await uow.commit()
    return row


async def add_condition(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    values: ConditionFields,
    row_id: str | None = None,
) -> Condition:
    """Record a condition inside the caller's unit of work: row, audit entry, event."""
    row: Condition = await add_entry(
        uow,
        actor,
        model=Condition,
        noun="condition",
        resource_type="Condition",
        patient_id=patient_id,
        values=_condition_normalised(values),
        problems=condition_problems,
        row_id=row_id,
    )
    return row


async def get_condition(
    *, uows: UnitOfWorkFor, actor: Actor, patient_id: str, condition_id: str
) -> Condition:
    row: Condition = await read_entry(
        uows=uows,
        actor=actor,
        model=Condition,
        noun="condition",
        patient_id=patient_id,
        row_id=condition_id,
    )
    return row


async def list_conditions(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    clinical_status: str | None = None,
    criteria: EntryCriteria | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> EntryPage:
    """A patient's conditions, most recently recorded first."""
    where = [] if clinical_status is None else [Condition.clinical_status == clinical_status]
    where = [*where, *criteria_clauses(criteria, CONDITION_COLUMNS)]
    return await list_entries(
        uows=uows,
        actor=actor,
        model=Condition,
        noun="condition",
        patient_id=patient_id,
        where=where,
        limit=limit,
        cursor=cursor,
        descending=not (criteria and criteria.oldest_first),
    )


async def update_condition(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    condition_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Condition:
    def revise(current: ConditionFields, changes: Mapping[str, Any], now: datetime) -> Any:
        updated = _condition_normalised(merge(current, changes, CONDITION_UPDATABLE))
        raise_invalid(condition_problems(updated, now))
        return updated

    row: Condition = await update_entry(
        uows=uows,
        actor=actor,
        model=Condition,
        read=lambda row: fields_of(ConditionFields, row),
        noun="condition",
        resource_type="Condition",
        patient_id=patient_id,
        row_id=condition_id,
        changes=changes,
        expected_version=expected_version,
        revise=revise,
    )
    return row
