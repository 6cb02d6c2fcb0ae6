"""Correction requests: the proposed value and the reason are kept encrypted with the request;
an administrator accepts (the change goes through the record's own update use case, so the
record's version, audit entry and event are kept) or rejects it with a note; a change the record
refuses records no decision; every step is in the request's history."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance.models import AuditEvent
from tests.integration.governance.dsr_support import file_request, whole_record
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem


def _correction(target: str, field: str, value: str, entry_id: str | None = None) -> dict[str, Any]:
    return {
        "target": target,
        "entry_id": entry_id,
        "field": field,
        "proposed_value": value,
        "reason": "El dato registrado no es correcto",
    }


async def _decide(client: AsyncClient, admin: Any, request_id: str, **body: Any) -> Any:
    return await client.post(
        f"/api/v1/data-requests/{request_id}/decision", json=body, headers=admin.headers
    )


async def test_correction_when_accepted_changes_demographics_through_the_record_with_history(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-fix", "agent", "clinician", "admin")
    agent, admin = staff["agent"], staff["admin"]
    patient_id = (await create_patient(client, agent))["id"]
    filed = await file_request(
        client,
        agent,
        patient_id,
        "correction",
        correction=_correction("demographics", "family_name", "Quispe Choque"),
    )

    # Act
    decided = await _decide(client, admin, filed["id"], decision="accept")
    patient = await client.get(f"/api/v1/patients/{patient_id}", headers=staff["clinician"].headers)
    read = await client.get(f"/api/v1/data-requests/{filed['id']}", headers=admin.headers)

    # Assert
    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["outcome_code"]) == ("completed", "accepted")
    assert decided.json()["result"] == {"applied_version": 2}
    assert (patient.json()["family_name"], patient.json()["version"]) == ("Quispe Choque", 2)
    request = read.json()
    assert request["correction"]["proposed_value"] == "Quispe Choque"
    assert request["correction"]["reason"] == "El dato registrado no es correcto"
    assert [(s["action"], s["status"]) for s in request["steps"]] == [
        ("received", "received"),
        ("started", "in_progress"),
        ("accepted", "completed"),
    ]
    async with owner_engine.connect() as conn:
        updates = (
            await conn.execute(
                select(AuditEvent.actor_id).where(
                    AuditEvent.target_id == patient_id,
                    AuditEvent.action == "records.patient.update",
                )
            )
        ).all()
        sealed = (
            await conn.execute(
                text("SELECT proposed_value, request_reason FROM data_subject_request")
            )
        ).one()
    assert [a for (a,) in updates] == [admin.member.user_id]  # the record's own audit entry
    for token in sealed:
        assert token.startswith("v") and "Quispe" not in token and "registrado" not in token


async def test_correction_of_a_clinical_entry_when_accepted_updates_that_entry(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-fix-entry", "clinician", "admin")
    ids = await whole_record(client, staff["clinician"], "FX-1")
    filed = await file_request(
        client,
        staff["clinician"],
        ids["Patient"],
        "correction",
        correction=_correction(
            "condition", "verification_status", "refuted", entry_id=ids["Condition"]
        ),
    )

    # Act
    decided = await _decide(client, staff["admin"], filed["id"], decision="accept", note="ECG ok")
    condition = await client.get(
        f"/fhir/Condition/{ids['Condition']}", headers=staff["clinician"].headers
    )

    # Assert
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision_note"] == "ECG ok"
    resource = condition.json()
    assert resource["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert resource["meta"]["versionId"] == "2"


async def test_correction_when_rejected_needs_a_note_and_leaves_the_record_as_it_was(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-reject", "clinician", "admin")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    filed = await file_request(
        client,
        staff["clinician"],
        patient_id,
        "correction",
        correction=_correction("demographics", "birth_date", "1957-03-14"),
    )

    # Act
    without_note = await _decide(client, staff["admin"], filed["id"], decision="reject")
    rejected = await _decide(
        client, staff["admin"], filed["id"], decision="reject", note="Documento no coincide"
    )
    again = await _decide(client, staff["admin"], filed["id"], decision="accept")
    patient = await client.get(f"/api/v1/patients/{patient_id}", headers=staff["clinician"].headers)

    # Assert
    problem = assert_problem(without_note, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["note"]
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_note"] == "Documento no coincide"
    assert_problem(again, 409, "request_closed")
    assert (patient.json()["birth_date"], patient.json()["version"]) == ("1956-03-14", 1)


async def test_correction_when_the_record_refuses_the_change_records_no_decision(
    container: Container, client: AsyncClient
) -> None:
    # Arrange: a final result cannot go back to "registered" (FHIR Observation lifecycle).
    staff = await clinic(container, client, "dsr-refused-fix", "clinician", "admin")
    ids = await whole_record(client, staff["clinician"], "RF-1")
    filed = await file_request(
        client,
        staff["clinician"],
        ids["Patient"],
        "correction",
        correction=_correction("observation", "status", "registered", ids["Observation"]),
    )

    # Act
    decided = await _decide(client, staff["admin"], filed["id"], decision="accept")
    read = await client.get(f"/api/v1/data-requests/{filed['id']}", headers=staff["admin"].headers)

    # Assert
    assert decided.status_code == 409, decided.text
    assert read.json()["status"] == "received"
    assert [s["action"] for s in read.json()["steps"]] == ["received"]
