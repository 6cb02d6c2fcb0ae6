"""What the record hands to a de-identified research export, inside the caller's unit of work:
which patients have entries matching the export's criteria, and, for the patients the caller
has decided to include, sex, birth date and the selected entries' codes, values, statuses and
dates — never names, identifiers, contact details, free text (notes, displays, text values,
reasons) or entry ids.

No audit entry and no commit: the caller (interop's research export) checks each patient's
research consent, de-identifies, audits the export and commits — like ``decision_reads``.
Every query is scoped to the actor's organization (and by row-level security on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import (
    Condition,
    MedicationStatement,
    Observation,
    Patient,
    Prescription,
)
from clinicos.records.services.common import Cells
from clinicos.records.services.terminology import ATC, LOINC, RXNORM, plain_decimal

# Rows that are not facts about the patient: a mistaken entry, an order never issued.
ENTERED_IN_ERROR = "entered-in-error"
# Bind parameters per IN list: well under SQLite's historical 999-variable limit.
CHUNK = 500


@dataclass(frozen=True)
class ResearchCriteria:
    """What an export selects. ``observation_codes``: LOINC codes (none: no observations);
    ``anticoagulant_rxnorm``/``anticoagulant_atc_prefixes``: which prescriptions count (none:
    no prescriptions); ``start``/``end``: the window on each entry's clinical date, ``start``
    inclusive, ``end`` exclusive (None: unbounded)."""

    observation_codes: tuple[str, ...] = ()
    conditions: bool = False
    medications: bool = False
    anticoagulant_rxnorm: tuple[str, ...] = ()
    anticoagulant_atc_prefixes: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None

    @property
    def prescriptions(self) -> bool:
        return bool(self.anticoagulant_rxnorm or self.anticoagulant_atc_prefixes)


@dataclass(frozen=True)
class ResearchObservation:
    category: str
    code: str
    status: str
    value: Decimal | None
    unit: str | None
    components: tuple[tuple[str, Decimal | None, str | None], ...]
    effective_at: datetime


@dataclass(frozen=True)
class ResearchCondition:
    icd10_code: str | None
    snomed_code: str | None
    clinical_status: str
    verification_status: str
    onset_date: date | None
    abatement_date: date | None
    recorded_at: datetime


@dataclass(frozen=True)
class ResearchMedication:
    """A medication-list entry (``started``/``ended``: its effective period) or a prescription
    (``started``: when issued, else written; ``ended``: when completed or cancelled)."""

    code_system: str
    code: str
    status: str
    dose: Decimal | None
    dose_unit: str | None
    frequency: str | None
    route: str | None
    started: date | datetime
    ended: date | datetime | None
    indication: str | None = None


@dataclass(frozen=True)
class ResearchSubject:
    """One patient's data for research: still identified by ``patient_id`` (the caller
    replaces it with a pseudonym) and with the exact birth date (the caller coarsens it)."""

    patient_id: str
    sex: str
    birth_date: date | None
    observations: list[ResearchObservation] = field(default_factory=list)
    conditions: list[ResearchCondition] = field(default_factory=list)
    medications: list[ResearchMedication] = field(default_factory=list)
    prescriptions: list[ResearchMedication] = field(default_factory=list)


@dataclass(frozen=True)
class ResearchRows:
    """The subjects read, in the order asked; ``overflow`` when more than ``max_rows`` entries
    matched (the read stopped: the caller refuses rather than send a partial dataset)."""

    subjects: list[ResearchSubject]
    overflow: bool


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _in_window(
    when: Any, fallback: Any | None, criteria: ResearchCriteria, *, is_datetime: bool
) -> ColumnElement[bool] | None:
    """``when`` (else ``fallback``, a datetime, when ``when`` is null) inside the window."""
    if criteria.start is None and criteria.end is None:
        return None

    def bounded(column: Any, as_datetime: bool) -> ColumnElement[bool]:
        parts = []
        if criteria.start is not None:
            start = _midnight(criteria.start) if as_datetime else criteria.start
            parts.append(column >= start)
        if criteria.end is not None:
            end = _midnight(criteria.end) if as_datetime else criteria.end
            parts.append(column < end)
        return and_(*parts)

    primary = bounded(when, is_datetime)
    if fallback is None:
        return primary
    return or_(
        and_(when.is_not(None), primary), and_(when.is_(None), bounded(fallback, as_datetime=True))
    )


def _anticoagulant(criteria: ResearchCriteria) -> ColumnElement[bool]:
    matches: list[ColumnElement[bool]] = []
    if criteria.anticoagulant_rxnorm:
        matches.append(
            and_(
                Prescription.code_system == RXNORM,
                Prescription.code.in_(criteria.anticoagulant_rxnorm),
            )
        )
    matches += [
        and_(Prescription.code_system == ATC, Prescription.code.startswith(prefix))
        for prefix in criteria.anticoagulant_atc_prefixes
    ]
    return or_(*matches)


def _filters(criteria: ResearchCriteria) -> list[tuple[Any, list[ColumnElement[bool]]]]:
    """Per selected table, the conditions an entry must meet (besides tenant and patient)."""
    selected: list[tuple[Any, list[ColumnElement[bool]]]] = []

    def add(model: Any, conditions: list[Any]) -> None:
        selected.append((model, [c for c in conditions if c is not None]))

    if criteria.observation_codes:
        add(
            Observation,
            [
                Observation.code_system == LOINC,
                Observation.code.in_(criteria.observation_codes),
                Observation.status != ENTERED_IN_ERROR,
                _in_window(Observation.effective_at, None, criteria, is_datetime=True),
            ],
        )
    if criteria.conditions:
        add(
            Condition,
            [
                Condition.verification_status != ENTERED_IN_ERROR,
                _in_window(Condition.onset_date, Condition.created_at, criteria, is_datetime=False),
            ],
        )
    if criteria.medications:
        add(
            MedicationStatement,
            [
                MedicationStatement.status != ENTERED_IN_ERROR,
                _in_window(
                    MedicationStatement.effective_start,
                    MedicationStatement.created_at,
                    criteria,
                    is_datetime=False,
                ),
            ],
        )
    if criteria.prescriptions:
        add(
            Prescription,
            [
                _anticoagulant(criteria),
                Prescription.status != "draft",
                _in_window(
                    Prescription.issued_at, Prescription.created_at, criteria, is_datetime=True
                ),
            ],
        )
    return selected


async def research_candidates(
    uow: SqlUnitOfWork, actor: Actor, criteria: ResearchCriteria, *, limit: int
) -> list[str]:
    """Ids of the organization's patients with at least one entry the criteria select, in id
    order, at most ``limit`` + 1 (so the caller can tell it is over its limit). Reads no PHI."""
    found: set[str] = set()
    for model, conditions in _filters(criteria):
        rows = await uow.session.scalars(
            select(model.patient_id)
            .where(model.organization_id == actor.organization_id, *conditions)
            .distinct()
            .order_by(model.patient_id)
            .limit(limit + 1)
        )
        found.update(rows)
    return sorted(found)[: limit + 1]


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _observation(row: Observation) -> ResearchObservation:
    components = tuple(
        (
            str(c.get("code")),
            plain_decimal(Decimal(str(c["value"]))) if c.get("value") is not None else None,
            c.get("unit"),
        )
        for c in row.components or ()
    )
    return ResearchObservation(
        category=row.category,
        code=row.code,
        status=row.status,
        value=plain_decimal(row.value),
        unit=row.unit,
        components=components,
        effective_at=row.effective_at,
    )


def _condition(row: Condition) -> ResearchCondition:
    return ResearchCondition(
        icd10_code=row.icd10_code,
        snomed_code=row.snomed_code,
        clinical_status=row.clinical_status,
        verification_status=row.verification_status,
        onset_date=row.onset_date,
        abatement_date=row.abatement_date,
        recorded_at=row.created_at,
    )


def _medication(row: MedicationStatement) -> ResearchMedication:
    return ResearchMedication(
        code_system=row.code_system,
        code=row.code,
        status=row.status,
        dose=plain_decimal(row.dose),
        dose_unit=row.dose_unit,
        frequency=row.frequency,
        route=row.route,
        started=row.effective_start or row.created_at,
        ended=row.effective_end,
    )


def _prescription(row: Prescription) -> ResearchMedication:
    return ResearchMedication(
        code_system=row.code_system,
        code=row.code,
        status=row.status,
        dose=plain_decimal(row.dose),
        dose_unit=row.dose_unit,
        frequency=row.frequency,
        route=row.route,
        started=row.issued_at or row.created_at,
        ended=row.ended_at,
        indication=row.indication,
    )


_READERS: dict[Any, tuple[str, Any]] = {
    Observation: ("observations", _observation),
    Condition: ("conditions", _condition),
    MedicationStatement: ("medications", _medication),
    Prescription: ("prescriptions", _prescription),
}


async def research_rows(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    patient_ids: Sequence[str],
    criteria: ResearchCriteria,
    *,
    max_rows: int,
) -> ResearchRows:
    """Sex, birth date and the selected entries of the given patients of the actor's
    organization (ids of other organizations are left out), oldest entry first. Decrypts only
    the birth date. Stops and flags ``overflow`` past ``max_rows`` entries."""
    subjects: dict[str, ResearchSubject] = {}
    for chunk in _chunks(patient_ids):
        rows = await uow.session.execute(
            select(Patient.id, Patient.organization_id, Patient.sex, Patient.birth_date).where(
                Patient.organization_id == actor.organization_id, Patient.id.in_(chunk)
            )
        )
        for row in rows:
            cells = Cells(phi, organization_id=row.organization_id, table="patient", row_id=row.id)
            birth = cells.open("birth_date", row.birth_date)
            subjects[row.id] = ResearchSubject(
                patient_id=row.id,
                sex=row.sex,
                birth_date=date.fromisoformat(birth) if birth else None,
            )
    read = 0
    ids = [i for i in patient_ids if i in subjects]
    for model, conditions in _filters(criteria):
        name, convert = _READERS[model]
        for chunk in _chunks(ids):
            found = await uow.session.scalars(
                select(model)
                .where(
                    model.organization_id == actor.organization_id,
                    model.patient_id.in_(chunk),
                    *conditions,
                )
                .order_by(model.patient_id, model.created_at, model.id)
                .limit(max_rows - read + 1)
            )
            for entry in found:
                read += 1
                if read > max_rows:
                    return ResearchRows(subjects=[], overflow=True)
                getattr(subjects[entry.patient_id], name).append(convert(entry))
    return ResearchRows(subjects=[subjects[i] for i in ids], overflow=False)


__all__ = [
    "ResearchCondition",
    "ResearchCriteria",
    "ResearchMedication",
    "ResearchObservation",
    "ResearchRows",
    "ResearchSubject",
    "research_candidates",
    "research_rows",
]
