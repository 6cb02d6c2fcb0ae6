"""The prescribing gate (issue 5 point 6): issuing an anticoagulant runs the DOAC engine on the
patient's record. PASS issues; WARN needs an override (or a changed order); BLOCK needs an
approved (co-signed) override; ATTEST needs the data. A refusal is a 409 whose evaluation row,
audit entry and event are committed while the prescription stays a draft; an override counts
only for the same prescription at the same version and when it covers every non-INFO reason.
Every test runs on SQLite and PostgreSQL (the `client`/`container` fixtures).

The patient is a man aged 60 on the day the test runs (born on 1 January, 60 years ago), so
Cockcroft-Gault's (140 - age) is 80; expected CrCl values are worked by hand next to each
scenario per doac-rules.md 0.5 (actual body weight, no SCr floor, round half-up to 1 decimal).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds import PrescribingGate
from clinicos.cds.models import CdsEvaluation
from clinicos.cds.packs import RulePackNotActive
from clinicos.governance import AuditEvent
from clinicos.platform.db.models import OutboxMessage
from clinicos.records import issue_prescription
from tests.integration.cds.override_support import cosign, override
from tests.integration.interop.test_fhir_patient import FHIR, outcome
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of, assert_problem

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
INDICATION_SYSTEM = "urn:clinicos:cs:anticoagulation-indication"
API = "/api/v1/patients"
BORN = date(datetime.now(UTC).year - 60, 1, 1)  # 60 years old on any day of this year

DABIGATRAN_VTE: dict[str, Any] = {
    "code_system": RXNORM,
    "code": "1546356",
    "display": "dabigatran",
    "dose": 150,
    "dose_unit": "mg",
    "frequency": "BID",
    "route": "oral",
    "indication": "vte_treatment",
}
APIXABAN_NVAF_UNDERDOSE: dict[str, Any] = {
    "code_system": RXNORM,
    "code": "1364430",
    "display": "apixaban",
    "dose": 2.5,
    "dose_unit": "mg",
    "frequency": "BID",
    "route": "oral",
    "indication": "nvaf",
}
METOPROLOL: dict[str, Any] = {
    "code_system": RXNORM,
    "code": "6918",
    "display": "metoprolol",
    "dose": 50,
    "dose_unit": "mg",
    "frequency": "BID",
    "route": "oral",
}


# -- helpers -------------------------------------------------------------------------------------


def yesterday() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")


async def observe(
    client: AsyncClient, who: SignedIn, patient_id: str, code: str, value: Any, unit: str
) -> None:
    category = "vital-signs" if code == "29463-7" else "laboratory"
    body = {
        "code": code,
        "category": category,
        "value": value,
        "unit": unit,
        "effective_at": yesterday(),
    }
    response = await client.post(f"{API}/{patient_id}/observations", json=body, headers=who.headers)
    assert response.status_code == 201, response.text


async def patient(
    client: AsyncClient,
    who: SignedIn,
    *,
    weight_kg: Any = None,
    scr_mg_dl: Any = None,
    mrn: str = "GATE-1",
) -> str:
    """A 60-year-old man with the given weight and creatinine measured yesterday (or none)."""
    created = await create_patient(client, who, mrn=mrn, birth_date=BORN.isoformat(), sex="male")
    patient_id = str(created["id"])
    if weight_kg is not None:
        await observe(client, who, patient_id, "29463-7", weight_kg, "kg")
    if scr_mg_dl is not None:
        await observe(client, who, patient_id, "2160-0", scr_mg_dl, "mg/dL")
    return patient_id


async def draft(client: AsyncClient, who: SignedIn, patient_id: str, body: dict[str, Any]) -> str:
    response = await client.post(
        f"{API}/{patient_id}/prescriptions", json=body, headers=who.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def issue(client: AsyncClient, who: SignedIn, patient_id: str, rx_id: str) -> Response:
    return await client.post(f"{API}/{patient_id}/prescriptions/{rx_id}/issue", headers=who.headers)


async def prescription(
    client: AsyncClient, who: SignedIn, patient_id: str, rx_id: str
) -> dict[str, Any]:
    response = await client.get(f"{API}/{patient_id}/prescriptions/{rx_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def medication_list(client: AsyncClient, who: SignedIn, patient_id: str) -> list[Any]:
    response = await client.get(f"{API}/{patient_id}/medications", headers=who.headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def governance(owner_engine: AsyncEngine, organization_id: str) -> dict[str, list[Any]]:
    """The organization's evaluation rows, cds.evaluate audit rows and EvaluationRecorded
    events, oldest first, read as the owner (past row-level security)."""
    async with owner_engine.connect() as conn:
        evaluations = (
            await conn.execute(
                select(CdsEvaluation)
                .where(CdsEvaluation.organization_id == organization_id)
                .order_by(CdsEvaluation.evaluated_at, CdsEvaluation.id)
            )
        ).all()
        audits = (
            await conn.execute(
                select(AuditEvent)
                .where(
                    AuditEvent.organization_id == organization_id,
                    AuditEvent.action == "cds.evaluate",
                )
                .order_by(AuditEvent.seq)
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage)
                .where(
                    OutboxMessage.organization_id == organization_id,
                    OutboxMessage.event_type == "cds.EvaluationRecorded",
                )
                .order_by(OutboxMessage.created_at)
            )
        ).all()
    return {"evaluation": list(evaluations), "audit": list(audits), "event": list(events)}


def assert_one_record_per_attempt(records: dict[str, list[Any]], attempts: int) -> None:
    """Exactly one evaluation row, one audit entry and one event per issue attempt, and the
    event of each row names it."""
    assert [len(records[kind]) for kind in ("evaluation", "audit", "event")] == [attempts] * 3
    assert {e.payload["evaluation_id"] for e in records["event"]} == {
        row.id for row in records["evaluation"]
    }


def event_of(records: dict[str, list[Any]], evaluation_id: str) -> dict[str, Any]:
    [event] = [e for e in records["event"] if e.payload["evaluation_id"] == evaluation_id]
    payload: dict[str, Any] = event.payload
    return payload


# -- PASS, ATTEST, non-anticoagulants -----------------------------------------------------------


async def test_pass_issues_with_the_evaluation_recorded(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-pass", "clinician")
    clinician = staff["clinician"]
    # P-002: 80 x 55.8 / (72 x 2.0) = 4464 / 144 = 31.0 > 30 -> dabigatran VTE 150 mg BID PASS.
    pid = await patient(client, clinician, weight_kg=55.8, scr_mg_dl=2.0)
    rx_id = await draft(client, clinician, pid, DABIGATRAN_VTE)

    response = await issue(client, clinician, pid, rx_id)

    assert response.status_code == 200, response.text
    issued = response.json()
    assert issued["status"] == "active"
    [entry] = await medication_list(client, clinician, pid)
    assert (entry["source_prescription_id"], entry["status"]) == (rx_id, "active")
    records = await governance(owner_engine, clinician.member.organization_id)
    assert_one_record_per_attempt(records, 1)
    [row] = records["evaluation"]
    assert issued["cds_evaluation_id"] == row.id
    assert (row.outcome, float(row.crcl_ml_min), row.reason_keys) == ("PASS", 31.0, [])
    assert (row.patient_id, row.prescription_id, row.prescription_version) == (pid, rx_id, 1)
    [audit] = records["audit"]
    assert (audit.target_type, audit.target_id) == ("patient", pid)
    event = event_of(records, row.id)
    assert (event["prescription_id"], event["prescription_version"], event["override_id"]) == (
        rx_id,
        1,
        None,
    )


async def test_attest_refuses_keeps_the_draft_and_commits_the_evaluation(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-attest", "clinician")
    clinician = staff["clinician"]
    org = clinician.member.organization_id
    pid = await patient(client, clinician, weight_kg=55.8)  # no creatinine on record
    rx_id = await draft(client, clinician, pid, DABIGATRAN_VTE)
    before = await prescription(client, clinician, pid, rx_id)

    refused = await issue(client, clinician, pid, rx_id)

    problem = assert_problem(refused, 409, "cds_attestation_required")
    assert (problem["outcome"], problem["reasons"]) == ("ATTEST", ["creatinine_missing"])
    assert problem["evaluation_id"] in problem["detail"]
    assert "attest" in problem["detail"]  # says attestations are not available yet
    assert await prescription(client, clinician, pid, rx_id) == before  # still the same draft
    assert await medication_list(client, clinician, pid) == []
    records = await governance(owner_engine, org)
    assert_one_record_per_attempt(records, 1)
    [row] = records["evaluation"]
    assert row.id == problem["evaluation_id"]
    assert (row.outcome, row.patient_id, row.prescription_id, row.prescription_version) == (
        "ATTEST",
        pid,
        rx_id,
        1,
    )
    assert event_of(records, row.id)["prescription_id"] == rx_id

    # The data resolves it: 80 x 55.8 / (72 x 2.0) = 31.0 -> PASS on the next attempt.
    await observe(client, clinician, pid, "2160-0", 2.0, "mg/dL")
    issued = await issue(client, clinician, pid, rx_id)

    assert issued.status_code == 200, issued.text
    assert_one_record_per_attempt(await governance(owner_engine, org), 2)


async def test_non_anticoagulant_is_issued_without_an_evaluation(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-other-drug", "clinician")
    clinician = staff["clinician"]
    pid = await patient(client, clinician)  # no weight or creatinine: nothing to check

    response = await issue(client, clinician, pid, await draft(client, clinician, pid, METOPROLOL))

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["cds_evaluation_id"]) == ("active", None)
    assert_one_record_per_attempt(
        await governance(owner_engine, clinician.member.organization_id), 0
    )


async def test_anticoagulant_recognised_by_name_when_not_coded_in_rxnorm(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-atc", "clinician")
    clinician = staff["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8)
    # Dabigatran etexilate coded in ATC: the generic name in the display still gates it.
    body = DABIGATRAN_VTE | {
        "code_system": "http://www.whocc.no/atc",
        "code": "B01AE07",
        "display": "Dabigatran etexilate 150 mg capsule",
    }

    refused = await issue(client, clinician, pid, await draft(client, clinician, pid, body))

    assert_problem(refused, 409, "cds_attestation_required")
    [row] = (await governance(owner_engine, clinician.member.organization_id))["evaluation"]
    assert row.drug == "dabigatran"


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"indication": None}, ["indication"]),
        ({"dose": 0.15, "dose_unit": "g"}, ["dose_unit"]),
        ({"frequency": "Q8H"}, ["frequency"]),
        ({"frequency": "Q8H", "indication": None}, ["frequency", "indication"]),
        (
            {
                "code_system": "http://www.whocc.no/atc",
                "code": "B01AE07",
                "display": "dabigatran or warfarin",
            },
            ["display"],
        ),
    ],
    ids=["no-indication", "dose-in-grams", "unknown-frequency", "two-fields", "two-drugs"],
)
async def test_order_the_engine_cannot_read_is_a_422_naming_the_field_and_records_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    changes: dict[str, Any],
    fields: list[str],
) -> None:
    staff = await clinic(container, client, "gate-422", "clinician")
    clinician = staff["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8, scr_mg_dl=2.0)
    body = {k: v for k, v in (DABIGATRAN_VTE | changes).items() if v is not None}
    rx_id = await draft(client, clinician, pid, body)

    response = await issue(client, clinician, pid, rx_id)

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == fields
    if "indication" in fields:
        message = next(e["message"] for e in problem["errors"] if e["field"] == "indication")
        assert "nvaf, vte_treatment, vte_prophylaxis" in message
    assert (await prescription(client, clinician, pid, rx_id))["status"] == "draft"
    # A 422 is bad input, not a decision: the whole issue rolled back, the check's writes too.
    assert_one_record_per_attempt(
        await governance(owner_engine, clinician.member.organization_id), 0
    )


# -- BLOCK: an approved override, bound to the draft's version ----------------------------------


async def test_block_needs_an_approved_override_of_the_same_draft_version(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-block", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    org = clinician.member.organization_id
    # P-001: 80 x 52.2 / (72 x 2.0) = 4176 / 144 = 29.0 <= 30 -> dabigatran_crcl_30_or_less_vte.
    pid = await patient(client, clinician, weight_kg=52.2, scr_mg_dl=2.0)
    rx_id = await draft(client, clinician, pid, DABIGATRAN_VTE)

    blocked = await issue(client, clinician, pid, rx_id)
    problem = assert_problem(blocked, 409, "cds_blocked")
    assert (problem["outcome"], problem["reasons"]) == ("BLOCK", ["dabigatran_crcl_30_or_less_vte"])
    first_evaluation = problem["evaluation_id"]
    created = await override(client, clinician, first_evaluation)
    assert (created.status_code, created.json()["status"]) == (201, "pending_cosign")

    # Not yet co-signed: still refused, with a new evaluation to show for it.
    pending = await issue(client, clinician, pid, rx_id)
    assert assert_problem(pending, 409, "cds_blocked")["evaluation_id"] != first_evaluation
    assert (await prescription(client, clinician, pid, rx_id))["status"] == "draft"

    signed = await cosign(client, pharmacist, created.json()["override_id"])
    assert signed.status_code == 200, signed.text
    issued = await issue(client, clinician, pid, rx_id)

    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "active"
    records = await governance(owner_engine, org)
    assert_one_record_per_attempt(records, 3)
    accepted = event_of(records, issued.json()["cds_evaluation_id"])
    assert accepted["outcome"] == "BLOCK"
    assert accepted["override_id"] == created.json()["override_id"]
    assert [row.prescription_version for row in records["evaluation"]] == [1, 1, 1]


async def test_editing_the_draft_after_an_override_needs_a_new_decision(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-edited", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    pid = await patient(client, clinician, weight_kg=52.2, scr_mg_dl=2.0)  # CrCl 29.0, BLOCK
    rx_id = await draft(client, clinician, pid, DABIGATRAN_VTE)
    evaluation_id = assert_problem(await issue(client, clinician, pid, rx_id), 409, "cds_blocked")[
        "evaluation_id"
    ]
    created = await override(client, clinician, evaluation_id)
    assert (await cosign(client, pharmacist, created.json()["override_id"])).status_code == 200

    # Any edit is a new version of the order, even one that leaves the reasons as they were.
    edited = await client.patch(
        f"{API}/{pid}/prescriptions/{rx_id}",
        json={"display": "dabigatran etexilate"},
        headers=clinician.headers,
    )
    assert (edited.status_code, edited.json()["version"]) == (200, 2)
    refused = await issue(client, clinician, pid, rx_id)

    assert_problem(refused, 409, "cds_blocked")
    assert (await prescription(client, clinician, pid, rx_id))["status"] == "draft"
    records = await governance(owner_engine, clinician.member.organization_id)
    assert_one_record_per_attempt(records, 2)
    assert [row.prescription_version for row in records["evaluation"]] == [1, 2]


async def test_override_of_another_prescription_does_not_count(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "gate-other-rx", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    pid = await patient(client, clinician, weight_kg=52.2, scr_mg_dl=2.0)  # CrCl 29.0, BLOCK
    first = await draft(client, clinician, pid, DABIGATRAN_VTE)
    second = await draft(client, clinician, pid, DABIGATRAN_VTE)
    evaluation_id = assert_problem(await issue(client, clinician, pid, first), 409, "cds_blocked")[
        "evaluation_id"
    ]
    created = await override(client, clinician, evaluation_id)
    assert (await cosign(client, pharmacist, created.json()["override_id"])).status_code == 200

    assert_problem(await issue(client, clinician, pid, second), 409, "cds_blocked")
    assert (await issue(client, clinician, pid, first)).status_code == 200


# -- WARN: an override with a reason, covering every reason -------------------------------------


async def test_warn_is_issued_once_overridden_with_a_reason(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-warn", "clinician")
    clinician = staff["clinician"]
    # 80 x 80 / (72 x 1.0) = 88.9; age 60, 80 kg, SCr 1.0: no apixaban reduction criterion, so
    # 2.5 mg BID for NVAF is an underdose -> WARN apixaban_underdose_criteria_not_met.
    pid = await patient(client, clinician, weight_kg=80, scr_mg_dl=1.0)
    rx_id = await draft(client, clinician, pid, APIXABAN_NVAF_UNDERDOSE)

    warned = await issue(client, clinician, pid, rx_id)
    problem = assert_problem(warned, 409, "cds_override_required")
    assert (problem["outcome"], problem["reasons"]) == (
        "WARN",
        ["apixaban_underdose_criteria_not_met"],
    )
    created = await override(client, clinician, problem["evaluation_id"], "patient_tolerating")
    assert (created.status_code, created.json()["status"]) == (201, "approved")
    issued = await issue(client, clinician, pid, rx_id)

    assert issued.status_code == 200, issued.text
    records = await governance(owner_engine, clinician.member.organization_id)
    assert_one_record_per_attempt(records, 2)
    accepted = event_of(records, issued.json()["cds_evaluation_id"])
    assert (accepted["outcome"], accepted["override_id"]) == ("WARN", created.json()["override_id"])


async def test_a_reason_the_override_did_not_cover_refuses_again(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-new-reason", "clinician")
    clinician = staff["clinician"]
    pid = await patient(client, clinician, weight_kg=80, scr_mg_dl=1.0)  # CrCl 88.9, WARN
    rx_id = await draft(client, clinician, pid, APIXABAN_NVAF_UNDERDOSE)
    first = assert_problem(await issue(client, clinician, pid, rx_id), 409, "cds_override_required")
    assert (await override(client, clinician, first["evaluation_id"])).status_code == 201
    # Since the override, warfarin entered the medication list: a second anticoagulant.
    listed = await client.post(
        f"{API}/{pid}/medications",
        json={"code_system": RXNORM, "code": "11289", "display": "warfarin"},
        headers=clinician.headers,
    )
    assert listed.status_code == 201, listed.text

    refused = await issue(client, clinician, pid, rx_id)

    problem = assert_problem(refused, 409, "cds_override_required")
    assert set(problem["reasons"]) == {
        "apixaban_underdose_criteria_not_met",
        "duplicate_anticoagulant",
    }
    assert (await prescription(client, clinician, pid, rx_id))["status"] == "draft"
    records = await governance(owner_engine, clinician.member.organization_id)
    assert_one_record_per_attempt(records, 2)
    assert event_of(records, problem["evaluation_id"])["override_id"] is None


# -- FHIR: PUT status active -------------------------------------------------------------------


def fhir_dabigatran(patient_id: str, status: str = "draft", display: str = "dabigatran") -> Any:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "1546356", "display": display}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [{"coding": [{"system": INDICATION_SYSTEM, "code": "vte_treatment"}]}],
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg", "code": "mg"}}],
            }
        ],
    }


async def test_fhir_put_active_passes_the_gate_and_keeps_edits_of_a_refused_issue(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-fhir", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    headers = {**clinician.headers, **FHIR}
    pid = await patient(client, clinician, weight_kg=52.2, scr_mg_dl=2.0)  # CrCl 29.0, BLOCK
    created = await client.post(
        "/fhir/MedicationRequest", json=fhir_dabigatran(pid), headers=headers
    )
    assert created.status_code == 201, created.text
    rx_id = created.json()["id"]

    # One PUT that edits the draft (the display) and issues it: the edit is saved on its own,
    # then the issue is refused.
    edited_and_issued = {
        **fhir_dabigatran(pid, "active", display="dabigatran etexilate"),
        "id": rx_id,
    }
    refused = await client.put(
        f"/fhir/MedicationRequest/{rx_id}", json=edited_and_issued, headers=headers
    )

    body = outcome(refused, 409)
    [issue_] = body["issue"]
    assert issue_["details"]["coding"][0]["code"] == "cds_blocked"
    records = await governance(owner_engine, clinician.member.organization_id)
    [row] = records["evaluation"]
    assert row.id in issue_["diagnostics"]  # the evaluation to override
    stored = await prescription(client, clinician, pid, rx_id)
    assert (stored["status"], stored["display"], stored["version"]) == (
        "draft",
        "dabigatran etexilate",
        2,
    )
    assert row.prescription_version == 2  # the check saw the edited draft

    over = await override(client, clinician, row.id)
    assert (await cosign(client, pharmacist, over.json()["override_id"])).status_code == 200
    issued = await client.put(
        f"/fhir/MedicationRequest/{rx_id}", json=edited_and_issued, headers=headers
    )

    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "active"
    records = await governance(owner_engine, clinician.member.organization_id)
    assert_one_record_per_attempt(records, 2)
    assert (
        event_of(records, records["evaluation"][-1].id)["override_id"] == over.json()["override_id"]
    )
    async with owner_engine.connect() as conn:
        actions = (
            await conn.execute(
                select(AuditEvent.action)
                .where(
                    AuditEvent.organization_id == clinician.member.organization_id,
                    AuditEvent.action.like("records.prescription.%"),
                    AuditEvent.action != "records.prescription.read",  # the test's own GET
                )
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        assert list(actions) == [
            "records.prescription.create",
            "records.prescription.update",  # the edits of the refused PUT, saved on their own
            "records.prescription.issue",
        ]


async def test_fhir_put_of_a_non_anticoagulant_issues_without_an_evaluation(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-fhir-other", "clinician")
    clinician = staff["clinician"]
    headers = {**clinician.headers, **FHIR}
    pid = await patient(client, clinician)
    resource = fhir_dabigatran(pid)
    resource["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": "6918", "display": "metoprolol"}]
    }
    resource.pop("reasonCode")
    created = await client.post("/fhir/MedicationRequest", json=resource, headers=headers)
    rx_id = created.json()["id"]

    issued = await client.put(
        f"/fhir/MedicationRequest/{rx_id}",
        json={**resource, "status": "active", "id": rx_id},
        headers=headers,
    )

    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "active"
    assert_one_record_per_attempt(
        await governance(owner_engine, clinician.member.organization_id), 0
    )


# -- production without an active pack ----------------------------------------------------------


async def test_production_without_an_active_pack_refuses_anticoagulants_only(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "gate-prod", "clinician")
    clinician = staff["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8, scr_mg_dl=2.0)  # would PASS
    anticoagulant = await draft(client, clinician, pid, DABIGATRAN_VTE)
    other = await draft(client, clinician, pid, METOPROLOL)
    gate = PrescribingGate(phi=container.phi, production=True)
    context = {"uows": container.uow, "phi": container.phi, "actor": actor_of(clinician)}

    with pytest.raises(RulePackNotActive):
        await issue_prescription(
            **context, patient_id=pid, prescription_id=anticoagulant, check=gate
        )
    issued = await issue_prescription(**context, patient_id=pid, prescription_id=other, check=gate)

    assert (issued.status, issued.cds_evaluation_id) == ("active", None)
    assert (await prescription(client, clinician, pid, anticoagulant))["status"] == "draft"
    assert_one_record_per_attempt(
        await governance(owner_engine, clinician.member.organization_id), 0
    )
