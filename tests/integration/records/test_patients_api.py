"""Patients over the JSON API: register, read, update, exact-match search with paging,
permissions per role, and one audit entry per patient disclosed or changed."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from tests.support.records_fixtures import clinic, create_patient, patient_body
from tests.support.tenancy_fixtures import assert_problem


async def audit_rows(owner_engine: AsyncEngine, organization_id: str) -> list[tuple[str, str]]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action, target_id FROM audit_event WHERE organization_id = :org "
                "AND action LIKE 'records.%' ORDER BY seq"
            ),
            {"org": organization_id},
        )
        return [(r.action, r.target_id) for r in rows]


async def test_register_then_read_returns_the_demographics_and_audits_both(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "rec-read", "clinician", "billing")
    created = await create_patient(client, staff["clinician"])

    read = await client.get(f"/api/v1/patients/{created['id']}", headers=staff["billing"].headers)

    assert read.status_code == 200, read.text
    body = read.json()
    assert body == created
    assert body["given_name"] == "Ana María" and body["birth_date"] == "1956-03-14"
    assert body["address"]["city"] == "El Alto" and body["version"] == 1
    org = staff["clinician"].member.organization_id
    assert await audit_rows(owner_engine, org) == [
        ("records.patient.create", created["id"]),
        ("records.patient.read", created["id"]),
    ]


@pytest.mark.parametrize(
    ("criterion", "value"),
    [
        ("mrn", "MRN-0001"),
        ("name", "  ANA maría   quispe MAMANI "),
        ("family_name", "quispe mamani"),
        ("national_id", "4821337"),
        ("phone", "59122110000"),
        ("email", "Ana.Quispe@Example.BO"),
    ],
)
async def test_search_by_exact_identifier_finds_only_that_patient(
    container: Container, client: AsyncClient, criterion: str, value: str
) -> None:
    staff = await clinic(container, client, f"rec-search-{criterion.replace('_', '-')}", "agent")
    agent = staff["agent"]
    wanted = await create_patient(client, agent)
    await create_patient(
        client,
        agent,
        mrn="MRN-0002",
        given_name="Juan",
        family_name="Condori",
        national_id="999",
        phone="+55 11 5555-0000",
        email="juan@example.br",
    )

    found = await client.post(
        "/api/v1/patients/search", json={criterion: value}, headers=agent.headers
    )

    assert found.status_code == 200, found.text
    assert [p["id"] for p in found.json()["items"]] == [wanted["id"]]


async def test_search_with_no_match_is_an_empty_page_and_audits_nothing(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "rec-nomatch", "clinician")
    await create_patient(client, staff["clinician"])

    found = await client.post(
        "/api/v1/patients/search", json={"mrn": "nobody"}, headers=staff["clinician"].headers
    )

    assert found.json() == {"items": [], "next_cursor": None}
    actions = [
        a for a, _ in await audit_rows(owner_engine, staff["clinician"].member.organization_id)
    ]
    assert "records.patient.search" not in actions


async def test_list_pages_with_a_cursor_newest_first_without_repeats(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "rec-page", "nurse")
    nurse = staff["nurse"]
    ids = [(await create_patient(client, nurse, mrn=f"P-{n}"))["id"] for n in range(5)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/patients", params=params, headers=nurse.headers)).json()
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(ids))
    searched = [
        t
        for a, t in await audit_rows(owner_engine, nurse.member.organization_id)
        if a == "records.patient.search"
    ]
    assert sorted(searched) == sorted(ids)  # one entry per patient disclosed


async def test_search_criteria_in_the_query_string_are_not_accepted(
    container: Container, client: AsyncClient
) -> None:
    """PHI stays out of URLs: the list route takes no identifying criteria."""
    staff = await clinic(container, client, "rec-no-url-phi", "clinician")
    await create_patient(client, staff["clinician"])
    await create_patient(client, staff["clinician"], mrn="OTHER", family_name="Otro")

    listed = await client.get(
        "/api/v1/patients", params={"mrn": "MRN-0001"}, headers=staff["clinician"].headers
    )

    # The unknown parameter filters nothing: both patients come back.
    assert len(listed.json()["items"]) == 2


async def test_invalid_cursor_is_a_400_naming_the_parameter(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-cursor", "nurse")

    response = await client.get(
        "/api/v1/patients", params={"cursor": "not-a-cursor"}, headers=staff["nurse"].headers
    )

    body = assert_problem(response, 400, "invalid_cursor")
    assert "cursor" in body["detail"]


async def test_update_changes_only_sent_fields_and_bumps_the_version(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-update", "nurse")
    nurse = staff["nurse"]
    created = await create_patient(client, nurse)

    updated = await client.patch(
        f"/api/v1/patients/{created['id']}",
        json={"version": 1, "phone": "+591 7000 0000", "email": None},
        headers=nurse.headers,
    )

    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["phone"] == "+591 7000 0000" and body["email"] is None
    assert body["family_name"] == created["family_name"] and body["version"] == 2
    by_new_phone = await client.post(
        "/api/v1/patients/search", json={"phone": "59170000000"}, headers=nurse.headers
    )
    assert [p["id"] for p in by_new_phone.json()["items"]] == [created["id"]]
    by_old_phone = await client.post(
        "/api/v1/patients/search", json={"phone": "59122110000"}, headers=nurse.headers
    )
    assert by_old_phone.json()["items"] == []


async def test_update_with_a_stale_version_is_a_409_and_changes_nothing(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-stale", "nurse")
    nurse = staff["nurse"]
    created = await create_patient(client, nurse)
    await client.patch(
        f"/api/v1/patients/{created['id']}", json={"phone": "+591 1"}, headers=nurse.headers
    )

    stale = await client.patch(
        f"/api/v1/patients/{created['id']}",
        json={"version": 1, "family_name": "Otro"},
        headers=nurse.headers,
    )

    assert_problem(stale, 409, "version_conflict")
    now = (await client.get(f"/api/v1/patients/{created['id']}", headers=nurse.headers)).json()
    assert now["family_name"] == "Quispe Mamani" and now["version"] == 2


async def test_clearing_a_required_field_is_a_422_naming_it(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-null", "nurse")
    created = await create_patient(client, staff["nurse"])

    response = await client.patch(
        f"/api/v1/patients/{created['id']}",
        json={"family_name": None},
        headers=staff["nurse"].headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "family_name"]


async def test_duplicate_mrn_is_a_409_in_one_organization_but_free_in_another(
    container: Container, client: AsyncClient
) -> None:
    one = await clinic(container, client, "rec-mrn-one", "clinician")
    two = await clinic(container, client, "rec-mrn-two", "clinician")
    await create_patient(client, one["clinician"], mrn="A-1")

    again = await client.post(
        "/api/v1/patients",
        json=patient_body(mrn=" A-1 ", family_name="Other"),
        headers=one["clinician"].headers,
    )
    elsewhere = await client.post(
        "/api/v1/patients", json=patient_body(mrn="A-1"), headers=two["clinician"].headers
    )

    assert_problem(again, 409, "patient_mrn_taken")
    assert elsewhere.status_code == 201


async def test_invalid_fields_are_422_naming_them_without_echoing_the_value(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-invalid", "clinician")

    response = await client.post(
        "/api/v1/patients",
        json=patient_body(email="ana-at-example", sex="f", birth_date="1956-02-30"),
        headers=staff["clinician"].headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert fields == {("body", "email"), ("body", "sex"), ("body", "birth_date")}
    assert "ana-at-example" not in response.text


async def test_unknown_field_such_as_organization_id_is_refused(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rec-extra", "clinician")

    response = await client.post(
        "/api/v1/patients",
        json=patient_body(organization_id="someone-else"),
        headers=staff["clinician"].headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "organization_id"]


@pytest.mark.parametrize(
    ("role", "method", "allowed"),
    [
        ("clinician", "post", True),
        ("nurse", "post", True),
        ("agent", "post", True),
        ("billing", "post", False),
        ("pharmacist", "post", False),
        ("researcher", "post", False),
        ("admin", "post", False),
        ("billing", "get", True),
        ("pharmacist", "get", True),
        ("researcher", "get", False),
        ("admin", "get", False),
    ],
)
async def test_patient_permissions_per_role(
    container: Container, client: AsyncClient, role: str, method: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"rec-perm-{role}-{method}", role, "clinician")
    existing = await create_patient(client, staff["clinician"])
    who = staff[role]

    if method == "post":
        response = await client.post(
            "/api/v1/patients", json=patient_body(mrn="NEW-1"), headers=who.headers
        )
    else:
        response = await client.get(f"/api/v1/patients/{existing['id']}", headers=who.headers)

    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert_problem(response, 403, "permission_denied")


async def test_unknown_patient_is_a_404(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "rec-404", "clinician")

    response = await client.get(
        "/api/v1/patients/00000000-0000-0000-0000-000000000000",
        headers=staff["clinician"].headers,
    )

    assert_problem(response, 404, "not_found")
