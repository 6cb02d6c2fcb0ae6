"""Tracking data-subject requests: each is taken with its kind, channel, receipt time and the
LGPD deadline (15 days), starts its history, is audited and announced; listings filter by
status, kind, patient and overdue; bad input is a 422 naming the field and stores nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.kernel.clock import FixedClock
from clinicos.platform.db.models import OutboxMessage
from tests.integration.governance.dsr_support import file_request, whole_record
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem


async def test_request_when_received_has_a_fifteen_day_deadline_a_first_step_and_an_event(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-take", "agent", "admin")
    patient_id = (await create_patient(client, staff["agent"]))["id"]

    # Act
    body = await file_request(client, staff["agent"], patient_id, "portability", channel="phone")

    # Assert
    received = datetime.fromisoformat(body["received_at"])
    assert datetime.fromisoformat(body["deadline_at"]) - received == timedelta(days=15)
    assert (body["kind"], body["status"], body["channel"]) == ("portability", "received", "phone")
    assert body["received_by"] == staff["agent"].member.user_id
    assert body["overdue"] is False and body["completed_at"] is None
    assert [(s["seq"], s["action"], s["status"]) for s in body["steps"]] == [
        (1, "received", "received")
    ]
    async with owner_engine.connect() as conn:
        events = (
            await conn.execute(
                select(OutboxMessage.payload).where(
                    OutboxMessage.event_type == "governance.DataSubjectRequestReceived"
                )
            )
        ).all()
        audited = await conn.scalar(
            text("SELECT count(*) FROM audit_event WHERE action = 'dsr.portability.receive'")
        )
    assert [e.payload["request_id"] for e in events] == [body["id"]]
    assert audited == 1


async def test_list_when_filtered_by_status_kind_patient_and_overdue_returns_only_matching(
    container: Container, client: AsyncClient
) -> None:
    # Arrange: three requests; the access one is answered; then 16 days pass.
    staff = await clinic(container, client, "dsr-list", "clinician", "auditor", "admin")
    clinician, auditor, admin = staff["clinician"], staff["auditor"], staff["admin"]
    first = (await create_patient(client, clinician, mrn="L-1"))["id"]
    second = (await create_patient(client, clinician, mrn="L-2"))["id"]
    access = await file_request(client, clinician, first, "access")
    erasure = await file_request(client, clinician, first, "erasure")
    export = await file_request(client, clinician, second, "portability")
    answered = await client.post(
        f"/api/v1/data-requests/{access['id']}/access-report", headers=admin.headers
    )
    assert answered.status_code == 200, answered.text
    container.clock = FixedClock(container.clock.now() + timedelta(days=16))

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/v1/data-requests", params=params, headers=auditor.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    # Act
    everything = await ids()
    overdue = await ids(overdue="true")
    on_time = await ids(overdue="false")
    completed = await ids(status="completed")
    erasures = await ids(kind="erasure")
    of_first = await ids(patient_id=first)
    page_one = await client.get(
        "/api/v1/data-requests", params={"limit": 2}, headers=auditor.headers
    )
    page_two = await ids(limit=2, cursor=page_one.json()["next_cursor"])
    bad_status = await client.get(
        "/api/v1/data-requests", params={"status": "lost"}, headers=auditor.headers
    )

    # Assert
    assert everything == [export["id"], erasure["id"], access["id"]]  # newest first
    assert overdue == [export["id"], erasure["id"]]
    assert on_time == [access["id"]]
    assert completed == [access["id"]]
    assert erasures == [erasure["id"]]
    assert of_first == [erasure["id"], access["id"]]
    assert [i["id"] for i in page_one.json()["items"]] == everything[:2]
    assert page_two == everything[2:]
    listed = page_one.json()["items"][0]
    assert listed["overdue"] is True and listed["correction"] is None
    problem = assert_problem(bad_status, 422, "validation_failed")
    assert [e["field"].split(".")[-1] for e in problem["errors"]] == ["status"]


CORRECTION = {
    "target": "demographics",
    "field": "family_name",
    "proposed_value": "Quispe Choque",
    "reason": "Mi apellido materno está mal escrito",
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "forget_me"}, "kind"),
        ({"kind": "access", "channel": "carrier_pigeon"}, "channel"),
        ({"kind": "correction"}, "correction"),
        ({"kind": "access", "correction": CORRECTION}, "correction"),
        ({"kind": "correction", "correction": {**CORRECTION, "target": "tattoo"}}, "target"),
        ({"kind": "correction", "correction": {**CORRECTION, "field": "mrn"}}, "field"),
        (
            {"kind": "correction", "correction": {**CORRECTION, "field": "birth_date"}},
            "proposed_value",
        ),
        ({"kind": "correction", "correction": {**CORRECTION, "reason": ""}}, "reason"),
        (
            {
                "kind": "correction",
                "correction": {
                    **CORRECTION,
                    "target": "condition",
                    "field": "clinical_status",
                    "proposed_value": "resolved",
                },
            },
            "entry_id",
        ),
        ({"kind": "erasure", "erasure_categories": ["memories"]}, "0"),
        ({"kind": "access", "erasure_categories": ["contact"]}, "erasure_categories"),
        ({"kind": "access", "patient_name": "Ana"}, "patient_name"),
    ],
    ids=[
        "kind",
        "channel",
        "correction-missing",
        "correction-on-access",
        "target",
        "field",
        "value",
        "reason",
        "entry-id",
        "category",
        "categories-on-access",
        "extra",
    ],
)
async def test_request_when_input_is_invalid_is_422_naming_the_field_and_stores_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    body: dict[str, Any],
    field: str,
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-bad", "clinician")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]

    # Act
    response = await client.post(
        f"/api/v1/patients/{patient_id}/data-requests",
        json=body,
        headers=staff["clinician"].headers,
    )

    # Assert
    problem = assert_problem(response, 422, "validation_failed")
    assert any(e["field"].split(".")[-1] == field for e in problem["errors"]), problem
    assert "Quispe Choque" not in response.text  # a proposed value is never echoed
    async with owner_engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM data_subject_request"))
    assert count == 0


async def test_request_when_patient_or_entry_is_unknown_is_404_or_422(
    container: Container, client: AsyncClient
) -> None:
    # Arrange
    staff = await clinic(container, client, "dsr-unknown", "clinician", "admin")
    ids = await whole_record(client, staff["clinician"], "U-1")
    other = await whole_record(client, staff["clinician"], "U-2")
    url = f"/api/v1/patients/{ids['Patient']}/data-requests"

    # Act
    unknown_patient = await client.post(
        "/api/v1/patients/00000000-0000-4000-8000-000000000000/data-requests",
        json={"kind": "access"},
        headers=staff["clinician"].headers,
    )
    others_entry = await client.post(
        url,
        json={
            "kind": "correction",
            "correction": {
                "target": "condition",
                "entry_id": other["Condition"],
                "field": "verification_status",
                "proposed_value": "refuted",
                "reason": "Nunca tuve fibrilación auricular",
            },
        },
        headers=staff["clinician"].headers,
    )
    unknown_request = await client.get(
        "/api/v1/data-requests/00000000-0000-4000-8000-000000000000",
        headers=staff["admin"].headers,
    )

    # Assert
    assert_problem(unknown_patient, 404, "not_found")
    problem = assert_problem(others_entry, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["correction.entry_id"]
    assert_problem(unknown_request, 404, "not_found")
