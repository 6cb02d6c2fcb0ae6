"""Data-subject access and portability: the access report holds every record type of the patient,
their consent decisions and who accessed their record — and nothing of any other patient — as a
valid FHIR Bundle with a readable summary; the portability export is the same data without the
access log; each is audited and completes the request."""

from __future__ import annotations

import base64
import json
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance.models import AuditEvent
from tests.integration.governance.dsr_support import NOTE_TEXT, file_request, whole_record
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem

RECORD_TYPES = {
    "Patient",
    "Encounter",
    "DocumentReference",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
}


def _references(value: Any) -> set[str]:
    """Every ``reference`` string anywhere in a resource."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                found.add(item)
            else:
                found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


async def test_access_report_when_patient_has_every_record_type_holds_each_and_no_other_patient(
    container: Container, client: AsyncClient
) -> None:
    # Arrange: two patients of one clinic with full records, and a patient of another clinic.
    staff = await clinic(container, client, "dsr-access", "clinician", "admin")
    clinician, admin = staff["clinician"], staff["admin"]
    mine = await whole_record(client, clinician, "DSR-1")
    other = await whole_record(client, clinician, "DSR-2")
    elsewhere = await clinic(container, client, "dsr-access-b", "clinician")
    foreign = await whole_record(client, elsewhere["clinician"], "DSR-1")
    consent = await client.post(
        f"/api/v1/patients/{mine['Patient']}/consents",
        json={
            "purpose": "research",
            "decision": "granted",
            "method": "paper",
            "policy_version": "privacy-2026-01",
        },
        headers=clinician.headers,
    )
    assert consent.status_code == 201, consent.text
    filed = await file_request(client, clinician, mine["Patient"], "access")

    # Act
    response = await client.post(
        f"/api/v1/data-requests/{filed['id']}/access-report",
        json={"language": "en"},
        headers=admin.headers,
    )

    # Assert
    assert response.status_code == 200, response.text
    body = response.json()
    bundle = body["bundle"]
    Bundle.model_validate(bundle)  # a valid R4 Bundle, every resource included
    assert bundle["type"] == "collection"
    assert bundle["identifier"]["value"] == filed["id"]
    resources = _resources(bundle)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    assert set(by_type) == RECORD_TYPES | {"Consent", "AuditEvent"}
    for kind in RECORD_TYPES:
        assert [r["id"] for r in by_type[kind]] == [mine[kind]], kind
    assert [c["provision"]["purpose"][0]["code"] for c in by_type["Consent"]] == ["research"]
    note = by_type["DocumentReference"][0]
    assert base64.b64decode(note["content"][0]["attachment"]["data"]).decode() == NOTE_TEXT
    patient_refs = {ref for r in resources for ref in _references(r) if ref.startswith("Patient/")}
    assert patient_refs == {f"Patient/{mine['Patient']}"}
    text = json.dumps(body)
    assert not any(other_id in text for other_id in [*other.values(), *foreign.values()])
    # Who accessed the record: the clinician who built it, named by id, never by name.
    agents = [e["agent"][0]["who"] for e in by_type["AuditEvent"]]
    actors = {who.get("identifier", {}).get("value") for who in agents}
    assert clinician.member.user_id in actors
    assert {e["entity"][0]["what"]["reference"] for e in by_type["AuditEvent"]} == {
        f"Patient/{mine['Patient']}"
    }
    assert body["status"] == "completed"
    summary = body["summary"]
    assert summary["language"] == "en"
    assert "- Clinical notes: 1" in summary["text"]
    assert "- Consent decisions: 1" in summary["text"]
    assert f"{clinician.member.user_id}: " in summary["text"]
    assert "Quispe" not in summary["text"]  # counts and ids, never the data itself


async def test_access_report_when_fulfilled_is_audited_stepped_and_cannot_be_repeated(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-access-audit", "nurse", "admin")
    patient_id = (await create_patient(client, staff["nurse"]))["id"]
    filed = await file_request(client, staff["nurse"], patient_id, "access", channel="portal")
    url = f"/api/v1/data-requests/{filed['id']}"

    # Act
    first = await client.post(f"{url}/access-report", headers=staff["admin"].headers)
    again = await client.post(f"{url}/access-report", headers=staff["admin"].headers)
    as_export = await client.post(f"{url}/export", headers=staff["admin"].headers)
    read = await client.get(url, headers=staff["admin"].headers)

    # Assert
    assert first.status_code == 200, first.text
    assert first.json()["summary"]["language"] == "es"  # the patient's preferred language
    assert "## Lo que tenemos sobre usted" in first.json()["summary"]["text"]
    assert_problem(again, 409, "request_closed")
    assert_problem(as_export, 409, "wrong_request_kind")
    request = read.json()
    assert request["status"] == "completed"
    assert request["handled_by"] == staff["admin"].member.user_id
    assert request["completed_at"] is not None
    assert [(s["action"], s["status"]) for s in request["steps"]] == [
        ("received", "received"),
        ("started", "in_progress"),
        ("report_generated", "completed"),
    ]
    # The accesses listed: the registration, the request's receipt and the report's own read.
    assert request["result"]["resources"] == {"Patient": 1, "AuditEvent": 3}
    async with owner_engine.connect() as conn:
        actions = (
            await conn.execute(
                select(AuditEvent.action, AuditEvent.purpose, AuditEvent.outcome)
                .where(AuditEvent.target_id == patient_id, AuditEvent.action.like("%.%"))
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert [tuple(a) for a in actions if a[1] == "data_subject_rights"] == [
        ("dsr.access.receive", "data_subject_rights", "success"),
        ("records.patient.subject_read", "data_subject_rights", "success"),
        ("dsr.access.report", "data_subject_rights", "success"),
        ("dsr.request.read", "data_subject_rights", "success"),
    ]


async def test_portability_export_when_fulfilled_is_a_fhir_collection_without_the_access_log(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-export", "clinician", "admin")
    ids = await whole_record(client, staff["clinician"], "DSR-X")
    filed = await file_request(client, staff["clinician"], ids["Patient"], "portability")

    # Act
    response = await client.post(
        f"/api/v1/data-requests/{filed['id']}/export", headers=staff["admin"].headers
    )
    read = await client.get(f"/api/v1/data-requests/{filed['id']}", headers=staff["admin"].headers)

    # Assert
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert "attachment" in response.headers["content-disposition"]
    bundle = response.json()
    Bundle.model_validate(bundle)
    kinds = {r["resourceType"] for r in _resources(bundle)}
    assert kinds == RECORD_TYPES
    assert {r["id"] for r in _resources(bundle)} == set(ids.values())
    assert bundle["identifier"]["value"] == filed["id"]
    assert read.json()["status"] == "completed"
    assert read.json()["result"]["resources"]["Observation"] == 1


async def test_dsr_routes_when_role_lacks_permission_are_403(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-perms", "clinician", "auditor", "billing")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    filed = await file_request(client, staff["clinician"], patient_id, "access")

    # Act
    billing_files = await client.post(
        f"/api/v1/patients/{patient_id}/data-requests",
        json={"kind": "access"},
        headers=staff["billing"].headers,
    )
    clinician_lists = await client.get("/api/v1/data-requests", headers=staff["clinician"].headers)
    auditor_fulfils = await client.post(
        f"/api/v1/data-requests/{filed['id']}/access-report", headers=staff["auditor"].headers
    )
    auditor_reads = await client.get(
        f"/api/v1/data-requests/{filed['id']}", headers=staff["auditor"].headers
    )

    # Assert
    assert_problem(billing_files, 403, "permission_denied")
    assert_problem(clinician_lists, 403, "permission_denied")
    assert_problem(auditor_fulfils, 403, "permission_denied")
    assert auditor_reads.status_code == 200
    assert auditor_reads.json()["status"] == "received"
