"""Encounters over the JSON API: record, read, list with paging, update along the status
lifecycle, permissions per role, bounded input, the reason sealed at rest, and one audit entry
per access naming the patient."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.platform.phi import token_version
from tests.integration.records.isolation_notes import create_encounter, encounter_body
from tests.integration.records.test_patients_api import audit_rows
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem


def encounters_of(patient_id: str) -> str:
    return f"/api/v1/patients/{patient_id}/encounters"


async def test_record_then_read_and_list_return_the_encounter_and_audit_each_access(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "enc-read", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    patient = await create_patient(client, clinician)

    created = await create_encounter(
        client,
        clinician,
        patient["id"],
        period_start="2026-11-20T10:00:00-04:00",
        period_end="2026-11-20T10:30:00-04:00",
    )
    read = await client.get(
        f"{encounters_of(patient['id'])}/{created['id']}", headers=pharmacist.headers
    )
    listed = await client.get(encounters_of(patient["id"]), headers=pharmacist.headers)

    assert read.status_code == 200, read.text
    body = read.json()
    assert body == created
    assert body["patient_id"] == patient["id"] and body["created_by"] == clinician.member.user_id
    assert body["reason_text"] == "Control de anticoagulación"
    assert (body["status"], body["class_code"], body["version"]) == ("planned", "AMB", 1)
    assert body["period_start"] == "2026-11-20T14:00:00Z"  # stored and answered in UTC
    assert body["period_end"] == "2026-11-20T14:30:00Z"
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"patient_id": patient["id"], "items": [created], "next_cursor": None}
    records = await audit_rows(owner_engine, clinician.member.organization_id)
    assert records[1:] == [
        ("records.encounter.create", patient["id"]),
        ("records.encounter.read", patient["id"]),
        ("records.encounter.list", patient["id"]),
    ]


async def test_list_pages_latest_start_first_without_repeats(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "enc-page", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    other = await create_patient(client, nurse, mrn="OTHER-1")
    await create_encounter(client, nurse, other["id"])
    starts = ["2026-11-02T09:00:00Z", "2026-11-04T09:00:00Z", "2026-11-01T09:00:00Z"]
    by_start = {
        s: (await create_encounter(client, nurse, patient["id"], period_start=s))["id"]
        for s in starts
    }

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(
            encounters_of(patient["id"]), params=params, headers=nurse.headers
        )
        assert response.status_code == 200, response.text
        seen += [e["id"] for e in response.json()["items"]]
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == 2
    assert seen == [by_start[s] for s in sorted(starts, reverse=True)]


@pytest.mark.parametrize(
    ("start", "new", "allowed"),
    [
        ("planned", "in-progress", True),
        ("in-progress", "finished", True),
        ("planned", "cancelled", True),
        ("in-progress", "cancelled", True),
        ("finished", "entered-in-error", True),
        ("cancelled", "entered-in-error", True),
        ("planned", "finished", False),
        ("in-progress", "planned", False),
        ("finished", "in-progress", False),
        ("finished", "cancelled", False),
        ("cancelled", "planned", False),
        ("entered-in-error", "planned", False),
        ("entered-in-error", "finished", False),
    ],
)
async def test_status_change_follows_the_lifecycle(
    container: Container, client: AsyncClient, start: str, new: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"enc-flow-{start}-{new}", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"], status=start)
    url = f"{encounters_of(patient['id'])}/{encounter['id']}"

    response = await client.patch(url, json={"status": new}, headers=clinician.headers)

    after = (await client.get(url, headers=clinician.headers)).json()
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == new and response.json()["version"] == 2
        assert after["status"] == new
    else:
        body = assert_problem(response, 409, "invalid_status_transition")
        assert start in body["detail"] and new in body["detail"]
        assert (after["status"], after["version"]) == (start, 1)


async def test_update_changes_only_sent_fields_and_null_clears_an_optional_one(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "enc-update", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    encounter = await create_encounter(client, nurse, patient["id"], status="in-progress")

    response = await client.patch(
        f"{encounters_of(patient['id'])}/{encounter['id']}",
        json={
            "version": 1,
            "status": "finished",
            "period_end": "2026-11-20T15:00:00Z",
            "reason_text": None,
        },
        headers=nurse.headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished" and body["period_end"] == "2026-11-20T15:00:00Z"
    assert body["reason_text"] is None and body["version"] == 2
    assert body["type_code"] == encounter["type_code"]
    assert body["period_start"] == encounter["period_start"]
    actions = [a for a, _ in await audit_rows(owner_engine, nurse.member.organization_id)]
    assert actions[-1] == "records.encounter.update"


async def test_update_of_an_encounter_entered_in_error_is_a_409(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "enc-eie", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"], status="entered-in-error")

    response = await client.patch(
        f"{encounters_of(patient['id'])}/{encounter['id']}",
        json={"reason_text": "Otra razón"},
        headers=clinician.headers,
    )

    assert_problem(response, 409, "encounter_not_editable")


async def test_update_with_a_stale_version_is_a_409_and_changes_nothing(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "enc-stale", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"])
    url = f"{encounters_of(patient['id'])}/{encounter['id']}"
    await client.patch(url, json={"status": "in-progress"}, headers=clinician.headers)

    stale = await client.patch(
        url, json={"version": 1, "status": "cancelled"}, headers=clinician.headers
    )

    assert_problem(stale, 409, "version_conflict")
    now = (await client.get(url, headers=clinician.headers)).json()
    assert (now["status"], now["version"]) == ("in-progress", 2)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"period_end": "2026-11-20T13:59:59Z"}, "period_end"),
        ({"period_start": "2026-11-20T14:00:00"}, "period_start"),  # no time zone
        ({"class_code": "XYZ"}, "class_code"),
        ({"status": "done"}, "status"),
        ({"reason_text": "x" * 1001}, "reason_text"),
        ({"type_code": "t" * 65}, "type_code"),
        ({"organization_id": "someone-else"}, "organization_id"),
    ],
)
async def test_invalid_encounter_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, f"enc-bad-{field.replace('_', '-')}", "clinician")
    patient = await create_patient(client, staff["clinician"])

    response = await client.post(
        encounters_of(patient["id"]),
        json=encounter_body(**overrides),
        headers=staff["clinician"].headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [e["loc"] for e in body["errors"]] == [["body", field]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"period_end": "2026-11-19T00:00:00Z"}, "period_end"),  # before the stored start
        ({"status": None}, "status"),
        ({"period_start": None}, "period_start"),
        ({"id": "other"}, "id"),
    ],
)
async def test_invalid_update_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, change: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, f"enc-badup-{field.replace('_', '-')}", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    encounter = await create_encounter(client, nurse, patient["id"])
    url = f"{encounters_of(patient['id'])}/{encounter['id']}"

    response = await client.patch(url, json=change, headers=nurse.headers)

    body = assert_problem(response, 422, "validation_failed")
    assert [e["loc"][-1] for e in body["errors"]] == [field]
    assert (await client.get(url, headers=nurse.headers)).json()["version"] == 1


async def test_reason_is_sealed_at_rest(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "enc-seal", "clinician")
    patient = await create_patient(client, staff["clinician"])
    reason = "Sospecha de hemorragia digestiva alta"
    encounter = await create_encounter(
        client, staff["clinician"], patient["id"], reason_text=reason
    )

    async with owner_engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT reason_text FROM encounter WHERE id = :id"), {"id": encounter["id"]}
        )

    assert encounter["reason_text"] == reason
    assert token_version(stored) >= 1
    assert "hemorragia" not in stored


async def test_encounter_of_another_patient_or_unknown_is_a_404(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "enc-404", "clinician")
    clinician = staff["clinician"]
    one = await create_patient(client, clinician)
    two = await create_patient(client, clinician, mrn="TWO-1")
    encounter = await create_encounter(client, clinician, one["id"])

    wrong_patient = await client.get(
        f"{encounters_of(two['id'])}/{encounter['id']}", headers=clinician.headers
    )
    unknown = await client.get(
        f"{encounters_of(one['id'])}/00000000-0000-0000-0000-000000000000",
        headers=clinician.headers,
    )
    no_patient = await client.get(
        encounters_of("00000000-0000-0000-0000-000000000000"), headers=clinician.headers
    )

    wrong = assert_problem(wrong_patient, 404, "not_found")
    missing = assert_problem(unknown, 404, "not_found")
    assert (wrong["title"], wrong["detail"]) == (missing["title"], missing["detail"])
    assert_problem(no_patient, 404, "not_found")


@pytest.mark.parametrize(
    ("role", "method", "allowed"),
    [
        ("clinician", "post", True),
        ("nurse", "post", True),
        ("pharmacist", "post", False),
        ("billing", "post", False),
        ("agent", "post", False),
        ("pharmacist", "get", True),
        ("nurse", "get", True),
        ("billing", "get", False),
        ("agent", "get", False),
        ("researcher", "get", False),
        ("admin", "get", False),
    ],
)
async def test_encounter_permissions_per_role(
    container: Container, client: AsyncClient, role: str, method: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"enc-perm-{role}-{method}", role, "clinician")
    patient = await create_patient(client, staff["clinician"])
    existing = await create_encounter(client, staff["clinician"], patient["id"])
    who = staff[role]

    if method == "post":
        response = await client.post(
            encounters_of(patient["id"]), json=encounter_body(), headers=who.headers
        )
    else:
        response = await client.get(
            f"{encounters_of(patient['id'])}/{existing['id']}", headers=who.headers
        )

    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert_problem(response, 403, "permission_denied")
