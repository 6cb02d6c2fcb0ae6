"""Conditions and allergies over the JSON API: record, read, list with a status filter,
update with a version check; ICD-10 / SNOMED CT / RxNorm codes checked; permissions per role;
one audit entry per access."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.kernel.errors import ValidationFailed
from clinicos.records.services.clinical import (
    AllergyFields,
    ConditionFields,
    ObservationFields,
    add_allergy,
    add_condition,
    add_observation,
)
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of, assert_problem

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"


def url(patient_id: str, kind: str, suffix: str = "") -> str:
    return f"/api/v1/patients/{patient_id}/{kind}{suffix}"


def atrial_fibrillation(**overrides: Any) -> dict[str, Any]:
    body = {
        "icd10_code": "I48.91",
        "snomed_code": "49436004",
        "display": "Atrial fibrillation",
        "onset_date": "2024-05-02",
    }
    return body | overrides


def penicillin(**overrides: Any) -> dict[str, Any]:
    body = {
        "code_system": RXNORM,
        "code": "7980",
        "display": "Penicillin G",
        "category": "medication",
        "criticality": "high",
        "reaction": "anaphylaxis",
    }
    return body | overrides


async def create(
    client: AsyncClient, who: SignedIn, patient_id: str, kind: str, body: dict[str, Any]
) -> Any:
    response = await client.post(url(patient_id, kind), json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def audit_actions(owner_engine: AsyncEngine, organization_id: str) -> list[tuple[str, str]]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action, target_id FROM audit_event WHERE organization_id = :org "
                "AND (action LIKE 'records.condition.%' OR action LIKE 'records.allergy.%' "
                "OR action LIKE 'records.observation.%') "
                "ORDER BY seq"
            ),
            {"org": organization_id},
        )
        return [(r.action, r.target_id) for r in rows]


# -- conditions ---------------------------------------------------------------------------------


async def test_condition_record_read_list_update_each_audited(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "cond-cycle", "clinician", "pharmacist")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    pid = patient["id"]

    created = await create(client, clinician, pid, "conditions", atrial_fibrillation())
    read = await client.get(
        url(pid, "conditions", f"/{created['id']}"), headers=staff["pharmacist"].headers
    )
    listed = await client.get(url(pid, "conditions"), headers=clinician.headers)
    resolved = await client.patch(
        url(pid, "conditions", f"/{created['id']}"),
        json={"version": 1, "clinical_status": "resolved", "abatement_date": "2025-01-15"},
        headers=clinician.headers,
    )

    assert read.status_code == 200 and read.json() == created
    assert (created["icd10_code"], created["snomed_code"]) == ("I48.91", "49436004")
    assert (created["clinical_status"], created["verification_status"]) == ("active", "confirmed")
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["clinical_status"], body["abatement_date"], body["version"]) == (
        "resolved",
        "2025-01-15",
        2,
    )
    assert body["onset_date"] == "2024-05-02"
    assert await audit_actions(owner_engine, clinician.member.organization_id) == [
        ("records.condition.create", pid),
        ("records.condition.read", pid),
        ("records.condition.list", pid),
        ("records.condition.update", pid),
    ]


async def test_condition_list_filters_by_clinical_status(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "cond-filter", "nurse")
    nurse = staff["nurse"]
    pid = (await create_patient(client, nurse))["id"]
    active = await create(client, nurse, pid, "conditions", atrial_fibrillation())
    resolved = await create(
        client,
        nurse,
        pid,
        "conditions",
        {"icd10_code": "i26.99", "clinical_status": "resolved", "abatement_date": "2025-02-01"},
    )

    only_active = await client.get(
        url(pid, "conditions"), params={"clinical_status": "active"}, headers=nurse.headers
    )
    only_resolved = await client.get(
        url(pid, "conditions"), params={"clinical_status": "resolved"}, headers=nurse.headers
    )

    assert [c["id"] for c in only_active.json()["items"]] == [active["id"]]
    assert [c["id"] for c in only_resolved.json()["items"]] == [resolved["id"]]
    assert resolved["icd10_code"] == "I26.99"  # stored upper-case


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"icd10_code": None, "snomed_code": None}, ["icd10_code"]),
        ({"icd10_code": "I4891"}, ["icd10_code"]),
        ({"icd10_code": "48.91"}, ["icd10_code"]),
        ({"snomed_code": "49436005"}, ["snomed_code"]),  # Verhoeff check digit wrong
        ({"snomed_code": "49436"}, ["body", "snomed_code"]),
        ({"onset_date": "2025-03-01", "abatement_date": "2025-02-01"}, ["abatement_date"]),
        ({"abatement_date": "2025-02-01"}, ["clinical_status"]),  # abated but still active
        (
            {"onset_date": (datetime.now(UTC) + timedelta(days=3)).date().isoformat()},
            ["onset_date"],
        ),
        ({"clinical_status": "cured"}, ["body", "clinical_status"]),
        ({"display": "x" * 201}, ["body", "display"]),
        ({"organization_id": "elsewhere"}, ["body", "organization_id"]),
    ],
)
async def test_invalid_condition_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    staff = await clinic(container, client, "cond-invalid", "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]

    response = await client.post(
        url(pid, "conditions"),
        json=atrial_fibrillation(**body),
        headers=staff["clinician"].headers,
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc, problem


async def test_condition_update_with_stale_version_or_null_status_is_refused(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "cond-stale", "nurse")
    nurse = staff["nurse"]
    pid = (await create_patient(client, nurse))["id"]
    created = await create(client, nurse, pid, "conditions", atrial_fibrillation())
    one = url(pid, "conditions", f"/{created['id']}")
    await client.patch(one, json={"display": "AF"}, headers=nurse.headers)

    stale = await client.patch(
        one, json={"version": 1, "clinical_status": "inactive"}, headers=nurse.headers
    )
    cleared = await client.patch(one, json={"clinical_status": None}, headers=nurse.headers)

    assert_problem(stale, 409, "version_conflict")
    problem = assert_problem(cleared, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["body", "clinical_status"]
    now = (await client.get(one, headers=nurse.headers)).json()
    assert (now["clinical_status"], now["display"], now["version"]) == ("active", "AF", 2)


# -- allergies ----------------------------------------------------------------------------------


async def test_allergy_record_read_list_update_each_audited(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "allergy-cycle", "nurse")
    nurse = staff["nurse"]
    pid = (await create_patient(client, nurse))["id"]

    created = await create(client, nurse, pid, "allergies", penicillin())
    food = await create(
        client,
        nurse,
        pid,
        "allergies",
        {"code_system": SNOMED, "code": "91935009", "display": "Peanut allergy"},
    )
    read = await client.get(url(pid, "allergies", f"/{created['id']}"), headers=nurse.headers)
    resolved = await client.patch(
        url(pid, "allergies", f"/{food['id']}"),
        json={"clinical_status": "resolved"},
        headers=nurse.headers,
    )
    active = await client.get(
        url(pid, "allergies"), params={"clinical_status": "active"}, headers=nurse.headers
    )

    assert read.json() == created
    assert (created["code"], created["criticality"], created["reaction"]) == (
        "7980",
        "high",
        "anaphylaxis",
    )
    assert (resolved.json()["clinical_status"], resolved.json()["version"]) == ("resolved", 2)
    assert [a["id"] for a in active.json()["items"]] == [created["id"]]
    actions = [a for a, _ in await audit_actions(owner_engine, nurse.member.organization_id)]
    assert actions == [
        "records.allergy.create",
        "records.allergy.create",
        "records.allergy.read",
        "records.allergy.update",
        "records.allergy.list",
    ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"code": "penicillin"}, ["code"]),
        ({"code_system": ATC, "code": "J01C"}, None),  # ATC level 3: accepted
        ({"code_system": ATC, "code": "J1"}, ["code"]),
        ({"code_system": SNOMED, "code": "91935008"}, ["code"]),
        ({"code_system": "http://example.org/drugs"}, ["body", "code_system"]),
        ({"criticality": "severe"}, ["body", "criticality"]),
        ({"reaction": "r" * 201}, ["body", "reaction"]),
        ({"code": "7980 "}, None),  # surrounding blanks are trimmed
        ({"code": "79 80"}, ["body", "code"]),
    ],
)
async def test_allergy_codes_are_checked_against_their_system(
    container: Container, client: AsyncClient, body: dict[str, Any], loc: list[str] | None
) -> None:
    staff = await clinic(container, client, "allergy-invalid", "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]

    response = await client.post(
        url(pid, "allergies"), json=penicillin(**body), headers=staff["clinician"].headers
    )

    if loc is None:
        assert response.status_code == 201, response.text
    else:
        problem = assert_problem(response, 422, "validation_failed")
        assert problem["errors"][0]["loc"] == loc, problem


@pytest.mark.parametrize(
    ("role", "kind", "method", "allowed"),
    [
        ("pharmacist", "allergies", "get", True),
        ("pharmacist", "allergies", "post", False),
        ("nurse", "conditions", "post", True),
        ("billing", "conditions", "get", False),
        ("billing", "allergies", "get", False),
        ("agent", "conditions", "get", False),
        ("admin", "allergies", "get", False),
    ],
)
async def test_condition_and_allergy_permissions_per_role(
    container: Container,
    client: AsyncClient,
    role: str,
    kind: str,
    method: str,
    allowed: bool,
) -> None:
    staff = await clinic(container, client, f"ca-perm-{role}-{kind}-{method}", role, "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]
    body = penicillin() if kind == "allergies" else atrial_fibrillation()
    who = staff[role]

    if method == "post":
        response = await client.post(url(pid, kind), json=body, headers=who.headers)
    else:
        response = await client.get(url(pid, kind), headers=who.headers)

    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert_problem(response, 403, "permission_denied")


async def test_unknown_patient_or_entry_is_a_404(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "ca-404", "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]
    missing = "00000000-0000-0000-0000-000000000000"

    no_patient = await client.post(
        url(missing, "conditions"), json=atrial_fibrillation(), headers=staff["clinician"].headers
    )
    no_entry = await client.get(
        url(pid, "allergies", f"/{missing}"), headers=staff["clinician"].headers
    )

    assert_problem(no_patient, 404, "not_found")
    assert_problem(no_entry, 404, "not_found")


async def test_inner_add_functions_share_the_callers_transaction(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "ca-inner", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    actor = actor_of(clinician)
    condition = ConditionFields(clinical_status="active", icd10_code="I48.0")
    allergy = AllergyFields(code_system=RXNORM, code="7980")
    inr = ObservationFields(
        code="6301-6",
        category="laboratory",
        status="final",
        value=Decimal("2.4"),
        unit="{INR}",
        effective_at=datetime.now(UTC) - timedelta(days=1),
    )

    async with container.uow(clinician.member.organization_id) as uow:  # never committed
        await add_condition(uow, container.phi, actor, patient_id=pid, values=condition)
        with pytest.raises(ValidationFailed):
            await add_observation(
                uow, container.phi, actor, patient_id=pid, values=replace(inr, code="6301-7")
            )
    async with container.uow(clinician.member.organization_id) as uow:
        await add_condition(uow, container.phi, actor, patient_id=pid, values=condition)
        await add_allergy(uow, container.phi, actor, patient_id=pid, values=allergy)
        await add_observation(uow, container.phi, actor, patient_id=pid, values=inr)
        await uow.commit()

    counts = {
        kind: len((await client.get(url(pid, kind), headers=clinician.headers)).json()["items"])
        for kind in ("conditions", "allergies", "observations")
    }
    assert counts == {"conditions": 1, "allergies": 1, "observations": 1}
    creates = [
        a
        for a, _ in await audit_actions(owner_engine, clinician.member.organization_id)
        if a.endswith(".create")
    ]
    assert creates == [
        "records.condition.create",
        "records.allergy.create",
        "records.observation.create",
    ]
