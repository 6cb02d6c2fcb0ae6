"""The medication list and prescriptions over the JSON API: the draft → active → completed |
cancelled lifecycle and its illegal transitions, issuing feeding the medication list, who may
prescribe, bad input, and the seam to decision support (``PrescriptionCheck``) on issue.

The issue route passes decision support's prescribing gate, so a test that issues its apixaban
order records a current weight and creatinine first (``renal_data_recorded``) for a PASS; the
gate's own outcomes are tested in tests/integration/cds/test_prescribing_gate.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records.models import Prescription
from clinicos.records.services.medications import (
    PrescriptionFields,
    add_prescription,
    issue_prescription,
)
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of, assert_problem

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"


def url(patient_id: str, kind: str, suffix: str = "") -> str:
    return f"/api/v1/patients/{patient_id}/{kind}{suffix}"


def apixaban(**overrides: Any) -> dict[str, Any]:
    body = {
        "code_system": RXNORM,
        "code": "1364430",
        "display": "apixaban",
        "dose": 5,
        "dose_unit": "mg",
        "frequency": "BID",
        "route": "oral",
        "indication": "nvaf",
    }
    return body | overrides


def renal_observations() -> list[dict[str, Any]]:
    """A current weight and serum creatinine (measured yesterday) for the default patient
    (female, born 1956-03-14: 70 years old in 2026), so that apixaban 5 mg BID for NVAF passes
    the prescribing gate: none of the label's dose-reduction criteria (age >= 80, weight <= 60
    kg, SCr >= 1.5 mg/dL) holds, and CrCl = 70 x 70 / (72 x 1.0) x 0.85 = 57.8 (>= 15)."""
    measured = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return [
        {
            "code": "29463-7",
            "category": "vital-signs",
            "value": 70,
            "unit": "kg",
            "effective_at": measured,
        },
        {
            "code": "2160-0",
            "category": "laboratory",
            "value": 1.0,
            "unit": "mg/dL",
            "effective_at": measured,
        },
    ]


async def renal_data_recorded(client: AsyncClient, who: SignedIn, patient_id: str) -> None:
    for body in renal_observations():
        response = await client.post(
            url(patient_id, "observations"), json=body, headers=who.headers
        )
        assert response.status_code == 201, response.text


def metformin(**overrides: Any) -> dict[str, Any]:
    body = {
        "code_system": ATC,
        "code": "A10BA02",
        "display": "metformin",
        "dose": 850,
        "dose_unit": "mg",
        "frequency": "bid",
        "route": "Oral",
        "effective_start": "2025-06-01",
    }
    return body | overrides


async def create(
    client: AsyncClient, who: SignedIn, patient_id: str, kind: str, body: dict[str, Any]
) -> Any:
    response = await client.post(url(patient_id, kind), json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def act(
    client: AsyncClient, who: SignedIn, patient_id: str, prescription_id: str, action: str
) -> Any:
    return await client.post(
        url(patient_id, "prescriptions", f"/{prescription_id}/{action}"), headers=who.headers
    )


async def audit_actions(owner_engine: AsyncEngine, organization_id: str) -> list[str]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT action FROM audit_event WHERE organization_id = :org "
                "AND (action LIKE 'records.prescription.%' OR action LIKE 'records.medication.%') "
                "ORDER BY seq"
            ),
            {"org": organization_id},
        )
        return [r.action for r in rows]


# -- the medication list ------------------------------------------------------------------------


async def test_medication_list_record_filter_and_stop(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "med-list", "nurse", "pharmacist")
    nurse = staff["nurse"]
    pid = (await create_patient(client, nurse))["id"]
    metformin_entry = await create(client, nurse, pid, "medications", metformin())
    warfarin = await create(
        client,
        nurse,
        pid,
        "medications",
        {"code": "11289", "display": "warfarin", "dose": "2.5", "dose_unit": "mg"},
    )

    stopped = await client.patch(
        url(pid, "medications", f"/{warfarin['id']}"),
        json={"version": 1, "status": "stopped", "effective_end": "2026-01-31"},
        headers=nurse.headers,
    )
    active = await client.get(
        url(pid, "medications"), params={"status": "active"}, headers=staff["pharmacist"].headers
    )

    assert (metformin_entry["frequency"], metformin_entry["route"]) == ("BID", "oral")
    assert (metformin_entry["dose"], warfarin["dose"]) == (850, 2.5)
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["version"]) == ("stopped", 2)
    assert [m["id"] for m in active.json()["items"]] == [metformin_entry["id"]]
    assert await audit_actions(owner_engine, nurse.member.organization_id) == [
        "records.medication.create",
        "records.medication.create",
        "records.medication.update",
        "records.medication.list",
    ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"code": "A10BA2"}, ["code"]),  # not an ATC code
        ({"code_system": RXNORM, "code": "A10BA02"}, ["code"]),
        ({"code_system": "http://snomed.info/sct"}, ["body", "code_system"]),
        ({"dose": 0}, ["body", "dose"]),
        ({"dose": -850}, ["body", "dose"]),
        ({"dose_unit": None}, ["dose_unit"]),
        ({"frequency": "F" * 33}, ["body", "frequency"]),
        ({"route": "by mouth!"}, ["body", "route"]),
        ({"effective_end": "2025-05-01"}, ["effective_end"]),
        ({"status": "paused"}, ["body", "status"]),
        ({"display": None}, ["body", "display"]),
        ({"source_prescription_id": "x"}, ["body", "source_prescription_id"]),
    ],
)
async def test_invalid_medication_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    staff = await clinic(container, client, "med-invalid", "nurse")
    pid = (await create_patient(client, staff["nurse"]))["id"]

    response = await client.post(
        url(pid, "medications"), json=metformin(**body), headers=staff["nurse"].headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc, problem


# -- prescriptions ------------------------------------------------------------------------------


async def test_prescription_lifecycle_draft_edit_issue_complete(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "rx-cycle", "clinician", "pharmacist")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    await renal_data_recorded(client, clinician, pid)

    draft = await create(client, clinician, pid, "prescriptions", apixaban(dose=2.5))
    edited = await client.patch(
        url(pid, "prescriptions", f"/{draft['id']}"),
        json={"version": 1, "dose": 5},
        headers=clinician.headers,
    )
    issued = await act(client, clinician, pid, draft["id"], "issue")
    medication_list = await client.get(
        url(pid, "medications"), params={"status": "active"}, headers=staff["pharmacist"].headers
    )
    completed = await act(client, clinician, pid, draft["id"], "complete")
    after = await client.get(url(pid, "medications"), headers=clinician.headers)

    assert (draft["status"], draft["issued_at"], draft["prescriber_id"]) == (
        "draft",
        None,
        clinician.member.user_id,
    )
    assert (edited.json()["dose"], edited.json()["version"]) == (5, 2)
    assert issued.status_code == 200, issued.text
    active = issued.json()
    assert active["status"] == "active" and active["issued_at"] is not None
    assert active["cds_evaluation_id"] is not None  # the gate's PASS evaluation
    [entry] = medication_list.json()["items"]
    assert entry["source_prescription_id"] == draft["id"]
    assert (entry["code"], entry["dose"], entry["frequency"], entry["status"]) == (
        "1364430",
        5,
        "BID",
        "active",
    )
    assert entry["effective_start"] == active["issued_at"][:10]
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed" and completed.json()["ended_at"]
    [ended] = after.json()["items"]
    assert ended["status"] == "completed"
    assert ended["effective_end"] is not None and ended["effective_end"] >= entry["effective_start"]
    assert await audit_actions(owner_engine, clinician.member.organization_id) == [
        "records.prescription.create",
        "records.prescription.update",
        "records.prescription.issue",
        "records.medication.list",
        "records.prescription.complete",
        "records.medication.list",
    ]


@pytest.mark.parametrize("issued", [False, True], ids=["draft", "active"])
async def test_cancel_ends_a_draft_or_active_prescription_and_stops_its_list_entry(
    container: Container, client: AsyncClient, issued: bool
) -> None:
    staff = await clinic(container, client, "rx-cancel", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    if issued:
        await renal_data_recorded(client, clinician, pid)
        assert (await act(client, clinician, pid, draft["id"], "issue")).status_code == 200

    cancelled = await act(client, clinician, pid, draft["id"], "cancel")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["ended_at"]
    entries = (await client.get(url(pid, "medications"), headers=clinician.headers)).json()
    assert [e["status"] for e in entries["items"]] == (["stopped"] if issued else [])


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        (["issue"], "issue"),
        ([], "complete"),
        (["cancel"], "issue"),
        (["cancel"], "cancel"),
        (["issue", "complete"], "cancel"),
        (["issue", "complete"], "complete"),
    ],
    ids=[
        "issue-twice",
        "complete-draft",
        "issue-cancelled",
        "cancel-twice",
        "cancel-completed",
        "complete-twice",
    ],
)
async def test_illegal_prescription_transition_is_a_409_and_changes_nothing(
    container: Container, client: AsyncClient, steps: list[str], action: str
) -> None:
    staff = await clinic(container, client, "rx-illegal", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    await renal_data_recorded(client, clinician, pid)
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    for step in steps:
        assert (await act(client, clinician, pid, draft["id"], step)).status_code == 200
    before = (
        await client.get(url(pid, "prescriptions", f"/{draft['id']}"), headers=clinician.headers)
    ).json()

    response = await act(client, clinician, pid, draft["id"], action)

    assert_problem(response, 409, "invalid_status_transition")
    after = await client.get(
        url(pid, "prescriptions", f"/{draft['id']}"), headers=clinician.headers
    )
    assert after.json() == before


async def test_only_a_draft_can_be_edited(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "rx-edit", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    await renal_data_recorded(client, clinician, pid)
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    assert (await act(client, clinician, pid, draft["id"], "issue")).status_code == 200

    response = await client.patch(
        url(pid, "prescriptions", f"/{draft['id']}"), json={"dose": 10}, headers=clinician.headers
    )

    assert_problem(response, 409, "prescription_not_editable")


async def test_issue_of_an_incomplete_draft_is_a_422_naming_what_is_missing(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rx-incomplete", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    draft = await create(
        client, clinician, pid, "prescriptions", apixaban(route=None, frequency=None)
    )

    response = await act(client, clinician, pid, draft["id"], "issue")

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [["frequency"], ["route"]]
    now = await client.get(url(pid, "prescriptions", f"/{draft['id']}"), headers=clinician.headers)
    assert now.json()["status"] == "draft"


async def test_issue_with_a_stale_version_is_a_409(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rx-stale", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    await client.patch(
        url(pid, "prescriptions", f"/{draft['id']}"), json={"dose": 2.5}, headers=clinician.headers
    )

    response = await client.post(
        url(pid, "prescriptions", f"/{draft['id']}/issue"),
        json={"version": 1},
        headers=clinician.headers,
    )

    assert_problem(response, 409, "version_conflict")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"code": "apixaban"}, ["code"]),
        ({"code_system": "http://loinc.org"}, ["body", "code_system"]),
        ({"dose": 0}, ["body", "dose"]),
        ({"dose": "5.12345"}, ["body", "dose"]),
        ({"dose_unit": None}, ["dose_unit"]),
        ({"indication": "atrial fibrillation"}, ["body", "indication"]),
        ({"display": "a" * 201}, ["body", "display"]),
        ({"status": "active"}, ["body", "status"]),
        ({"prescriber_id": "someone"}, ["body", "prescriber_id"]),
    ],
)
async def test_invalid_prescription_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    staff = await clinic(container, client, "rx-invalid", "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]

    response = await client.post(
        url(pid, "prescriptions"), json=apixaban(**body), headers=staff["clinician"].headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc, problem


@pytest.mark.parametrize(
    ("role", "call", "allowed"),
    [
        ("nurse", "create", False),
        ("nurse", "issue", False),
        ("pharmacist", "create", False),
        ("nurse", "read", True),
        ("pharmacist", "read", True),
        ("billing", "read", False),
        ("billing", "medications", False),
        ("agent", "medications", False),
    ],
)
async def test_prescription_permissions_per_role(
    container: Container, client: AsyncClient, role: str, call: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"rx-perm-{role}-{call}", role, "clinician")
    pid = (await create_patient(client, staff["clinician"]))["id"]
    draft = await create(client, staff["clinician"], pid, "prescriptions", apixaban())
    who = staff[role]

    if call == "create":
        response = await client.post(
            url(pid, "prescriptions"), json=apixaban(), headers=who.headers
        )
    elif call == "issue":
        response = await act(client, who, pid, draft["id"], "issue")
    elif call == "read":
        response = await client.get(
            url(pid, "prescriptions", f"/{draft['id']}"), headers=who.headers
        )
    else:
        response = await client.get(url(pid, "medications"), headers=who.headers)

    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 403, "permission_denied")
    state = await client.get(
        url(pid, "prescriptions", f"/{draft['id']}"), headers=staff["clinician"].headers
    )
    assert state.json()["status"] == "draft"


# -- the seam to decision support ---------------------------------------------------------------


class OrderBlocked(Conflict):
    code = "order_blocked_for_test"
    title = "Blocked by the test's check"


async def test_issue_when_the_check_refuses_changes_nothing(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "rx-seam-block", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    seen: list[tuple[str, str, str]] = []

    async def block(
        uow: SqlUnitOfWork, actor: Actor, *, prescription: Prescription, patient_id: str
    ) -> str | None:
        seen.append((prescription.id, prescription.status, patient_id))
        raise OrderBlocked("the test's decision support blocks this order")

    with pytest.raises(OrderBlocked):
        await issue_prescription(
            uows=container.uow,
            phi=container.phi,
            actor=actor_of(clinician),
            patient_id=pid,
            prescription_id=draft["id"],
            check=block,
        )

    assert seen == [(draft["id"], "draft", pid)]
    now = await client.get(url(pid, "prescriptions", f"/{draft['id']}"), headers=clinician.headers)
    assert now.json() == draft
    assert (await client.get(url(pid, "medications"), headers=clinician.headers)).json()[
        "items"
    ] == []
    assert "records.prescription.issue" not in await audit_actions(
        owner_engine, clinician.member.organization_id
    )


async def test_issue_stores_the_evaluation_id_the_check_returns(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rx-seam-pass", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    draft = await create(client, clinician, pid, "prescriptions", apixaban())
    evaluation_id = str(uuid.uuid4())

    async def evaluate(
        uow: SqlUnitOfWork, actor: Actor, *, prescription: Prescription, patient_id: str
    ) -> str | None:
        assert (prescription.status, prescription.code, patient_id) == ("draft", "1364430", pid)
        return evaluation_id

    issued = await issue_prescription(
        uows=container.uow,
        phi=container.phi,
        actor=actor_of(clinician),
        patient_id=pid,
        prescription_id=draft["id"],
        check=evaluate,
    )

    assert (issued.status, issued.cds_evaluation_id) == ("active", evaluation_id)
    read = await client.get(url(pid, "prescriptions", f"/{draft['id']}"), headers=clinician.headers)
    assert (read.json()["status"], read.json()["cds_evaluation_id"]) == ("active", evaluation_id)


async def test_add_prescription_records_an_imported_order_as_it_stands(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "rx-import", "clinician")
    clinician = staff["clinician"]
    pid = (await create_patient(client, clinician))["id"]
    fields = PrescriptionFields(code_system=RXNORM, code="11289", display="warfarin")
    issued_at = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    async with container.uow(clinician.member.organization_id) as uow:
        row = await add_prescription(
            uow,
            container.phi,
            actor_of(clinician),
            patient_id=pid,
            values=fields,
            status="active",
            issued_at=issued_at,
        )
        with pytest.raises(ValidationFailed) as refused:
            await add_prescription(
                uow,
                container.phi,
                actor_of(clinician),
                patient_id=pid,
                values=fields,
                issued_at=issued_at,
            )
        await uow.commit()

    assert [e.loc for e in refused.value.errors] == [("issued_at",)]  # a draft is not issued
    read = await client.get(url(pid, "prescriptions", f"/{row.id}"), headers=clinician.headers)
    assert (read.json()["status"], read.json()["issued_at"]) == ("active", "2025-03-01T08:00:00Z")
    listed = await client.get(url(pid, "prescriptions"), headers=clinician.headers)
    assert [p["id"] for p in listed.json()["items"]] == [row.id]
    medications = await client.get(url(pid, "medications"), headers=clinician.headers)
    assert medications.json()["items"] == []
