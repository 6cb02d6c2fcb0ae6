"""FHIR ``MedicationRequest`` ↔ a prescription.

``status`` draft | active | completed | cancelled (``stopped`` is stored as cancelled: ended
before it ran its course), the drug, the first ``dosageInstruction``, ``reasonCode`` as the
indication (for anticoagulants the decision-support key: our own code system, or the
atrial-fibrillation / DVT / PE codes of terminology.md), ``encounter`` and ``authoredOn``.
``intent`` is always ``order``; the prescriber is the member who wrote or issued it.

Safety: a create through the API is always a draft — an order becomes active only by issuing
it (``PUT`` with ``status: active``), which passes decision support's check. Only a
transaction (permission ``records:import``) may bring orders that are already active or ended
elsewhere; that records history and checks nothing (ADR 0014)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest as FhirMedicationRequest

from clinicos.identity import Permission
from clinicos.interop.fhir.base import (
    FhirContext,
    Resolver,
    coding,
    fhir_instant,
    instant,
    meta,
    optional_reference,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.entry_resource import EntryResource, EntryUseCases
from clinicos.interop.fhir.medication import dosage_json, dosage_of, drug_of, medication_json
from clinicos.interop.fhir.outcome import element_paths, invalid
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records import (
    PrescriptionFields,
    add_prescription,
    create_prescription,
    get_prescription,
    list_prescriptions,
    restate_prescription,
)

INDICATION_SYSTEM = "urn:clinicos:cs:anticoagulation-indication"
INDICATIONS = ("nvaf", "vte_treatment", "vte_prophylaxis")
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
SNOMED = "http://snomed.info/sct"
# terminology.md "Conditions and states" / "Anticoagulation indication": AF → nvaf; DVT
# (I82.4x, 128053003) and PE (I26.x, 59282003) → vte_treatment.
_ICD10_PREFIXES = (("I48", "nvaf"), ("I82.4", "vte_treatment"), ("I26", "vte_treatment"))
_SNOMED_INDICATIONS = {
    "49436004": "nvaf",
    "128053003": "vte_treatment",
    "59282003": "vte_treatment",
}
_STATUSES = {
    "draft": "draft",
    "active": "active",
    "completed": "completed",
    "cancelled": "cancelled",
    "stopped": "cancelled",
}
PATHS = {
    "status": "MedicationRequest.status",
    "code_system": "MedicationRequest.medicationCodeableConcept",
    "code": "MedicationRequest.medicationCodeableConcept",
    "display": "MedicationRequest.medicationCodeableConcept",
    "dose": "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.value",
    "dose_unit": "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.code",
    "frequency": "MedicationRequest.dosageInstruction[0].timing",
    "route": "MedicationRequest.dosageInstruction[0].route",
    "indication": "MedicationRequest.reasonCode",
    "encounter_id": "MedicationRequest.encounter",
    "issued_at": "MedicationRequest.authoredOn",
    "ended_at": "MedicationRequest.status",
}


def to_fhir(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": row.id,
        "meta": meta(row.version, row.updated_at),
        "status": row.status,
        "intent": "order",
        "medicationCodeableConcept": medication_json(row),
        "subject": {"reference": f"Patient/{row.patient_id}"},
        "authoredOn": fhir_instant(row.issued_at or row.created_at),
    }
    if row.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    if row.indication:
        resource["reasonCode"] = [
            {"coding": [coding(INDICATION_SYSTEM, row.indication)]}
            if row.indication in INDICATIONS
            else {"text": row.indication}
        ]
    dosage = dosage_json(row)
    if dosage:
        resource["dosageInstruction"] = dosage
    return resource


def _indication(request: FhirMedicationRequest) -> str | None:
    """The decision-support indication key if a reason maps to one, else the first reason's
    code or text as given."""
    fallback = None
    for reason in request.reasonCode or []:
        for entry in reason.coding or []:
            code = str(entry.code or "")
            if entry.system == INDICATION_SYSTEM and code in INDICATIONS:
                return code
            if entry.system in ICD10_SYSTEMS:
                for prefix, key in _ICD10_PREFIXES:
                    if code.upper().startswith(prefix):
                        return key
            if entry.system == SNOMED and code in _SNOMED_INDICATIONS:
                return _SNOMED_INDICATIONS[code]
            fallback = fallback or code or None
        fallback = fallback or reason.text
    return fallback and str(fallback)[:64]


def from_fhir(
    data: Any, resolver: Resolver | None = None
) -> tuple[str, str, PrescriptionFields, Any]:
    """``(patient id, status, fields, authoredOn)`` of a FHIR MedicationRequest."""
    request = validate_model(FhirMedicationRequest, "MedicationRequest", data)
    patient_id = reference_id(
        request.subject.reference if request.subject else None,
        "Patient",
        "MedicationRequest.subject",
        resolver,
    )
    status = _STATUSES.get(str(request.status))
    if status is None:
        raise invalid("MedicationRequest.status", f"one of {sorted(_STATUSES)}")
    if request.medicationReference is not None:
        raise invalid(
            "MedicationRequest.medicationReference",
            "send the drug as medicationCodeableConcept (Medication resources are not stored)",
        )
    system, code, display = drug_of(
        request.medicationCodeableConcept, "MedicationRequest.medicationCodeableConcept"
    )
    dosage = dosage_of(
        request.dosageInstruction[0] if request.dosageInstruction else None,
        "MedicationRequest.dosageInstruction[0]",
    )
    authored = (
        instant(request.authoredOn, "MedicationRequest.authoredOn") if request.authoredOn else None
    )
    fields = PrescriptionFields(
        code_system=system,
        code=code,
        display=display,
        indication=_indication(request),
        encounter_id=optional_reference(
            request.encounter, "Encounter", "MedicationRequest.encounter", resolver
        ),
        **dosage,
    )
    return patient_id, status, fields, authored


def _entry(data: Any, resolver: Resolver | None) -> tuple[str, PrescriptionFields]:
    patient_id, _status, values, _authored = from_fhir(data, resolver)
    return patient_id, values


class MedicationRequestResource(EntryResource):
    """Reads and searches like every entry; writes follow the prescription's lifecycle."""

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]:
        patient_id, status, values, _authored = from_fhir(resource)
        if status != "draft":
            raise invalid(
                "MedicationRequest.status",
                "create a draft, then issue it with PUT status 'active' (decision support "
                "checks it on the way)",
            )
        with element_paths(self.name, self.paths):
            row = await create_prescription(
                uows=ctx.uows, phi=ctx.phi, actor=ctx.actor, patient_id=patient_id, values=values
            )
        return to_fhir(row)

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]:
        """Edit a draft and/or move it along draft → active → completed | cancelled; issuing
        runs the prescription check (decision support) in the same transaction."""
        patient_id, status, values, _authored = from_fhir(resource)
        await self.same_patient(ctx, resource_id, patient_id)
        with element_paths(self.name, self.paths):
            row = await restate_prescription(
                uows=ctx.uows,
                phi=ctx.phi,
                actor=ctx.actor,
                patient_id=patient_id,
                prescription_id=resource_id,
                values=values,
                status=status,
                expected_version=version,
                check=ctx.prescription_check,
            )
        return to_fhir(row)

    async def add(
        self, uow: SqlUnitOfWork, ctx: FhirContext, resource: dict[str, Any], resolver: Resolver
    ) -> tuple[str, int]:
        """A transaction entry: a draft, or (import) an order as it stands elsewhere — active
        since ``authoredOn``, or ended."""
        patient_id, status, values, authored = from_fhir(resource, resolver)
        if status != "draft" and authored is None:
            raise invalid(
                "MedicationRequest.authoredOn", f"a {status} order says when it was issued"
            )
        with element_paths(self.name, self.paths):
            row = await add_prescription(
                uow,
                ctx.phi,
                ctx.actor,
                patient_id=patient_id,
                values=values,
                status=status,  # type: ignore[arg-type]
                issued_at=authored if status != "draft" else None,
            )
        return row.id, row.version


MEDICATION_REQUEST = MedicationRequestResource(
    name="MedicationRequest",
    kind="prescription",
    subject="subject",
    search_parameters=("patient", "subject", "code", "status", "date"),
    to_fhir=to_fhir,
    from_fhir=_entry,
    paths=PATHS,
    write_permission=Permission.prescription_write,
    use_cases=EntryUseCases(
        get=get_prescription,
        list=list_prescriptions,
        record=create_prescription,
        update=restate_prescription,
        add=add_prescription,
        id_arg="prescription_id",
    ),
)
