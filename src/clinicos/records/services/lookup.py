"""Which patient an entry belongs to — for interfaces that address entries by id alone (FHIR
``/fhir/Observation/{id}``) and then call the patient-scoped use cases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records.errors import RecordNotFound
from clinicos.records.models import (
    Allergy,
    ClinicalNote,
    Condition,
    Encounter,
    MedicationStatement,
    Observation,
    Prescription,
)
from clinicos.records.services.common import UnitOfWorkFor, load_patient

ENTRY_MODELS: dict[str, Any] = {
    "encounter": Encounter,
    "note": ClinicalNote,
    "observation": Observation,
    "condition": Condition,
    "allergy": Allergy,
    "medication_statement": MedicationStatement,
    "prescription": Prescription,
}


async def patient_of_entry(*, uows: UnitOfWorkFor, actor: Actor, kind: str, entry_id: str) -> str:
    """The patient id of one entry of the actor's organization; 404 (the generic not-found,
    as for a missing id) when the entry is another tenant's or does not exist. Reads no PHI,
    so it writes no audit row: the use case called next does."""
    model = ENTRY_MODELS[kind]
    async with uows(actor.organization_id) as uow:
        patient_id = await uow.session.scalar(
            select(model.patient_id).where(
                model.id == entry_id, model.organization_id == actor.organization_id
            )
        )
    if patient_id is None:
        raise RecordNotFound(f"no such {kind.replace('_', ' ')}")
    return str(patient_id)


async def require_patient(uow: SqlUnitOfWork, actor: Actor, patient_id: str) -> None:
    """404 (``PatientNotFound``) unless the patient is the actor's organization's — for other
    contexts that keep rows about a patient by id (consent) and must not keep them about
    nobody. In the caller's unit of work; no audit row (the caller audits its use case)."""
    await load_patient(uow, actor, patient_id)
