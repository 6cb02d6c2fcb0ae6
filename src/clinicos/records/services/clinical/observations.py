"""Observation use cases: record, read, list, update, and the newest usable result per code
(:func:`latest_observations`, what decision support reads)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import Observation
from clinicos.records.services.clinical.observation_rules import (
    RELEASED,
    Component,
    ObservationFields,
    next_status,
    normalise_observation,
    observation_problems,
)
from clinicos.records.services.common import UnitOfWorkFor
from clinicos.records.services.entries import (
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
    of_patient,
    raise_invalid,
    read_entry,
    update_entry,
)
from clinicos.records.services.terminology import LOINC

OBSERVATION_UPDATABLE = (
    "status",
    "display",
    "value",
    "unit",
    "value_text",
    "components",
    "issued_at",
)


OBSERVATION_COLUMNS = EntryColumns(
    code=coded_as(Observation.code_system, Observation.code),
    status=Observation.status,
    date=Observation.effective_at,
)


@dataclass(frozen=True)
class ObservationFilter:
    code: str | None = None
    category: str | None = None
    effective_from: datetime | None = None  # inclusive
    effective_to: datetime | None = None  # inclusive


@dataclass(frozen=True)
class LatestObservation:
    """The newest usable result of one code (what decision support's record mode reads)."""

    observation_id: str
    code: str
    status: str
    value: Decimal | None
    unit: str | None
    value_text: str | None
    components: tuple[Component, ...]
    effective_at: datetime
    issued_at: datetime | None


def observation_fields(row: Observation) -> ObservationFields:
    values: ObservationFields = fields_of(ObservationFields, row)
    components = tuple(Component.from_json(c) for c in row.components or ())
    return replace(values, components=components)


def _set_observation(row: Observation, values: ObservationFields) -> None:
    apply_fields(row, values, skip=("components",))
    row.components = [c.to_json() for c in values.components] or None


async def record_observation(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    values: ObservationFields,
) -> Observation:
    async with uows(actor.organization_id) as uow:
        row = await add_observation(uow, phi, actor, patient_id=patient_id, values=values)
        await uow.commit()
    return row


async def add_observation(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    values: ObservationFields,
    row_id: str | None = None,
) -> Observation:
    """Record an observation inside the caller's unit of work: row, audit entry, event."""
    row: Observation = await add_entry(
        uow,
        actor,
        model=Observation,
        noun="observation",
        resource_type="Observation",
        patient_id=patient_id,
        values=normalise_observation(values),
        problems=observation_problems,
        apply=_set_observation,
        row_id=row_id,
    )
    return row


async def get_observation(
    *, uows: UnitOfWorkFor, actor: Actor, patient_id: str, observation_id: str
) -> Observation:
    row: Observation = await read_entry(
        uows=uows,
        actor=actor,
        model=Observation,
        noun="observation",
        patient_id=patient_id,
        row_id=observation_id,
    )
    return row


async def list_observations(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    criteria: ObservationFilter | None = None,
    search: EntryCriteria | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> EntryPage:
    """A patient's observations, newest ``effective_at`` first (oldest first if ``search``
    says so); ``criteria`` is the JSON API's filter, ``search`` the FHIR facade's."""
    criteria = criteria or ObservationFilter()
    where: list[Any] = []
    if criteria.code is not None:
        where.append(Observation.code == criteria.code)
    if criteria.category is not None:
        where.append(Observation.category == criteria.category)
    if criteria.effective_from is not None:
        where.append(Observation.effective_at >= criteria.effective_from)
    if criteria.effective_to is not None:
        where.append(Observation.effective_at <= criteria.effective_to)
    where.extend(criteria_clauses(search, OBSERVATION_COLUMNS))
    return await list_entries(
        uows=uows,
        actor=actor,
        model=Observation,
        noun="observation",
        patient_id=patient_id,
        where=where,
        order_by=Observation.effective_at,
        limit=limit,
        cursor=cursor,
        descending=not (search and search.oldest_first),
    )


async def update_observation(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    observation_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Observation:
    """Change a result's status or value. A new value of a released result (final, amended,
    corrected) makes it ``amended`` unless the caller says ``corrected``; a status change must
    follow FHIR's Observation lifecycle (409 ``invalid_status_transition`` otherwise)."""

    def revise(current: ObservationFields, changes: Mapping[str, Any], now: datetime) -> Any:
        updated = normalise_observation(merge(current, changes, OBSERVATION_UPDATABLE))
        updated = replace(updated, status=next_status(current, updated, "status" in changes))
        raise_invalid(observation_problems(updated, now))
        return updated

    row: Observation = await update_entry(
        uows=uows,
        actor=actor,
        model=Observation,
        read=observation_fields,
        noun="observation",
        resource_type="Observation",
        patient_id=patient_id,
        row_id=observation_id,
        changes=changes,
        expected_version=expected_version,
        revise=revise,
        apply=_set_observation,
        describe=lambda old, new: new.status if new.status != old.status else "updated",
    )
    return row


async def latest_observations(
    uow: SqlUnitOfWork,
    actor: Actor,
    patient_id: str,
    codes: Iterable[str],
    *,
    code_system: str = LOINC,
) -> dict[str, LatestObservation]:
    """The newest released (final, amended, corrected) result per code, newest by
    ``effective_at`` — when measured, not when reported (terminology.md); a code without one
    is absent from the answer.

    Runs in the caller's unit of work and writes no audit entry: the calling use case (a
    decision-support check) audits its own access to the patient. Another organization's
    patient has no results here."""
    found: dict[str, LatestObservation] = {}
    for code in dict.fromkeys(codes):
        row = await uow.session.scalar(
            of_patient(Observation, actor, patient_id)
            .where(
                Observation.code_system == code_system,
                Observation.code == code,
                Observation.status.in_(RELEASED),
            )
            .order_by(Observation.effective_at.desc(), Observation.created_at.desc())
            .limit(1)
        )
        if row is not None:
            values = observation_fields(row)
            found[code] = LatestObservation(
                observation_id=row.id,
                code=row.code,
                status=row.status,
                value=values.value,
                unit=values.unit,
                value_text=values.value_text,
                components=values.components,
                effective_at=row.effective_at,
                issued_at=row.issued_at,
            )
    return found
