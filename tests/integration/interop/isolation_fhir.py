"""Tenant-isolation cases for the FHIR facade's id routes (merged into the identity suite)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.records.isolation_clinical import ID_PARAMS, entry_in_a, left_alone
from tests.integration.records.isolation_notes import create_encounter, encounter_unchanged
from tests.integration.records.isolation_patients import patient_in_a, patient_unchanged
from tests.support.isolation import IdRouteCase, ObjectIds, World, member_of
from tests.support.records_fixtures import create_patient


def _patient_body(ids: ObjectIds) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": ids if isinstance(ids, str) else ids["resource_id"],
        "identifier": [{"system": "https://clinicos.dev/fhir/sid/mrn", "value": "MRN-0001"}],
        "name": [{"family": "Overwritten"}],
        "gender": "unknown",
    }


async def encounter_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    patient = await create_patient(world.client, clinician)
    encounter = await create_encounter(world.client, clinician, patient["id"])
    return {
        "resource_id": encounter["id"],
        "encounter_id": encounter["id"],
        "patient_id": patient["id"],
    }


def _encounter_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "Encounter",
        "id": ids["resource_id"],
        "status": "cancelled",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{ids.get('patient_id', ids['resource_id'])}"},
        "period": {"start": "2026-11-20T10:00:00Z"},
    }


FHIR_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("GET", "/fhir/Patient/{resource_id}"): IdRouteCase(
        create_in_a=patient_in_a, intact=patient_unchanged, caller_role="clinician"
    ),
    ("PUT", "/fhir/Patient/{resource_id}"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=patient_unchanged,
        caller_role="clinician",
        body_for=_patient_body,
    ),
    ("GET", "/fhir/Patient/{patient_id}/$everything"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=patient_unchanged,
        caller_role="clinician",
        owned=lambda bundle: str(bundle["entry"][0]["resource"]["id"]),
    ),
    ("GET", "/fhir/Encounter/{resource_id}"): IdRouteCase(
        create_in_a=encounter_in_a, intact=encounter_unchanged, caller_role="clinician"
    ),
    ("PUT", "/fhir/Encounter/{resource_id}"): IdRouteCase(
        create_in_a=encounter_in_a,
        intact=encounter_unchanged,
        caller_role="clinician",
        body_for=_encounter_body,
    ),
}


# -- the clinical entries ------------------------------------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_DOSE = {"doseQuantity": {"value": 5, "unit": "mg", "code": "mg"}}


def _fhir_entry_in_a(kind: str) -> Callable[[World], Awaitable[ObjectIds]]:
    """An entry of ``kind`` made through the JSON API, addressed by its FHIR id."""
    make = entry_in_a(kind)

    async def create(world: World) -> ObjectIds:
        ids = await make(world)
        assert isinstance(ids, dict)
        return {**ids, "resource_id": ids[ID_PARAMS[kind]]}

    return create


def _subject(ids: ObjectIds) -> dict[str, str]:
    assert isinstance(ids, dict)
    return {"reference": f"Patient/{ids.get('patient_id', ids['resource_id'])}"}


def _observation_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    category = "http://terminology.hl7.org/CodeSystem/observation-category"
    return {
        "resourceType": "Observation",
        "id": ids["resource_id"],
        "status": "amended",
        "category": [{"coding": [{"system": category, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": _subject(ids),
        "effectiveDateTime": "2026-01-10T09:30:00Z",
        "valueQuantity": {"value": 73, "unit": "kg", "code": "kg"},
    }


def _condition_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "Condition",
        "id": ids["resource_id"],
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I48.91"},
                {"system": "http://snomed.info/sct", "code": "49436004"},
            ],
            "text": "Atrial fibrillation",
        },
        "subject": _subject(ids),
    }


def _allergy_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "AllergyIntolerance",
        "id": ids["resource_id"],
        "code": {"coding": [{"system": RXNORM, "code": "7980"}]},
        "patient": _subject(ids),
        "reaction": [{"manifestation": [{"text": "urticaria"}]}],
    }


def _statement_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "MedicationStatement",
        "id": ids["resource_id"],
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}]
        },
        "subject": _subject(ids),
        "dosage": [{"timing": {"code": {"text": "QD"}}, "doseAndRate": [_DOSE]}],
    }


def _request_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "MedicationRequest",
        "id": ids["resource_id"],
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "1364430", "display": "apixaban"}]
        },
        "subject": _subject(ids),
        "reasonCode": [
            {"coding": [{"system": "urn:clinicos:cs:anticoagulation-indication", "code": "nvaf"}]}
        ],
        "dosageInstruction": [
            {
                "timing": {"code": {"text": "BID"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                "doseAndRate": [{"doseQuantity": {"value": 2.5, "unit": "mg", "code": "mg"}}],
            }
        ],
    }


_CLINICAL_TYPES = {
    "Observation": ("observations", _observation_body, None),
    "Condition": ("conditions", _condition_body, None),
    "AllergyIntolerance": ("allergies", _allergy_body, None),
    "MedicationStatement": ("medications", _statement_body, None),
    "MedicationRequest": ("prescriptions", _request_body, "draft"),
}
for _name, (_kind, _body, _status) in _CLINICAL_TYPES.items():
    _common: dict[str, Any] = {
        "create_in_a": _fhir_entry_in_a(_kind),
        "intact": left_alone(_kind, status=_status),
        "caller_role": "clinician",
    }
    FHIR_ID_ROUTE_CASES[("GET", f"/fhir/{_name}/{{resource_id}}")] = IdRouteCase(**_common)
    FHIR_ID_ROUTE_CASES[("PUT", f"/fhir/{_name}/{{resource_id}}")] = IdRouteCase(
        **_common, body_for=_body
    )
