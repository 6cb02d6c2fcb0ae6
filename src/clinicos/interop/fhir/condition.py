"""FHIR ``Condition`` ↔ the record's condition.

``clinicalStatus`` and ``verificationStatus`` (their first codes), ``code`` (the ICD-10 and/or
SNOMED CT codings; at least one), ``onset[x]`` and ``abatement[x]`` (dateTime or a period's
start, as a day), ``encounter``. Other elements (severity, body site, stage, evidence, notes)
are not stored."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.condition import Condition as FhirCondition

from clinicos.interop.fhir.base import (
    Resolver,
    coding,
    concept,
    concept_code,
    day_of,
    meta,
    optional_reference,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.entry_resource import EntryResource, EntryUseCases
from clinicos.interop.fhir.outcome import invalid
from clinicos.records import (
    ConditionFields,
    add_condition,
    get_condition,
    list_conditions,
    record_condition,
    update_condition,
)

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_SYSTEMS = (ICD10, "http://hl7.org/fhir/sid/icd-10-cm")
SNOMED = "http://snomed.info/sct"
PATHS = {
    "clinical_status": "Condition.clinicalStatus",
    "verification_status": "Condition.verificationStatus",
    "icd10_code": "Condition.code",
    "snomed_code": "Condition.code",
    "display": "Condition.code",
    "onset_date": "Condition.onsetDateTime",
    "abatement_date": "Condition.abatementDateTime",
    "encounter_id": "Condition.encounter",
}


def to_fhir(row: Any) -> dict[str, Any]:
    codings = []
    if row.icd10_code:
        codings.append(coding(ICD10, row.icd10_code, row.display))
    if row.snomed_code:
        codings.append(coding(SNOMED, row.snomed_code, row.display))
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": row.id,
        "meta": meta(row.version, row.updated_at),
        "clinicalStatus": concept(CLINICAL, row.clinical_status),
        "verificationStatus": concept(VERIFICATION, row.verification_status),
        "code": {"coding": codings, **({"text": row.display} if row.display else {})},
        "subject": {"reference": f"Patient/{row.patient_id}"},
    }
    if row.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    if row.onset_date is not None:
        resource["onsetDateTime"] = row.onset_date.isoformat()
    if row.abatement_date is not None:
        resource["abatementDateTime"] = row.abatement_date.isoformat()
    return resource


def _when(condition: FhirCondition, element: str) -> Any:
    moment = getattr(condition, f"{element}DateTime")
    if moment is not None:
        return day_of(moment, f"Condition.{element}DateTime")
    period = getattr(condition, f"{element}Period")
    if period is not None and period.start is not None:
        return day_of(period.start, f"Condition.{element}Period.start")
    return None


def from_fhir(data: Any, resolver: Resolver | None = None) -> tuple[str, ConditionFields]:
    condition = validate_model(FhirCondition, "Condition", data)
    patient_id = reference_id(
        condition.subject.reference if condition.subject else None,
        "Patient",
        "Condition.subject",
        resolver,
    )
    icd10 = snomed = display = None
    for entry in (condition.code.coding or []) if condition.code else []:
        if entry.system in ICD10_SYSTEMS and entry.code and icd10 is None:
            icd10, display = entry.code, display or entry.display
        elif entry.system == SNOMED and entry.code and snomed is None:
            snomed, display = entry.code, display or entry.display
    if icd10 is None and snomed is None:
        raise invalid("Condition.code.coding", "an ICD-10 or SNOMED CT coding is required")
    display = (condition.code.text if condition.code else None) or display
    clinical = concept_code(condition.clinicalStatus)
    if clinical is None:
        raise invalid("Condition.clinicalStatus", "the clinical status is required")
    verification = concept_code(condition.verificationStatus) or "confirmed"
    return (
        patient_id,
        ConditionFields(
            clinical_status=clinical,  # type: ignore[arg-type]
            verification_status=verification,  # type: ignore[arg-type]
            icd10_code=icd10,
            snomed_code=snomed,
            display=display and display[:200],
            onset_date=_when(condition, "onset"),
            abatement_date=_when(condition, "abatement"),
            encounter_id=optional_reference(
                condition.encounter, "Encounter", "Condition.encounter", resolver
            ),
        ),
    )


CONDITION = EntryResource(
    name="Condition",
    kind="condition",
    subject="subject",
    search_parameters=("patient", "subject", "code", "clinical-status", "date"),
    to_fhir=to_fhir,
    from_fhir=from_fhir,
    paths=PATHS,
    use_cases=EntryUseCases(
        get=get_condition,
        list=list_conditions,
        record=record_condition,
        update=update_condition,
        add=add_condition,
        id_arg="condition_id",
    ),
)
