"""FHIR ``AllergyIntolerance`` ↔ the record's allergy.

``code`` (its first RxNorm, SNOMED CT or ATC coding), ``clinicalStatus``,
``verificationStatus``, the first ``category``, ``criticality`` and the first reaction's first
manifestation (as text). Other elements (type, onset, reaction severity, notes) are not
stored; ``recordedDate`` is when the entry was recorded here."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance as FhirAllergy

from clinicos.interop.fhir.base import (
    Resolver,
    concept,
    concept_code,
    fhir_instant,
    meta,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.entry_resource import EntryResource, EntryUseCases
from clinicos.interop.fhir.outcome import invalid
from clinicos.records import (
    ALLERGY_CODE_SYSTEMS,
    AllergyFields,
    add_allergy,
    get_allergy,
    list_allergies,
    record_allergy,
    update_allergy,
)

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
PATHS = {
    "code_system": "AllergyIntolerance.code",
    "code": "AllergyIntolerance.code",
    "display": "AllergyIntolerance.code",
    "category": "AllergyIntolerance.category",
    "clinical_status": "AllergyIntolerance.clinicalStatus",
    "verification_status": "AllergyIntolerance.verificationStatus",
    "criticality": "AllergyIntolerance.criticality",
    "reaction": "AllergyIntolerance.reaction[0].manifestation",
}


def to_fhir(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": row.id,
        "meta": meta(row.version, row.updated_at),
        "clinicalStatus": concept(CLINICAL, row.clinical_status),
        "verificationStatus": concept(VERIFICATION, row.verification_status),
        "code": concept(row.code_system, row.code, row.display),
        "patient": {"reference": f"Patient/{row.patient_id}"},
        "recordedDate": fhir_instant(row.created_at),
    }
    if row.display:
        resource["code"]["text"] = row.display
    if row.category:
        resource["category"] = [row.category]
    if row.criticality:
        resource["criticality"] = row.criticality
    if row.reaction:
        resource["reaction"] = [{"manifestation": [{"text": row.reaction}]}]
    return resource


def _reaction(allergy: FhirAllergy) -> str | None:
    for reaction in allergy.reaction or []:
        for manifestation in reaction.manifestation or []:
            text = manifestation.text or next(
                (c.display for c in manifestation.coding or [] if c.display), None
            )
            if text:
                return str(text)[:200]
    return None


def from_fhir(data: Any, resolver: Resolver | None = None) -> tuple[str, AllergyFields]:
    allergy = validate_model(FhirAllergy, "AllergyIntolerance", data)
    patient_id = reference_id(
        allergy.patient.reference if allergy.patient else None,
        "Patient",
        "AllergyIntolerance.patient",
        resolver,
    )
    chosen = None
    for entry in (allergy.code.coding or []) if allergy.code else []:
        if entry.system in ALLERGY_CODE_SYSTEMS and entry.code:
            chosen = entry
            break
    if chosen is None:
        raise invalid(
            "AllergyIntolerance.code.coding", "an RxNorm, SNOMED CT or ATC coding is required"
        )
    display = (allergy.code.text if allergy.code else None) or chosen.display
    return patient_id, AllergyFields(
        code_system=str(chosen.system),
        code=str(chosen.code),
        display=display and str(display)[:200],
        category=(allergy.category or [None])[0],  # type: ignore[arg-type]
        clinical_status=concept_code(allergy.clinicalStatus) or "active",  # type: ignore[arg-type]
        verification_status=concept_code(allergy.verificationStatus) or "confirmed",  # type: ignore[arg-type]
        criticality=allergy.criticality,  # type: ignore[arg-type]
        reaction=_reaction(allergy),
    )


ALLERGY_INTOLERANCE = EntryResource(
    name="AllergyIntolerance",
    kind="allergy",
    subject="patient",
    search_parameters=("patient", "code", "clinical-status", "date"),
    to_fhir=to_fhir,
    from_fhir=from_fhir,
    paths=PATHS,
    use_cases=EntryUseCases(
        get=get_allergy,
        list=list_allergies,
        record=record_allergy,
        update=update_allergy,
        add=add_allergy,
        id_arg="allergy_id",
    ),
)
