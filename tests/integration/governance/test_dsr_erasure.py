"""Erasure and legal holds: what the law lets us erase (contact details) is erased through the
record, with its version, event and audit; a legal hold or a category under legal retention
refuses the request with a 409 naming the reason — the refusal itself recorded — and erases
nothing; holds are placed and lifted by administrators, with reasons, and audited."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance import under_legal_hold
from clinicos.governance.models import AuditEvent
from clinicos.platform.db.models import OutboxMessage
from tests.integration.governance.dsr_support import file_request, whole_record
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, assert_problem


async def _erase(client: AsyncClient, admin: SignedIn, request_id: str) -> Any:
    return await client.post(f"/api/v1/data-requests/{request_id}/erasure", headers=admin.headers)


async def _hold(client: AsyncClient, admin: SignedIn, patient_id: str, **body: Any) -> Any:
    return await client.post(
        f"/api/v1/patients/{patient_id}/legal-holds",
        json={"reason_code": "litigation", "reference": "TJ-BO/2026:0042", **body},
        headers=admin.headers,
    )


async def test_erasure_when_no_hold_erases_contact_details_and_keeps_the_record(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-erase", "clinician", "admin")
    clinician, admin = staff["clinician"], staff["admin"]
    ids = await whole_record(client, clinician, "ER-1")
    filed = await file_request(client, clinician, ids["Patient"], "erasure")
    phone = {"phone": "+591 2 211-0000"}
    found_before = await client.post("/fhir/Patient/_search", data=phone, headers=clinician.headers)

    # Act
    response = await _erase(client, admin, filed["id"])
    patient = await client.get(f"/api/v1/patients/{ids['Patient']}", headers=clinician.headers)
    found_after = await client.post("/fhir/Patient/_search", data=phone, headers=clinician.headers)
    everything = await client.get(
        f"/fhir/Patient/{ids['Patient']}/$everything", headers=clinician.headers
    )

    # Assert
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["erased"] == {"contact": ["phone", "email", "preferred_language"]}
    assert set(body["retained"]) == {
        "identification",
        "clinical",
        "consent",
        "audit",
        "requests",
    }
    assert "13.787/2018" in body["retained"]["clinical"]
    demographics = patient.json()
    assert (demographics["phone"], demographics["email"]) == (None, None)
    assert demographics["preferred_language"] is None
    assert demographics["family_name"] == "Quispe Mamani"  # identification is kept
    assert demographics["version"] == 2
    # The search index went with the value.
    assert len(found_before.json()["entry"]) == 1
    assert found_after.json().get("entry", []) == []
    assert len(everything.json()["entry"]) == 7  # every clinical entry is still there
    async with owner_engine.connect() as conn:
        audited = (
            await conn.execute(
                select(AuditEvent.action).where(
                    AuditEvent.target_id == ids["Patient"],
                    AuditEvent.action.in_(["records.patient.erase_contact", "dsr.erasure.erase"]),
                )
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage.payload).where(
                    OutboxMessage.event_type == "records.PatientUpdated"
                )
            )
        ).all()
    assert sorted(a for (a,) in audited) == ["dsr.erasure.erase", "records.patient.erase_contact"]
    assert [e.payload["fields"] for e in events] == [["phone", "email", "preferred_language"]]


async def test_erasure_when_patient_under_legal_hold_is_409_recorded_as_refused_until_lifted(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-hold", "clinician", "admin")
    clinician, admin = staff["clinician"], staff["admin"]
    patient_id = (await create_patient(client, clinician))["id"]
    placed = await _hold(client, admin, patient_id)
    assert placed.status_code == 201, placed.text
    filed = await file_request(client, clinician, patient_id, "erasure")

    # Act
    refused = await _erase(client, admin, filed["id"])
    request = await client.get(f"/api/v1/data-requests/{filed['id']}", headers=admin.headers)
    phone_kept = (
        await client.get(f"/api/v1/patients/{patient_id}", headers=clinician.headers)
    ).json()["phone"]
    holds = await client.get(f"/api/v1/patients/{patient_id}/legal-holds", headers=admin.headers)
    lifted = await client.post(
        f"/api/v1/legal-holds/{placed.json()['id']}/lift",
        json={"reason_code": "resolved"},
        headers=admin.headers,
    )
    lifted_again = await client.post(
        f"/api/v1/legal-holds/{placed.json()['id']}/lift",
        json={"reason_code": "resolved"},
        headers=admin.headers,
    )
    second = await file_request(client, clinician, patient_id, "erasure")
    allowed = await _erase(client, admin, second["id"])

    # Assert
    problem = assert_problem(refused, 409, "legal_hold")
    assert "litigation" in problem["detail"]
    assert patient_id not in problem["detail"]
    assert problem["reason_codes"] == ["litigation"]
    assert request.json()["status"] == "refused"
    assert request.json()["outcome_code"] == "legal_hold"
    assert [s["action"] for s in request.json()["steps"]] == ["received", "started", "refused"]
    assert phone_kept == "+591 2 211-0000"
    assert holds.json()["under_hold"] is True
    assert holds.json()["holds"][0]["reference"] == "TJ-BO/2026:0042"
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert lifted.json()["lift_reason_code"] == "resolved"
    assert_problem(lifted_again, 409, "conflict")
    assert allowed.status_code == 200, allowed.text
    async with owner_engine.connect() as conn:
        refusal = (
            await conn.execute(
                select(AuditEvent.outcome).where(
                    AuditEvent.target_id == patient_id,
                    AuditEvent.action == "dsr.erasure.refuse",
                )
            )
        ).all()
        hold_audit = (
            await conn.execute(
                select(AuditEvent.action, AuditEvent.actor_id).where(
                    AuditEvent.target_id == patient_id, AuditEvent.action.like("legal_hold.%")
                )
            )
        ).all()
    assert [o for (o,) in refusal] == ["denied"]
    assert sorted(a for a, _ in hold_audit) == [
        "legal_hold.lift",
        "legal_hold.place",
        "legal_hold.read",
    ]
    assert {actor for _, actor in hold_audit} == {admin.member.user_id}


async def test_erasure_when_retained_category_asked_is_409_naming_it_and_erases_nothing(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-retain", "clinician", "admin")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    filed = await file_request(
        client,
        staff["clinician"],
        patient_id,
        "erasure",
        erasure_categories=["contact", "clinical"],
    )

    # Act
    refused = await _erase(client, staff["admin"], filed["id"])
    patient = await client.get(f"/api/v1/patients/{patient_id}", headers=staff["clinician"].headers)

    # Assert
    problem = assert_problem(refused, 409, "legal_retention")
    assert set(problem["categories"]) == {"clinical"}
    assert "Lei 13.787/2018 art. 6" in problem["categories"]["clinical"]
    assert "clinical must be kept" in problem["detail"]
    assert patient.json()["email"] == "ana.quispe@example.bo"
    assert patient.json()["version"] == 1


async def test_under_legal_hold_when_asked_in_a_unit_of_work_follows_place_and_lift(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-hold-check", "clinician", "admin")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    org = staff["admin"].member.organization_id

    async def held() -> bool:
        async with container.uow(org) as uow:
            return await under_legal_hold(uow, org, patient_id)

    # Act
    before = await held()
    placed = await _hold(client, staff["admin"], patient_id, reason_code="insurance_claim")
    during = await held()
    await client.post(
        f"/api/v1/legal-holds/{placed.json()['id']}/lift",
        json={"reason_code": "withdrawn"},
        headers=staff["admin"].headers,
    )
    after = await held()

    # Assert
    assert (before, during, after) == (False, True, False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason_code": "curiosity"}, "reason_code"),
        ({"reason_code": "litigation", "reference": "case with spaces"}, "reference"),
        ({"reason_code": "litigation", "note": "x"}, "note"),
    ],
    ids=["reason", "reference", "extra"],
)
async def test_legal_hold_when_body_invalid_is_422_naming_the_field_and_places_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    body: dict[str, Any],
    field: str,
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-hold-bad", "clinician", "admin")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]

    # Act
    response = await client.post(
        f"/api/v1/patients/{patient_id}/legal-holds", json=body, headers=staff["admin"].headers
    )
    by_clinician = await client.post(
        f"/api/v1/patients/{patient_id}/legal-holds",
        json={"reason_code": "litigation"},
        headers=staff["clinician"].headers,
    )

    # Assert
    problem = assert_problem(response, 422, "validation_failed")
    assert any(e["field"].split(".")[-1] == field for e in problem["errors"])
    assert_problem(by_clinician, 403, "permission_denied")
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM legal_hold"))).scalar() == 0
