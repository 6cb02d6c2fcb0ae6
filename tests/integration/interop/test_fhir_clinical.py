"""The FHIR facade for the clinical entries: Observation, Condition, AllergyIntolerance,
MedicationRequest and MedicationStatement — round trips through the JSON API, the search
parameters (code, date, status, clinical-status, _sort, _count with next links), lifecycle
rules seen through FHIR, and errors naming the FHIR element."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.integration.interop.test_fhir_patient import FHIR, fhir_patient, outcome
from tests.support.records_fixtures import clinic

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"


def fhir_observation(
    patient_id: str,
    code: str = "2160-0",
    value: float = 1.4,
    unit: str = "mg/dL",
    when: str = "2026-11-15T08:30:00Z",
    status: str = "final",
    category: str = "laboratory",
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": status,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def fhir_condition(
    patient_id: str, icd10: str = "I48.91", status: str = "active"
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
        "code": {
            "coding": [{"system": ICD10, "code": icd10}, {"system": SNOMED, "code": "49436004"}],
            "text": "Fibrilación auricular",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "onsetDateTime": "2025-03-01",
    }


def fhir_prescription(patient_id: str, status: str = "draft", dose: float = 5) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "1364430", "display": "apixaban"}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [{"coding": [{"system": ICD10, "code": "I48.91"}]}],
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": SNOMED, "code": "26643006"}]},
                "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "mg", "code": "mg"}}],
            }
        ],
    }


async def _renal_data_recorded(
    client: AsyncClient, headers: dict[str, str], patient_id: str
) -> None:
    """A current weight and creatinine (measured yesterday), so that the prescribing gate
    passes apixaban 2.5 mg BID for NVAF for ``fhir_patient`` (female, born 1948-05-02: 78 in
    2026): two of the label's reduction criteria hold (weight 55 <= 60 kg, SCr 1.6 >= 1.5
    mg/dL), so 2.5 mg is the labelled dose, and CrCl = 62 x 55 / (72 x 1.6) x 0.85 = 25.2
    (>= 15, no renal block)."""
    when = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    for observation in (
        fhir_observation(patient_id, "29463-7", 55, "kg", when, category="vital-signs"),
        fhir_observation(patient_id, "2160-0", 1.6, "mg/dL", when),
    ):
        created = await client.post("/fhir/Observation", json=observation, headers=headers)
        assert created.status_code == 201, created.text


async def _patient(client: AsyncClient, headers: dict[str, str], mrn: str) -> str:
    created = await client.post("/fhir/Patient", json=fhir_patient(mrn=mrn), headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _ids(bundle: dict[str, Any]) -> list[str]:
    Bundle.model_validate(bundle)
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_observation_created_in_fhir_reads_the_same_in_the_json_api_and_exports_valid(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-obs", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "OBS-1")

    created = await client.post(
        "/fhir/Observation", json=fhir_observation(patient_id, value=1.35), headers=headers
    )

    assert created.status_code == 201, created.text
    obs_id = created.json()["id"]
    as_json = await client.get(
        f"/api/v1/patients/{patient_id}/observations/{obs_id}", headers=staff["clinician"].headers
    )
    assert as_json.status_code == 200, as_json.text
    stored = as_json.json()
    assert (stored["code"], stored["unit"], stored["status"]) == ("2160-0", "mg/dL", "final")
    assert float(stored["value"]) == 1.35
    assert stored["effective_at"].startswith("2026-11-15T08:30:00")
    exported = await client.get(f"/fhir/Observation/{obs_id}", headers=headers)
    observation = Observation.model_validate(exported.json())
    assert observation.id == obs_id
    assert observation.subject.reference == f"Patient/{patient_id}"
    assert float(observation.valueQuantity.value) == 1.35
    assert observation.valueQuantity.code == "mg/dL"
    assert observation.code.coding[0].system == LOINC
    assert exported.headers["etag"] == 'W/"1"'


async def test_blood_pressure_components_round_trip(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-bp", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "BP-1")
    panel = fhir_observation(patient_id, code="85354-9", category="vital-signs")
    del panel["valueQuantity"]
    panel["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "code": "mm[Hg]"},
        }
        for code, value in (("8480-6", 132), ("8462-4", 84))
    ]

    created = await client.post("/fhir/Observation", json=panel, headers=headers)

    assert created.status_code == 201, created.text
    observation = Observation.model_validate(created.json())
    values = {c.code.coding[0].code: float(c.valueQuantity.value) for c in observation.component}
    assert values == {"8480-6": 132.0, "8462-4": 84.0}


async def test_observation_search_by_code_date_status_sort_and_paging(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-obs-search", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "OS-1")
    made: dict[str, str] = {}
    for key, code, when, status in (
        ("cr-old", "2160-0", "2026-10-01T08:00:00Z", "final"),
        ("cr-new", "2160-0", "2026-11-10T08:00:00Z", "final"),
        ("cr-pre", "2160-0", "2026-11-12T08:00:00Z", "preliminary"),
        ("wt", "29463-7", "2026-11-11T08:00:00Z", "final"),
    ):
        body = fhir_observation(patient_id, code=code, when=when, status=status)
        if code == "29463-7":
            body = fhir_observation(
                patient_id, code=code, value=71.5, unit="kg", when=when, category="vital-signs"
            )
        made[key] = (await client.post("/fhir/Observation", json=body, headers=headers)).json()[
            "id"
        ]

    async def search(**params: str) -> list[str]:
        response = await client.get(
            "/fhir/Observation", params={"patient": patient_id, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        return _ids(response.json())

    assert await search(code=f"{LOINC}|2160-0") == [made["cr-pre"], made["cr-new"], made["cr-old"]]
    assert await search(code="29463-7") == [made["wt"]]
    assert await search(code="http://snomed.info/sct|2160-0") == []
    assert await search(code="2160-0", status="final") == [made["cr-new"], made["cr-old"]]
    assert await search(code="2160-0", _sort="date") == [
        made["cr-old"],
        made["cr-new"],
        made["cr-pre"],
    ]
    november = await search(date="2026-11")
    assert set(november) == {made["cr-new"], made["cr-pre"], made["wt"]}
    assert await search(date="ge2026-11-11", code="2160-0") == [made["cr-pre"]]
    assert await search(date="le2026-11-10") == [made["cr-new"], made["cr-old"]]
    by_subject = await client.get(
        "/fhir/Observation", params={"subject": f"Patient/{patient_id}"}, headers=headers
    )
    assert len(_ids(by_subject.json())) == 4
    seen: list[str] = []
    url: str | None = f"/fhir/Observation?patient={patient_id}&_count=3&_sort=-date"
    while url:
        page = (await client.get(url, headers=headers)).json()
        seen += _ids(page)
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert seen == [made["cr-pre"], made["wt"], made["cr-new"], made["cr-old"]]


async def test_observation_update_follows_the_result_lifecycle(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-obs-upd", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "OU-1")
    obs = (
        await client.post("/fhir/Observation", json=fhir_observation(patient_id), headers=headers)
    ).json()

    still_final = fhir_observation(patient_id, value=1.6)
    refused = await client.put(
        f"/fhir/Observation/{obs['id']}", json={**still_final, "id": obs["id"]}, headers=headers
    )
    amended = await client.put(
        f"/fhir/Observation/{obs['id']}",
        json={**fhir_observation(patient_id, value=1.6, status="amended"), "id": obs["id"]},
        headers={**headers, "If-Match": 'W/"1"'},
    )
    moved = await client.put(
        f"/fhir/Observation/{obs['id']}",
        json={
            **fhir_observation(
                patient_id, value=1.6, status="amended", when="2026-11-16T08:00:00Z"
            ),
            "id": obs["id"],
        },
        headers=headers,
    )

    assert outcome(refused, 409)["issue"][0]["code"] == "conflict"
    assert amended.status_code == 200, amended.text
    assert amended.json()["status"] == "amended" and amended.json()["meta"]["versionId"] == "2"
    assert outcome(moved, 422)["issue"][0]["expression"] == ["Observation.effectiveDateTime"]


async def test_observation_errors_name_the_fhir_element(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-obs-err", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "OE-1")
    no_category = fhir_observation(patient_id)
    del no_category["category"]
    heavy = fhir_observation(patient_id, code="29463-7", value=900, unit="kg")
    future = fhir_observation(patient_id, when="2999-01-01T00:00:00Z")
    bad_loinc = fhir_observation(patient_id, code="2160-1")
    long_local_code = fhir_observation(patient_id)
    long_local_code["code"] = {"coding": [{"system": "urn:oid:1.2.3", "code": "x" * 65}]}
    long_unit = fhir_observation(patient_id, unit="u" * 33)
    no_search_patient = await client.get("/fhir/Observation?code=2160-0", headers=headers)

    cases = [
        (no_category, "Observation.category"),
        (heavy, "Observation.valueQuantity.value"),
        (future, "Observation.effectiveDateTime"),
        (bad_loinc, "Observation.code"),
        (long_local_code, "Observation.code"),
        (long_unit, "Observation.valueQuantity.code"),
    ]
    for body, path in cases:
        response = await client.post("/fhir/Observation", json=body, headers=headers)
        issue = outcome(response, 422)["issue"][0]
        assert issue["expression"] == [path], (path, issue)
        assert "900" not in issue.get("diagnostics", "")
    assert "patient" in outcome(no_search_patient, 400)["issue"][0]["diagnostics"]
    listed = await client.get(f"/api/v1/patients/{patient_id}/observations", headers=headers)
    assert listed.json()["items"] == []


async def test_condition_create_search_by_code_and_clinical_status_then_resolve(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-cond", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "CO-1")
    af = (
        await client.post("/fhir/Condition", json=fhir_condition(patient_id), headers=headers)
    ).json()
    dvt_body = fhir_condition(patient_id, icd10="I82.40", status="resolved")
    dvt_body["code"]["coding"] = [{"system": ICD10, "code": "I82.40"}]
    dvt = (await client.post("/fhir/Condition", json=dvt_body, headers=headers)).json()

    async def search(**params: str) -> list[str]:
        response = await client.get(
            "/fhir/Condition", params={"patient": patient_id, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        return _ids(response.json())

    assert Condition.model_validate(af).code.coding[0].code == "I48.91"
    assert await search(**{"clinical-status": "active"}) == [af["id"]]
    assert await search(code=f"{ICD10}|I82.40") == [dvt["id"]]
    assert await search(code=f"{SNOMED}|49436004") == [af["id"]]
    assert await search(code="49436004") == [af["id"]]
    assert await search(date="ge2025-01-01") == [dvt["id"], af["id"]]
    assert await search(date="lt2025-03-01") == []
    resolved = fhir_condition(patient_id, status="resolved")
    resolved["abatementDateTime"] = "2026-10-01"
    updated = await client.put(
        f"/fhir/Condition/{af['id']}", json={**resolved, "id": af["id"]}, headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert await search(**{"clinical-status": "active"}) == []
    no_code = fhir_condition(patient_id)
    no_code["code"] = {"text": "algo"}
    refused = await client.post("/fhir/Condition", json=no_code, headers=headers)
    assert outcome(refused, 422)["issue"][0]["expression"] == ["Condition.code.coding"]


async def test_allergy_intolerance_round_trip_and_search(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-allergy", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "AL-1")
    body = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}]},
        "patient": {"reference": f"Patient/{patient_id}"},
        "reaction": [{"manifestation": [{"text": "hematoma"}]}],
    }

    created = await client.post("/fhir/AllergyIntolerance", json=body, headers=headers)

    assert created.status_code == 201, created.text
    allergy = AllergyIntolerance.model_validate(created.json())
    assert (allergy.criticality, allergy.category) == ("high", ["medication"])
    assert allergy.reaction[0].manifestation[0].text == "hematoma"
    as_json = await client.get(
        f"/api/v1/patients/{patient_id}/allergies/{allergy.id}", headers=headers
    )
    assert as_json.json()["code"] == "11289"
    found = await client.get(
        "/fhir/AllergyIntolerance",
        params={"patient": patient_id, "clinical-status": "active", "code": f"{RXNORM}|11289"},
        headers=headers,
    )
    assert _ids(found.json()) == [allergy.id]
    by_subject = await client.get(
        "/fhir/AllergyIntolerance", params={"patient": patient_id, "status": "x"}, headers=headers
    )
    assert "status" in outcome(by_subject, 400)["issue"][0]["diagnostics"]


async def test_prescription_created_as_draft_issued_by_put_then_cancelled(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-rx", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "RX-1")
    await _renal_data_recorded(client, headers, patient_id)

    straight_to_active = await client.post(
        "/fhir/MedicationRequest",
        json=fhir_prescription(patient_id, status="active"),
        headers=headers,
    )
    draft = await client.post(
        "/fhir/MedicationRequest", json=fhir_prescription(patient_id), headers=headers
    )

    issue = outcome(straight_to_active, 422)["issue"][0]
    assert issue["expression"] == ["MedicationRequest.status"]
    assert draft.status_code == 201, draft.text
    rx_id = draft.json()["id"]
    stored = (
        await client.get(f"/api/v1/patients/{patient_id}/prescriptions/{rx_id}", headers=headers)
    ).json()
    assert (stored["frequency"], stored["route"], stored["indication"]) == ("BID", "oral", "nvaf")
    too_long_unit = fhir_prescription(patient_id, dose=2.5)
    too_long_unit["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] = "m" * 33
    refused_unit = await client.put(
        f"/fhir/MedicationRequest/{rx_id}", json={**too_long_unit, "id": rx_id}, headers=headers
    )
    assert outcome(refused_unit, 422)["issue"][0]["expression"] == [
        "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.code"
    ]
    edited = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**fhir_prescription(patient_id, dose=2.5), "id": rx_id},
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    issued = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**fhir_prescription(patient_id, status="active", dose=2.5), "id": rx_id},
        headers=headers,
    )
    assert issued.status_code == 200, issued.text
    request = MedicationRequest.model_validate(issued.json())
    assert request.status == "active"
    assert float(request.dosageInstruction[0].doseAndRate[0].doseQuantity.value) == 2.5
    statements = await client.get(
        "/fhir/MedicationStatement",
        params={"patient": patient_id, "status": "active"},
        headers=headers,
    )
    [statement] = statements.json()["entry"]
    assert statement["resource"]["basedOn"] == [{"reference": f"MedicationRequest/{rx_id}"}]
    MedicationStatement.model_validate(statement["resource"])
    changed_after_issue = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**fhir_prescription(patient_id, status="active", dose=5), "id": rx_id},
        headers=headers,
    )
    assert outcome(changed_after_issue, 422)["issue"][0]["expression"] == [
        "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.value"
    ]
    cancelled = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**fhir_prescription(patient_id, status="cancelled", dose=2.5), "id": rx_id},
        headers=headers,
    )
    assert cancelled.json()["status"] == "cancelled"
    stopped = await client.get(
        f"/fhir/MedicationStatement/{statement['resource']['id']}", headers=headers
    )
    assert stopped.json()["status"] == "stopped"
    reopened = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**fhir_prescription(patient_id, status="active", dose=2.5), "id": rx_id},
        headers=headers,
    )
    outcome(reopened, 409)
    active = await client.get(
        "/fhir/MedicationRequest",
        params={"patient": patient_id, "status": "active"},
        headers=headers,
    )
    assert _ids(active.json()) == []


async def test_nurse_reads_but_cannot_prescribe_through_fhir(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-rx-perm", "clinician", "nurse")
    patient_id = await _patient(client, {**staff["clinician"].headers, **FHIR}, "RP-1")
    nurse = {**staff["nurse"].headers, **FHIR}

    refused = await client.post(
        "/fhir/MedicationRequest", json=fhir_prescription(patient_id), headers=nurse
    )
    listed = await client.get(
        "/fhir/MedicationRequest", params={"patient": patient_id}, headers=nurse
    )

    assert outcome(refused, 403)["issue"][0]["code"] == "forbidden"
    assert listed.status_code == 200


async def test_medication_statement_create_update_and_search(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-medstmt", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = await _patient(client, headers, "MS-1")
    body = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "703"}],
            "text": "amiodarone",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": {"start": "2026-06-01"},
        "dosage": [
            {
                "timing": {"code": {"text": "QD"}},
                "doseAndRate": [{"doseQuantity": {"value": 200, "unit": "mg"}}],
            }
        ],
    }

    created = await client.post("/fhir/MedicationStatement", json=body, headers=headers)

    assert created.status_code == 201, created.text
    statement = MedicationStatement.model_validate(created.json())
    assert statement.medicationCodeableConcept.coding[0].display == "amiodarone"
    stopped_body = {
        **body,
        "status": "stopped",
        "effectivePeriod": {"start": "2026-06-01", "end": "2026-11-01"},
    }
    stopped = await client.put(
        f"/fhir/MedicationStatement/{statement.id}",
        json={**stopped_body, "id": statement.id},
        headers=headers,
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["effectivePeriod"] == {"start": "2026-06-01", "end": "2026-11-01"}
    found = await client.get(
        "/fhir/MedicationStatement",
        params={"patient": patient_id, "status": "stopped", "date": "ge2026-05-01"},
        headers=headers,
    )
    assert _ids(found.json()) == [statement.id]
    none_active = await client.get(
        "/fhir/MedicationStatement",
        params={"patient": patient_id, "status": "active"},
        headers=headers,
    )
    assert _ids(none_active.json()) == []


async def test_transaction_of_a_whole_record_is_atomic_and_everything_returns_it(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-clin-tx", "clinician")
    headers = importer = {**staff["clinician"].headers, **FHIR}
    patient_url = "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"

    def bundle(bad_weight: bool) -> dict[str, Any]:
        weight = fhir_observation(
            "x", code="29463-7", value=900 if bad_weight else 70, unit="kg", category="vital-signs"
        )
        resources = [
            fhir_observation("x"),
            weight,
            fhir_condition("x"),
            {**fhir_prescription("x", status="active"), "authoredOn": "2026-11-01T10:00:00Z"},
        ]
        entries = [
            {
                "resource": {**r, "subject": {"reference": patient_url}},
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in resources
        ]
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                *entries,
                {
                    "fullUrl": patient_url,
                    "resource": fhir_patient(mrn="TX-ALL"),
                    "request": {"method": "POST", "url": "Patient"},
                },
            ],
        }

    failed = await client.post("/fhir", json=bundle(bad_weight=True), headers=importer)
    stored = await client.post("/fhir", json=bundle(bad_weight=False), headers=importer)

    issue = outcome(failed, 422)["issue"][0]
    assert issue["expression"][0].startswith("Bundle.entry[1]")
    assert stored.status_code == 200, stored.text
    patient_id = stored.json()["entry"][4]["response"]["location"].split("/")[1]
    everything = await client.get(f"/fhir/Patient/{patient_id}/$everything", headers=headers)
    kinds = sorted(e["resource"]["resourceType"] for e in everything.json()["entry"])
    assert kinds == ["Condition", "MedicationRequest", "Observation", "Observation", "Patient"]
    search = await client.post(
        "/fhir/Patient/_search", data={"identifier": "TX-ALL"}, headers=staff["clinician"].headers
    )
    assert len(search.json()["entry"]) == 1


async def test_capability_statement_lists_every_served_type_with_its_search_parameters(
    container: Container, client: AsyncClient
) -> None:
    response = await client.get("/fhir/metadata")

    resources = {r["type"]: r for r in response.json()["rest"][0]["resource"]}
    assert set(resources) == {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "MedicationStatement",
        "Consent",
    }
    observation_params = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {"patient", "subject", "code", "date", "status", "_id"} <= observation_params
    condition_params = {p["name"] for p in resources["Condition"]["searchParam"]}
    assert "clinical-status" in condition_params
