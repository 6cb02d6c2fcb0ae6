"""FHIR Encounter through the facade: transaction with urn:uuid references, read, search by
patient, update, and the errors a client meets."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.integration.interop.test_fhir_patient import FHIR, fhir_patient, outcome
from tests.support.records_fixtures import clinic

PATIENT_URL = "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"


def fhir_encounter(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
        "reasonCode": [{"text": "Control de anticoagulación"}],
        "subject": {"reference": subject},
        "period": {"start": "2026-11-15T09:00:00Z", "end": "2026-11-15T09:30:00Z"},
        **extra,
    }


async def test_transaction_links_encounter_to_the_new_patient_then_read_and_search(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-enc", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {  # listed first, created after the patient it references
                "resource": fhir_encounter(PATIENT_URL),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                "fullUrl": PATIENT_URL,
                "resource": fhir_patient(mrn="ENC-1"),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }

    stored = await client.post("/fhir", json=bundle, headers=headers)

    assert stored.status_code == 200, stored.text
    locations = [e["response"]["location"] for e in stored.json()["entry"]]
    encounter_id = locations[0].split("/")[1]
    patient_id = locations[1].split("/")[1]
    read = await client.get(f"/fhir/Encounter/{encounter_id}", headers=headers)
    encounter = Encounter.model_validate(read.json())
    assert encounter.subject.reference == f"Patient/{patient_id}"
    assert encounter.reasonCode[0].text == "Control de anticoagulación"
    found = await client.get("/fhir/Encounter", params={"patient": patient_id}, headers=headers)
    assert [e.resource.id for e in Bundle.model_validate(found.json()).entry] == [encounter_id]
    everything = await client.get(f"/fhir/Patient/{patient_id}/$everything", headers=headers)
    kinds = [e["resource"]["resourceType"] for e in everything.json()["entry"]]
    assert kinds[0] == "Patient" and "Encounter" in kinds


async def test_encounter_create_update_and_errors(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-enc-upd", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = (await client.post("/fhir/Patient", json=fhir_patient(), headers=headers)).json()[
        "id"
    ]
    created = await client.post(
        "/fhir/Encounter",
        json=fhir_encounter(f"Patient/{patient_id}", status="in-progress"),
        headers=headers,
    )
    assert created.status_code == 201, created.text
    encounter_id = created.json()["id"]

    finished = await client.put(
        f"/fhir/Encounter/{encounter_id}",
        json=fhir_encounter(f"Patient/{patient_id}", id=encounter_id),
        headers=headers,
    )
    back = await client.put(
        f"/fhir/Encounter/{encounter_id}",
        json=fhir_encounter(f"Patient/{patient_id}", id=encounter_id, status="planned"),
        headers=headers,
    )
    no_patient = await client.get("/fhir/Encounter", headers=headers)
    bad_subject = await client.post(
        "/fhir/Encounter", json=fhir_encounter("Group/1"), headers=headers
    )

    assert finished.status_code == 200 and finished.json()["meta"]["versionId"] == "2"
    assert outcome(back, 409)["issue"][0]["details"]["coding"][0]["code"] == (
        "invalid_status_transition"
    )
    assert "patient" in outcome(no_patient, 400)["issue"][0]["diagnostics"]
    assert outcome(bad_subject, 422)["issue"][0]["expression"] == ["Encounter.subject"]
