"""Helpers for the data-subject request tests: a patient with one entry of every kind the
record keeps (made through the JSON API and the FHIR facade), and requests made through the API."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.support.records_fixtures import create_patient
from tests.support.tenancy_fixtures import SignedIn

FHIR = {"Content-Type": "application/fhir+json"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NOTE_TEXT = "Paciente refiere palpitaciones; control en 2 semanas."


def _clinical_resources(patient_id: str) -> list[dict[str, Any]]:
    subject = {"reference": f"Patient/{patient_id}"}
    return [
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "reasonCode": [{"text": "Control de anticoagulación"}],
            "subject": subject,
            "period": {"start": "2026-11-15T09:00:00Z", "end": "2026-11-15T09:30:00Z"},
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": subject,
            "effectiveDateTime": "2026-11-15T09:10:00Z",
            "valueQuantity": {"value": 70, "unit": "kg", "code": "kg"},
        },
        {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I48.91"}],
                "text": "Atrial fibrillation",
            },
            "subject": subject,
            "onsetDateTime": "2025-03-01",
        },
        {
            "resourceType": "AllergyIntolerance",
            "code": {"coding": [{"system": RXNORM, "code": "7980", "display": "penicillin G"}]},
            "patient": subject,
            "reaction": [{"manifestation": [{"text": "urticaria"}]}],
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}]
            },
            "subject": subject,
            "dosage": [
                {
                    "timing": {"code": {"text": "QD"}},
                    "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "code": "mg"}}],
                }
            ],
        },
        {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": "1364430", "display": "apixaban"}]
            },
            "subject": subject,
            "reasonCode": [
                {
                    "coding": [
                        {"system": "urn:clinicos:cs:anticoagulation-indication", "code": "nvaf"}
                    ]
                }
            ],
            "dosageInstruction": [
                {
                    "timing": {"code": {"text": "BID"}},
                    "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "code": "mg"}}],
                }
            ],
        },
    ]


async def whole_record(client: AsyncClient, clinician: SignedIn, mrn: str) -> dict[str, str]:
    """A patient with one encounter, final note, observation, condition, allergy, medication
    list entry and prescription; returns the ids by FHIR type (``Patient`` …)."""
    patient = await create_patient(client, clinician, mrn=mrn)
    ids = {"Patient": str(patient["id"])}
    headers = {**clinician.headers, **FHIR}
    for resource in _clinical_resources(ids["Patient"]):
        created = await client.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=headers
        )
        assert created.status_code == 201, created.text
        ids[resource["resourceType"]] = str(created.json()["id"])
    note = await client.post(
        f"/api/v1/patients/{ids['Patient']}/notes",
        json={"kind": "progress", "text": NOTE_TEXT},
        headers=clinician.headers,
    )
    assert note.status_code == 201, note.text
    final = await client.post(
        f"/api/v1/patients/{ids['Patient']}/notes/{note.json()['id']}/finalize",
        headers=clinician.headers,
    )
    assert final.status_code == 200, final.text
    ids["DocumentReference"] = str(note.json()["id"])
    return ids


async def file_request(
    client: AsyncClient, who: SignedIn, patient_id: str, kind: str, **extra: Any
) -> dict[str, Any]:
    """Take a data-subject request through the API; fails the test unless it is created."""
    response = await client.post(
        f"/api/v1/patients/{patient_id}/data-requests",
        json={"kind": kind, **extra},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
