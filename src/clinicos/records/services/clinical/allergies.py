"""Allergy use cases (FHIR ``AllergyIntolerance``; substance in RxNorm, SNOMED CT or ATC):
record, read, list, update."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import Allergy
from clinicos.records.services.common import UnitOfWorkFor
from clinicos.records.services.entries import (
    EntryColumns,
    EntryCriteria,
    EntryPage,
    add_entry,
    coded_as,
    criteria_clauses,
    fields_of,
    list_entries,
    merge,
    raise_invalid,
    read_entry,
    update_entry,
)
from clinicos.records.services.terminology import ATC, RXNORM, SNOMED, code_problem

AllergyClinicalStatus = Literal["active", "inactive", "resolved"]
AllergyVerificationStatus = Literal[
    "unconfirmed", "presumed", "confirmed", "refuted", "entered-in-error"
]
AllergyCategory = Literal["food", "medication", "environment", "biologic"]
Criticality = Literal["low", "high", "unable-to-assess"]
ALLERGY_CODE_SYSTEMS = (RXNORM, SNOMED, ATC)


@dataclass(frozen=True, kw_only=True)
class AllergyFields:
    """An allergy or intolerance to a substance coded in RxNorm, SNOMED CT or ATC."""

    code_system: str
    code: str
    display: str | None = None
    category: AllergyCategory | None = None
    clinical_status: AllergyClinicalStatus = "active"
    verification_status: AllergyVerificationStatus = "confirmed"
    criticality: Criticality | None = None
    reaction: str | None = None


ALLERGY_UPDATABLE = (
    "display",
    "category",
    "clinical_status",
    "verification_status",
    "criticality",
    "reaction",
)


def allergy_problems(values: AllergyFields, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    if values.code_system not in ALLERGY_CODE_SYSTEMS:
        errors.append(FieldError(("code_system",), f"one of {list(ALLERGY_CODE_SYSTEMS)}", "enum"))
    else:
        problem = code_problem(values.code_system, values.code)
        if problem is not None:
            errors.append(problem)
    checks: list[tuple[str, Any, bool]] = [
        ("category", AllergyCategory, True),
        ("clinical_status", AllergyClinicalStatus, False),
        ("verification_status", AllergyVerificationStatus, False),
        ("criticality", Criticality, True),
    ]
    for field, vocabulary, optional in checks:
        value = getattr(values, field)
        if not (optional and value is None) and value not in get_args(vocabulary):
            errors.append(FieldError((field,), f"one of {list(get_args(vocabulary))}", "enum"))
    return errors


# FHIR AllergyIntolerance search: ``date`` is when it was recorded.
ALLERGY_COLUMNS = EntryColumns(
    code=coded_as(Allergy.code_system, Allergy.code),
    clinical_status=Allergy.clinical_status,
    date=Allergy.created_at,
)


async def record_allergy(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str, values: AllergyFields
) -> Allergy:
    async with uows(actor.organization_id) as uow:
        row = await add_allergy(uow, phi, actor, patient_id=patient_id, values=values)
        await uow.commit()
    return row


async def add_allergy(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    values: AllergyFields,
    row_id: str | None = None,
) -> Allergy:
    """Record an allergy inside the caller's unit of work: row, audit entry, event."""
    row: Allergy = await add_entry(
        uow,
        actor,
        model=Allergy,
        noun="allergy",
        resource_type="AllergyIntolerance",
        patient_id=patient_id,
        values=values,
        problems=allergy_problems,
        row_id=row_id,
    )
    return row


async def get_allergy(
    *, uows: UnitOfWorkFor, actor: Actor, patient_id: str, allergy_id: str
) -> Allergy:
    row: Allergy = await read_entry(
        uows=uows,
        actor=actor,
        model=Allergy,
        noun="allergy",
        patient_id=patient_id,
        row_id=allergy_id,
    )
    return row


async def list_allergies(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    clinical_status: str | None = None,
    criteria: EntryCriteria | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> EntryPage:
    where = [] if clinical_status is None else [Allergy.clinical_status == clinical_status]
    where = [*where, *criteria_clauses(criteria, ALLERGY_COLUMNS)]
    return await list_entries(
        uows=uows,
        actor=actor,
        model=Allergy,
        noun="allergy",
        patient_id=patient_id,
        where=where,
        limit=limit,
        cursor=cursor,
        descending=not (criteria and criteria.oldest_first),
    )


async def update_allergy(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    allergy_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Allergy:
    def revise(current: AllergyFields, changes: Mapping[str, Any], now: datetime) -> Any:
        updated = merge(current, changes, ALLERGY_UPDATABLE)
        raise_invalid(allergy_problems(updated, now))
        return updated

    row: Allergy = await update_entry(
        uows=uows,
        actor=actor,
        model=Allergy,
        read=lambda row: fields_of(AllergyFields, row),
        noun="allergy",
        resource_type="AllergyIntolerance",
        patient_id=patient_id,
        row_id=allergy_id,
        changes=changes,
        expected_version=expected_version,
        revise=revise,
    )
    return row
