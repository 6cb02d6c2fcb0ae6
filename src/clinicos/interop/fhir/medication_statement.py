"""FHIR ``MedicationStatement`` ↔ an entry of the patient's medication list.

``status`` (active, completed, stopped, on-hold, entered-in-error), the drug, the first
``dosage``, ``effectivePeriod`` (or ``effectiveDateTime``) as the days it was started and
ended. An entry created by issuing a prescription points to it with ``basedOn``."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationstatement import (
    MedicationStatement as FhirMedicationStatement,
)

from clinicos.interop.fhir.base import (
    Resolver,
    day_of,
    meta,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.entry_resource import EntryResource, EntryUseCases
from clinicos.interop.fhir.medication import dosage_json, dosage_of, drug_of, medication_json
from clinicos.interop.fhir.outcome import invalid
from clinicos.records import (
    StatementFields,
    add_medication_statement,
    get_medication,
    list_medications,
    record_medication,
    update_medication,
)

PATHS = {
    "status": "MedicationStatement.status",
    "code_system": "MedicationStatement.medicationCodeableConcept",
    "code": "MedicationStatement.medicationCodeableConcept",
    "display": "MedicationStatement.medicationCodeableConcept",
    "dose": "MedicationStatement.dosage[0].doseAndRate[0].doseQuantity.value",
    "dose_unit": "MedicationStatement.dosage[0].doseAndRate[0].doseQuantity.code",
    "frequency": "MedicationStatement.dosage[0].timing",
    "route": "MedicationStatement.dosage[0].route",
    "effective_start": "MedicationStatement.effectivePeriod.start",
    "effective_end": "MedicationStatement.effectivePeriod.end",
}


def to_fhir(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": row.id,
        "meta": meta(row.version, row.updated_at),
        "status": row.status,
        "medicationCodeableConcept": medication_json(row),
        "subject": {"reference": f"Patient/{row.patient_id}"},
    }
    period = {
        key: day.isoformat()
        for key, day in (("start", row.effective_start), ("end", row.effective_end))
        if day is not None
    }
    if period:
        resource["effectivePeriod"] = period
    if row.source_prescription_id:
        resource["basedOn"] = [{"reference": f"MedicationRequest/{row.source_prescription_id}"}]
    dosage = dosage_json(row)
    if dosage:
        resource["dosage"] = dosage
    return resource


def from_fhir(data: Any, resolver: Resolver | None = None) -> tuple[str, StatementFields]:
    statement = validate_model(FhirMedicationStatement, "MedicationStatement", data)
    patient_id = reference_id(
        statement.subject.reference if statement.subject else None,
        "Patient",
        "MedicationStatement.subject",
        resolver,
    )
    if statement.medicationReference is not None:
        raise invalid(
            "MedicationStatement.medicationReference",
            "send the drug as medicationCodeableConcept (Medication resources are not stored)",
        )
    system, code, display = drug_of(
        statement.medicationCodeableConcept, "MedicationStatement.medicationCodeableConcept"
    )
    start = end = None
    if statement.effectivePeriod is not None:
        start = day_of(statement.effectivePeriod.start, "MedicationStatement.effectivePeriod.start")
        end = day_of(statement.effectivePeriod.end, "MedicationStatement.effectivePeriod.end")
    elif statement.effectiveDateTime is not None:
        start = day_of(statement.effectiveDateTime, "MedicationStatement.effectiveDateTime")
    dosage = dosage_of(
        statement.dosage[0] if statement.dosage else None, "MedicationStatement.dosage[0]"
    )
    return patient_id, StatementFields(
        code_system=system,
        code=code,
        display=display,
        status=statement.status,  # type: ignore[arg-type]
        effective_start=start,
        effective_end=end,
        **dosage,
    )


MEDICATION_STATEMENT = EntryResource(
    name="MedicationStatement",
    kind="medication_statement",
    subject="subject",
    search_parameters=("patient", "subject", "code", "status", "date"),
    to_fhir=to_fhir,
    from_fhir=from_fhir,
    paths=PATHS,
    use_cases=EntryUseCases(
        get=get_medication,
        list=list_medications,
        record=record_medication,
        update=update_medication,
        add=add_medication_statement,
        id_arg="medication_id",
    ),
)
