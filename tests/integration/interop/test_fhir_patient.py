"""The FHIR facade for Patient: CapabilityStatement, create/read/update/search, errors as
OperationOutcome with element paths, PHI criteria kept out of URLs, transaction atomicity."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from tests.support.records_fixtures import clinic

FHIR = {"Content-Type": "application/fhir+json"}
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def fhir_patient(mrn: str = "F-1", family: str = "Mamani", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"type": MR, "system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
        "name": [{"use": "official", "family": family, "given": ["Rosa", "Elena"]}],
        "gender": "female",
        "birthDate": "1948-05-02",
        "telecom": [{"system": "phone", "value": "+591 2 244 1234"}],
        "address": [{"line": ["Calle Murillo 8"], "city": "La Paz", "country": "BO"}],
        **extra,
    }


def outcome(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    OperationOutcome.model_validate(body)
    return body


async def test_metadata_is_a_valid_capability_statement_listing_patient(
    container: Container, client: AsyncClient
) -> None:
    response = await client.get("/fhir/metadata")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = CapabilityStatement.model_validate(response.json())
    types = {r.type for r in statement.rest[0].resource}
    assert "Patient" in types and statement.fhirVersion == "4.0.1"


async def test_create_via_fhir_then_read_via_json_api_and_fhir_round_trips(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-rt", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}

    created = await client.post("/fhir/Patient", json=fhir_patient(), headers=headers)

    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"].endswith(f"/fhir/Patient/{patient_id}/_history/1")
    via_json = await client.get(f"/api/v1/patients/{patient_id}", headers=headers)
    assert via_json.status_code == 200
    assert via_json.json()["mrn"] == "F-1" and via_json.json()["given_name"] == "Rosa Elena"
    via_fhir = await client.get(f"/fhir/Patient/{patient_id}", headers=headers)
    resource = Patient.model_validate(via_fhir.json())
    assert resource.id == patient_id and resource.name[0].family == "Mamani"
    assert str(resource.birthDate) == "1948-05-02" and resource.address[0].city == "La Paz"


async def test_update_replaces_and_a_stale_if_match_is_a_409_outcome(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-upd", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    patient_id = (await client.post("/fhir/Patient", json=fhir_patient(), headers=headers)).json()[
        "id"
    ]
    body = fhir_patient(family="Choque", id=patient_id)
    del body["telecom"]

    updated = await client.put(
        f"/fhir/Patient/{patient_id}", json=body, headers={**headers, "If-Match": 'W/"1"'}
    )
    stale = await client.put(
        f"/fhir/Patient/{patient_id}", json=body, headers={**headers, "If-Match": 'W/"1"'}
    )

    assert updated.status_code == 200, updated.text
    assert updated.json()["name"][0]["family"] == "Choque" and "telecom" not in updated.json()
    assert updated.json()["meta"]["versionId"] == "2"
    conflict = outcome(stale, 409)
    assert conflict["issue"][0]["code"] == "conflict"


async def test_invalid_resource_is_a_422_outcome_with_the_element_path(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-bad", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}

    bad_date = await client.post(
        "/fhir/Patient", json=fhir_patient(birthDate="1948-13-40"), headers=headers
    )
    no_mrn = await client.post("/fhir/Patient", json=fhir_patient(identifier=[]), headers=headers)

    expressions = [i["expression"][0] for i in outcome(bad_date, 422)["issue"]]
    assert expressions == ["Patient.birthDate"]
    assert "1948-13-40" not in bad_date.text
    assert outcome(no_mrn, 422)["issue"][0]["expression"] == ["Patient.identifier"]


async def test_unknown_resource_type_and_unknown_id_are_404_outcomes(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-404", "clinician")
    headers = staff["clinician"].headers

    unknown_type = await client.get("/fhir/Spaceship/1", headers=headers)
    unknown_id = await client.get(
        "/fhir/Patient/00000000-0000-0000-0000-000000000000", headers=headers
    )

    assert outcome(unknown_type, 404)["issue"][0]["code"] == "not-found"
    assert outcome(unknown_id, 404)["issue"][0]["code"] == "not-found"


async def test_search_by_id_in_url_and_by_identifier_only_in_a_post_body(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-search", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    wanted = (await client.post("/fhir/Patient", json=fhir_patient(), headers=headers)).json()
    await client.post("/fhir/Patient", json=fhir_patient(mrn="F-2", family="Otro"), headers=headers)

    by_id = await client.get("/fhir/Patient", params={"_id": wanted["id"]}, headers=headers)
    phi_in_url = await client.get("/fhir/Patient", params={"identifier": "F-1"}, headers=headers)
    by_identifier = await client.post(
        "/fhir/Patient/_search",
        content="identifier=F-1&_count=10",
        headers={**staff["clinician"].headers, "Content-Type": "application/x-www-form-urlencoded"},
    )

    bundle = Bundle.model_validate(by_id.json())
    assert bundle.type == "searchset"
    assert [e.resource.id for e in bundle.entry] == [wanted["id"]]
    assert "identif" in outcome(phi_in_url, 400)["issue"][0]["diagnostics"]
    assert [e["resource"]["id"] for e in by_identifier.json()["entry"]] == [wanted["id"]]
    assert all("F-1" not in link["url"] for link in by_identifier.json()["link"])


async def test_search_pages_with_next_links(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "fhir-paging", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    for n in range(3):
        await client.post("/fhir/Patient", json=fhir_patient(mrn=f"PG-{n}"), headers=headers)

    seen: list[str] = []
    url: str | None = "/fhir/Patient?_count=2"
    while url:
        bundle = (await client.get(url, headers=headers)).json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)

    assert len(seen) == 3 == len(set(seen))


async def test_unsupported_search_parameter_is_a_400_outcome(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-param", "clinician")

    response = await client.get(
        "/fhir/Patient", params={"shoe-size": "42"}, headers=staff["clinician"].headers
    )

    assert "shoe-size" in outcome(response, 400)["issue"][0]["diagnostics"]


async def test_transaction_with_one_bad_entry_changes_nothing(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "fhir-tx", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": fhir_patient(mrn="TX-1"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
                "resource": fhir_patient(mrn="TX-2", gender="robot"),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }

    failed = await client.post("/fhir", json=bundle, headers=headers)
    bundle["entry"][1]["resource"]["gender"] = "male"  # type: ignore[index]
    succeeded = await client.post("/fhir", json=bundle, headers=headers)

    issue = outcome(failed, 422)["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.Patient.gender"]
    assert succeeded.status_code == 200, succeeded.text
    response = Bundle.model_validate(succeeded.json())
    assert response.type == "transaction-response"
    assert [e.response.status for e in response.entry] == ["201 Created", "201 Created"]
    async with owner_engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM patient WHERE organization_id = :org"),
            {"org": staff["clinician"].member.organization_id},
        )
    assert count == 2  # the failed transaction left nothing behind


async def test_batch_reports_each_entry_on_its_own(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-batch", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": fhir_patient(mrn="B-1"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": fhir_patient(mrn="B-1"), "request": {"method": "POST", "url": "Patient"}},
        ],
    }

    response = await client.post("/fhir", json=bundle, headers=headers)

    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "409"]


async def test_wrong_content_type_and_malformed_json_are_outcomes(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-ct", "clinician")

    as_text = await client.post(
        "/fhir/Patient",
        content="{}",
        headers={**staff["clinician"].headers, "Content-Type": "text/plain"},
    )
    broken = await client.post(
        "/fhir/Patient", content='{"resourceType": ', headers={**staff["clinician"].headers, **FHIR}
    )

    outcome(as_text, 415)
    assert "position" in outcome(broken, 400)["issue"][0]["diagnostics"]


async def test_billing_cannot_write_patients_through_fhir(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-perm", "billing")

    response = await client.post(
        "/fhir/Patient", json=fhir_patient(), headers={**staff["billing"].headers, **FHIR}
    )

    assert outcome(response, 403)["issue"][0]["code"] == "forbidden"
