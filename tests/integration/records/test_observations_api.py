"""Observations over the JSON API: record, read, list with filters and paging, amend; the
terminology and plausibility checks that turn bad input into a 422 naming the field; one audit
entry per access; and ``latest_observations``, the read decision support relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.records.services.clinical import latest_observations
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of, assert_problem

WEIGHT, HEIGHT, CREATININE_MG, CREATININE_UMOL, INR = (
    "29463-7",
    "8302-2",
    "2160-0",
    "14682-9",
    "6301-6",
)


def ago(days: float = 0, hours: float = 0) -> str:
    moment = datetime.now(UTC) - timedelta(days=days, hours=hours)
    return moment.isoformat().replace("+00:00", "Z")


def weight(value: Any = 72.5, **overrides: Any) -> dict[str, Any]:
    body = {
        "code": WEIGHT,
        "display": "Body weight",
        "category": "vital-signs",
        "value": value,
        "unit": "kg",
        "effective_at": ago(days=1),
    }
    return body | overrides


def blood_pressure(systolic: Any = 128, diastolic: Any = 82) -> dict[str, Any]:
    return {
        "code": "85354-9",
        "category": "vital-signs",
        "effective_at": ago(hours=2),
        "components": [
            {"code": "8480-6", "value": systolic, "unit": "mm[Hg]"},
            {"code": "8462-4", "value": diastolic, "unit": "mm[Hg]"},
        ],
    }


def url(patient_id: str, suffix: str = "") -> str:
    return f"/api/v1/patients/{patient_id}/observations{suffix}"


async def audit_rows(owner_engine: AsyncEngine, organization_id: str) -> list[tuple[str, str]]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action, target_id FROM audit_event WHERE organization_id = :org "
                "AND action LIKE 'records.observation.%' ORDER BY seq"
            ),
            {"org": organization_id},
        )
        return [(r.action, r.target_id) for r in rows]


async def record(client: AsyncClient, who: SignedIn, patient_id: str, body: dict[str, Any]) -> Any:
    response = await client.post(url(patient_id), json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_record_then_read_returns_the_result_and_audits_both(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "obs-read", "nurse", "clinician")
    patient = await create_patient(client, staff["nurse"])
    taken = "2026-01-10T09:30:00-04:00"

    created = await record(
        client, staff["nurse"], patient["id"], weight(effective_at=taken, issued_at=taken)
    )
    read = await client.get(
        url(patient["id"], f"/{created['id']}"), headers=staff["clinician"].headers
    )

    assert read.status_code == 200, read.text
    body = read.json()
    assert body == created
    assert (body["code"], body["value"], body["unit"]) == (WEIGHT, 72.5, "kg")
    assert body["code_system"] == "http://loinc.org" and body["status"] == "final"
    assert datetime.fromisoformat(body["effective_at"]) == datetime(2026, 1, 10, 13, 30, tzinfo=UTC)
    assert body["components"] == [] and body["version"] == 1
    assert body["created_by"] == staff["nurse"].member.user_id
    assert await audit_rows(owner_engine, staff["nurse"].member.organization_id) == [
        ("records.observation.create", patient["id"]),
        ("records.observation.read", patient["id"]),
    ]


async def test_blood_pressure_panel_is_stored_as_its_components(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-bp", "nurse")
    patient = await create_patient(client, staff["nurse"])

    created = await record(client, staff["nurse"], patient["id"], blood_pressure(128, 82.5))

    assert created["value"] is None and created["unit"] is None
    assert [(c["code"], c["value"], c["unit"]) for c in created["components"]] == [
        ("8480-6", 128, "mm[Hg]"),
        ("8462-4", 82.5, "mm[Hg]"),
    ]
    again = await client.get(
        url(patient["id"], f"/{created['id']}"), headers=staff["nurse"].headers
    )
    assert again.json()["components"] == created["components"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (blood_pressure() | {"components": blood_pressure()["components"][:1]}, "components"),
        (blood_pressure(systolic=80, diastolic=120), "components"),
        (blood_pressure() | {"value": 120, "unit": "mm[Hg]"}, "components"),
        (blood_pressure(systolic=-5), "value"),
    ],
    ids=["no-diastolic", "systolic-below-diastolic", "value-and-components", "negative"],
)
async def test_invalid_blood_pressure_panel_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, "obs-bp-bad", "nurse")
    patient = await create_patient(client, staff["nurse"])

    response = await client.post(url(patient["id"]), json=body, headers=staff["nurse"].headers)

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"][-1] == field, problem


async def test_list_filters_by_code_category_and_date_range_newest_measurement_first(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "obs-list", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    # Recorded out of order: the list sorts by when measured, not when recorded.
    w5 = await record(client, nurse, patient["id"], weight(70, effective_at=ago(days=5)))
    w1 = await record(client, nurse, patient["id"], weight(71, effective_at=ago(days=1)))
    w9 = await record(client, nurse, patient["id"], weight(69, effective_at=ago(days=9)))
    creatinine = await record(
        client,
        nurse,
        patient["id"],
        {
            "code": CREATININE_MG,
            "category": "laboratory",
            "value": "1.3",
            "unit": "mg/dL",
            "effective_at": ago(days=3),
        },
    )

    async def ids(**params: Any) -> list[str]:
        response = await client.get(url(patient["id"]), params=params, headers=nurse.headers)
        assert response.status_code == 200, response.text
        assert response.json()["patient_id"] == patient["id"]
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [w1["id"], creatinine["id"], w5["id"], w9["id"]]
    assert await ids(code=WEIGHT) == [w1["id"], w5["id"], w9["id"]]
    assert await ids(category="laboratory") == [creatinine["id"]]
    assert await ids(effective_from=ago(days=6), effective_to=ago(days=2)) == [
        creatinine["id"],
        w5["id"],
    ]
    assert await ids(code=INR) == []
    listed = [
        a for a, _ in await audit_rows(owner_engine, nurse.member.organization_id) if "list" in a
    ]
    assert listed == ["records.observation.list"] * 5  # one per call, an empty one included


async def test_list_pages_with_a_cursor_without_repeats(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-page", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    same_time = ago(days=2)  # ties on effective_at are broken by id, never repeated or skipped
    made = [
        (await record(client, nurse, patient["id"], weight(60 + n, effective_at=same_time)))["id"]
        for n in range(5)
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(url(patient["id"]), params=params, headers=nurse.headers)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"category": "astrology"}, "category"),
        ({"effective_from": "2026-01-01T00:00:00"}, "effective_from"),
        ({"effective_from": ago(days=1), "effective_to": ago(days=3)}, "effective_to"),
    ],
    ids=["page-too-large", "unknown-category", "naive-datetime", "inverted-range"],
)
async def test_invalid_list_parameters_are_a_422_naming_them(
    container: Container, client: AsyncClient, params: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, "obs-list-bad", "nurse")
    patient = await create_patient(client, staff["nurse"])

    response = await client.get(url(patient["id"]), params=params, headers=staff["nurse"].headers)

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["query", field]


async def test_new_value_of_a_final_result_makes_it_amended(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-amend", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    created = await record(client, nurse, patient["id"], weight(72.5))

    amended = await client.patch(
        url(patient["id"], f"/{created['id']}"),
        json={"version": 1, "value": 75.25},
        headers=nurse.headers,
    )

    assert amended.status_code == 200, amended.text
    body = amended.json()
    assert (body["status"], body["value"], body["version"]) == ("amended", 75.25, 2)
    assert body["effective_at"] == created["effective_at"]


async def test_preliminary_result_becomes_final_without_amending(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-prelim", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    created = await record(client, nurse, patient["id"], weight(72, status="preliminary"))

    final = await client.patch(
        url(patient["id"], f"/{created['id']}"),
        json={"status": "final", "value": 72.4},
        headers=nurse.headers,
    )

    assert final.status_code == 200, final.text
    assert (final.json()["status"], final.json()["value"]) == ("final", 72.4)


@pytest.mark.parametrize(
    ("start", "change"),
    [
        ("final", {"status": "preliminary"}),
        ("final", {"status": "final", "value": 80}),
        ("entered-in-error", {"display": "Weight"}),
        ("cancelled", {"status": "final"}),
    ],
    ids=["final-to-preliminary", "silent-rewrite", "entered-in-error-edit", "cancelled-revived"],
)
async def test_status_change_against_the_lifecycle_is_a_409(
    container: Container, client: AsyncClient, start: str, change: dict[str, Any]
) -> None:
    staff = await clinic(container, client, "obs-transition", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    body = weight(status=start)
    if start == "cancelled":
        body = {k: v for k, v in body.items() if k not in ("value", "unit")}
    created = await record(client, nurse, patient["id"], body)

    response = await client.patch(
        url(patient["id"], f"/{created['id']}"), json=change, headers=nurse.headers
    )

    assert_problem(response, 409, "invalid_status_transition")
    now = (await client.get(url(patient["id"], f"/{created['id']}"), headers=nurse.headers)).json()
    assert (now["status"], now["version"]) == (start, 1)


async def test_update_with_a_stale_version_is_a_409_and_changes_nothing(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-stale", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    created = await record(client, nurse, patient["id"], weight(72))
    await client.patch(
        url(patient["id"], f"/{created['id']}"), json={"value": 73}, headers=nurse.headers
    )

    stale = await client.patch(
        url(patient["id"], f"/{created['id']}"),
        json={"version": 1, "value": 99},
        headers=nurse.headers,
    )

    assert_problem(stale, 409, "version_conflict")
    now = (await client.get(url(patient["id"], f"/{created['id']}"), headers=nurse.headers)).json()
    assert (now["value"], now["version"]) == (73, 2)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"code": "29463-8"}, ["code"]),  # check digit wrong
        ({"code": "weight"}, ["code"]),
        ({"value": -3}, ["value"]),
        ({"value": 0}, ["value"]),
        ({"value": 650}, ["value"]),
        ({"unit": "mg/dL"}, ["unit"]),
        ({"unit": None}, ["unit"]),
        ({"value_text": "heavy"}, ["value_text"]),
        ({"value": None, "unit": None}, ["value"]),
        ({"issued_at": ago(days=3), "effective_at": ago(days=2)}, ["issued_at"]),
        ({"effective_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, ["effective_at"]),
        ({"effective_at": "2026-01-02T00:00:00"}, ["body", "effective_at"]),
        ({"category": "vitals"}, ["body", "category"]),
        ({"status": "done"}, ["body", "status"]),
        ({"value": "1e400"}, ["body", "value"]),
        ({"value": 72.1234567}, ["body", "value"]),
        ({"display": "x" * 201}, ["body", "display"]),
        ({"unit": "k g"}, ["body", "unit"]),
        ({"code_system": "loinc"}, ["body", "code_system"]),
        ({"organization_id": "someone-else"}, ["body", "organization_id"]),
        ({"encounter_id": "00000000-0000-0000-0000-000000000000"}, ["encounter_id"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_invalid_observation_is_a_422_naming_the_field_and_stores_nothing(
    container: Container, client: AsyncClient, overrides: dict[str, Any], loc: list[str]
) -> None:
    staff = await clinic(container, client, "obs-invalid", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)

    response = await client.post(
        url(patient["id"]), json=weight(**overrides), headers=nurse.headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc, problem
    assert "x" * 201 not in response.text
    listed = await client.get(url(patient["id"]), headers=nurse.headers)
    assert listed.json()["items"] == []


async def test_weight_in_pounds_and_creatinine_in_micromoles_are_accepted(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-units", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)

    pounds = await record(client, nurse, patient["id"], weight(160, unit="[lb_av]"))
    micromoles = await record(
        client,
        nurse,
        patient["id"],
        {
            "code": CREATININE_UMOL,
            "category": "laboratory",
            "value": 97,
            "unit": "µmol/L",  # the micro sign is UCUM's "u"
            "effective_at": ago(days=1),
        },
    )

    assert (pounds["value"], pounds["unit"]) == (160, "[lb_av]")
    assert (micromoles["value"], micromoles["unit"]) == (97, "umol/L")


@pytest.mark.parametrize(
    ("role", "method", "allowed"),
    [
        ("nurse", "post", True),
        ("clinician", "post", True),
        ("pharmacist", "post", False),
        ("billing", "post", False),
        ("pharmacist", "get", True),
        ("billing", "get", False),
        ("agent", "get", False),
        ("researcher", "get", False),
    ],
)
async def test_observation_permissions_per_role(
    container: Container, client: AsyncClient, role: str, method: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"obs-perm-{role}-{method}", role, "clinician")
    patient = await create_patient(client, staff["clinician"])
    existing = await record(client, staff["clinician"], patient["id"], weight())
    who = staff[role]

    if method == "post":
        response = await client.post(url(patient["id"]), json=weight(), headers=who.headers)
    else:
        response = await client.get(url(patient["id"], f"/{existing['id']}"), headers=who.headers)

    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert_problem(response, 403, "permission_denied")


async def test_observation_of_another_patient_is_a_404(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-404", "nurse")
    nurse = staff["nurse"]
    one = await create_patient(client, nurse)
    other = await create_patient(client, nurse, mrn="MRN-0002")
    created = await record(client, nurse, one["id"], weight())

    through_other = await client.get(url(other["id"], f"/{created['id']}"), headers=nurse.headers)
    patched = await client.patch(
        url(other["id"], f"/{created['id']}"), json={"value": 1}, headers=nurse.headers
    )

    assert_problem(through_other, 404, "not_found")
    assert_problem(patched, 404, "not_found")


# -- latest_observations: what decision support reads ----------------------------------------------


async def test_latest_observations_picks_newest_released_result_by_effective_at(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "obs-latest", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    pid = patient["id"]
    measured_5_days_ago = await record(
        client, nurse, pid, weight(70, effective_at=ago(days=5), issued_at=ago(days=5))
    )
    # Measured earlier but reported after: issued_at is newer, effective_at is older.
    await record(client, nurse, pid, weight(90, effective_at=ago(days=10), issued_at=ago(hours=1)))
    # Newer measurements that are not usable results.
    await record(client, nurse, pid, weight(80, status="preliminary", effective_at=ago(days=3)))
    await record(
        client, nurse, pid, weight(81, status="entered-in-error", effective_at=ago(days=2))
    )
    cancelled = {k: v for k, v in weight(effective_at=ago(days=1)).items() if k != "value"}
    await record(client, nurse, pid, cancelled | {"status": "cancelled", "unit": None})
    creatinine = await record(
        client,
        nurse,
        pid,
        {
            "code": CREATININE_UMOL,
            "category": "laboratory",
            "value": 110,
            "unit": "umol/L",
            "effective_at": ago(days=4),
        },
    )
    amended = await client.patch(
        url(pid, f"/{creatinine['id']}"), json={"value": 97.5}, headers=nurse.headers
    )
    assert amended.json()["status"] == "amended"

    async with container.uow(nurse.member.organization_id) as uow:
        latest = await latest_observations(
            uow, actor_of(nurse), pid, [WEIGHT, CREATININE_UMOL, CREATININE_MG, INR]
        )

    assert set(latest) == {WEIGHT, CREATININE_UMOL}
    assert latest[WEIGHT].observation_id == measured_5_days_ago["id"]
    assert (latest[WEIGHT].value, latest[WEIGHT].unit) == (Decimal(70), "kg")
    assert latest[WEIGHT].effective_at == datetime.fromisoformat(
        measured_5_days_ago["effective_at"]
    )
    assert (latest[CREATININE_UMOL].value, latest[CREATININE_UMOL].status) == (
        Decimal("97.5"),
        "amended",
    )


async def test_latest_observations_for_another_organizations_patient_is_empty(
    container: Container, client: AsyncClient
) -> None:
    home = await clinic(container, client, "obs-latest-home", "nurse")
    away = await clinic(container, client, "obs-latest-away", "nurse")
    patient = await create_patient(client, home["nurse"])
    await record(client, home["nurse"], patient["id"], weight())

    async with container.uow(away["nurse"].member.organization_id) as uow:
        foreign = await latest_observations(uow, actor_of(away["nurse"]), patient["id"], [WEIGHT])
    async with container.uow(home["nurse"].member.organization_id) as uow:
        own = await latest_observations(uow, actor_of(home["nurse"]), patient["id"], [WEIGHT])

    assert foreign == {}
    assert set(own) == {WEIGHT}
