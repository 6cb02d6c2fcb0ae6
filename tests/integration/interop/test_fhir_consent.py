"""FHIR Consent (read-only): each recorded decision as a Consent resource, the one in force
``active``/``rejected`` and the replaced ones ``inactive``; writes go through the JSON API."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.consent import Consent
from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.integration.interop.test_fhir_patient import FHIR, outcome
from tests.support.records_fixtures import clinic, create_patient


def decision(purpose: str, decision: str) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "decision": decision,
        "method": "whatsapp_opt_in",
        "policy_version": "privacy-2026-01",
    }


async def test_consent_history_reads_as_valid_fhir_consents(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-consent", "clinician", "billing")
    clinician = staff["clinician"]
    headers = {**clinician.headers, **FHIR}
    patient_id = (await create_patient(client, clinician))["id"]
    consents = f"/api/v1/patients/{patient_id}/consents"
    for purpose, choice in (
        ("messaging:whatsapp", "granted"),
        ("research", "granted"),
        ("research", "revoked"),
    ):
        stored = await client.post(consents, json=decision(purpose, choice), headers=headers)
        assert stored.status_code == 201, stored.text

    found = await client.get("/fhir/Consent", params={"patient": patient_id}, headers=headers)
    by_purpose: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in found.json()["entry"]:
        resource = entry["resource"]
        Consent.model_validate(resource)
        key = (resource["provision"]["purpose"][0]["code"], resource["provision"]["type"])
        by_purpose[key] = resource
    read = await client.get(
        f"/fhir/Consent/{by_purpose[('messaging:whatsapp', 'permit')]['id']}", headers=headers
    )
    create = await client.post("/fhir/Consent", json={"resourceType": "Consent"}, headers=headers)
    billing = await client.get(
        "/fhir/Consent", params={"patient": patient_id}, headers=staff["billing"].headers
    )
    statement = (await client.get("/fhir/metadata")).json()

    assert found.status_code == 200, found.text
    assert len(found.json()["entry"]) == 3
    assert by_purpose[("messaging:whatsapp", "permit")]["status"] == "active"
    assert by_purpose[("research", "permit")]["status"] == "inactive"  # replaced
    assert by_purpose[("research", "deny")]["status"] == "inactive"  # the revocation
    assert by_purpose[("research", "deny")]["scope"]["coding"][0]["code"] == "research"
    assert read.status_code == 200
    assert read.json()["patient"] == {"reference": f"Patient/{patient_id}"}
    assert Consent.model_validate(read.json()).status == "active"
    assert outcome(create, 405)["issue"][0]["code"] == "not-supported"
    assert billing.status_code == 403
    consent_type = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Consent")
    assert [i["code"] for i in consent_type["interaction"]] == ["read", "search-type"]


async def test_consent_search_needs_a_patient_of_the_organization(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "fhir-consent-404", "clinician")
    headers = {**staff["clinician"].headers, **FHIR}

    no_patient = await client.get("/fhir/Consent", headers=headers)
    unknown = await client.get(
        "/fhir/Consent", params={"patient": "00000000-0000-4000-8000-000000000000"}, headers=headers
    )
    unknown_id = await client.get(
        "/fhir/Consent/00000000-0000-4000-8000-000000000000", headers=headers
    )

    outcome(no_patient, 400)
    outcome(unknown, 404)
    outcome(unknown_id, 404)
