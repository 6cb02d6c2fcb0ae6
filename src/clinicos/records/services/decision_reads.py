"""What decision support reads of a patient's record inside *its own* unit of work: the
patient's sex and birth date, what the patient takes now and the conditions the patient has
now (with :func:`~clinicos.records.services.clinical.latest_observations` for weight and
creatinine).

These write no audit entry and open no transaction: a check reads everything in the
transaction that records its evaluation (the prescribing gate runs inside the issuing one) and
writes the one audit entry for that access itself. Every query is scoped to the actor's
organization (and by row-level security on PostgreSQL); another organization's patient is the
generic 404."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.models import Condition, MedicationStatement, Prescription
from clinicos.records.services.common import Cells, load_patient

# FHIR Condition.clinicalStatus values that mean "the patient has it now".
ACTIVE_CLINICAL_STATUSES = ("active", "recurrence", "relapse")
# A refuted or mistaken diagnosis is not a fact about the patient.
DISCARDED_VERIFICATION = ("refuted", "entered-in-error")


@dataclass(frozen=True)
class Demographics:
    """The patient's sex as recorded and birth date (decrypted; None when not recorded)."""

    patient_id: str
    sex: str
    birth_date: date | None


@dataclass(frozen=True)
class MedicationEntry:
    """An active entry of the medication list (``source`` ``medication_statement``) or an
    active prescription (``prescription``): its coding and name, as recorded."""

    entry_id: str
    source: str
    code_system: str
    code: str
    display: str


@dataclass(frozen=True)
class ConditionEntry:
    """A condition the patient has now (clinical status active, recurrence or relapse)."""

    entry_id: str
    icd10_code: str | None
    snomed_code: str | None


async def patient_demographics(
    uow: SqlUnitOfWork, phi: PhiKeyring, actor: Actor, patient_id: str
) -> Demographics:
    """The actor's organization's patient's sex and birth date, or ``PatientNotFound``."""
    patient = await load_patient(uow, actor, patient_id)
    birth = Cells.of(phi, patient).open("birth_date", patient.birth_date)
    return Demographics(
        patient_id=patient.id,
        sex=patient.sex,
        birth_date=date.fromisoformat(birth) if birth else None,
    )


async def active_medications(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str
) -> tuple[MedicationEntry, ...]:
    """What the patient takes now: active medication-list entries and active prescriptions.

    Both, because an issued prescription adds its own list entry but an imported active one
    does not (``add_prescription``): missing it would hide a duplicate anticoagulant."""
    found: list[MedicationEntry] = []
    for source, model in (
        ("medication_statement", MedicationStatement),
        ("prescription", Prescription),
    ):
        rows = await uow.session.execute(
            select(model.id, model.code_system, model.code, model.display)
            .where(
                model.organization_id == actor.organization_id,
                model.patient_id == patient_id,
                model.status == "active",
            )
            .order_by(model.id)
        )
        found.extend(
            MedicationEntry(
                entry_id=r.id,
                source=source,
                code_system=r.code_system,
                code=r.code,
                display=r.display,
            )
            for r in rows
        )
    return tuple(found)


async def active_conditions(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str
) -> tuple[ConditionEntry, ...]:
    """Conditions the patient has now and that were not refuted or entered in error.

    Unconfirmed, provisional and differential diagnoses count: a suspected bleed or pregnancy
    should stop an order for review, not pass silently (the clinician can override)."""
    rows = await uow.session.execute(
        select(Condition.id, Condition.icd10_code, Condition.snomed_code)
        .where(
            Condition.organization_id == actor.organization_id,
            Condition.patient_id == patient_id,
            Condition.clinical_status.in_(ACTIVE_CLINICAL_STATUSES),
            Condition.verification_status.not_in(DISCARDED_VERIFICATION),
        )
        .order_by(Condition.id)
    )
    return tuple(
        ConditionEntry(entry_id=r.id, icd10_code=r.icd10_code, snomed_code=r.snomed_code)
        for r in rows
    )
