"""The attestation gate (issue 5 point 4), on SQLite and PostgreSQL: a clinician attests that
missing or stale data is acceptable for one patient's order (or records the value instead), and
record mode and the prescribing gate then proceed past ATTEST for the attested facts only.

The patient is the prescribing-gate tests' man aged 60 (Cockcroft-Gault's 140 - age = 80):
with 55.8 kg and SCr 2.0 mg/dL, 80 x 55.8 / (72 x 2.0) = 4464 / 144 = 31.0 mL/min, so dabigatran
VTE 150 mg BID passes (doac-rules.md 0.5, P-002); without the creatinine it is ATTEST
(`creatinine_missing`) and nothing else fires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds.models import CdsAttestation, CdsEvaluation
from clinicos.governance import AuditEvent
from clinicos.kernel.clock import FixedClock
from clinicos.platform.db.models import OutboxMessage
from tests.integration.cds.api_cases import EVALUATE, base_body
from tests.integration.cds.override_support import override
from tests.integration.cds.test_prescribing_gate import (
    APIXABAN_NVAF_UNDERDOSE,
    DABIGATRAN_VTE,
    draft,
    issue,
    patient,
)
from tests.support.records_fixtures import clinic
from tests.support.tenancy_fixtures import SignedIn, assert_problem

ATTESTATIONS = "/api/v1/cds/attestations"
ORDER: dict[str, Any] = {
    "drug": "dabigatran",
    "dose_mg": 150,
    "frequency": "BID",
    "indication": "vte_treatment",
}
# A measurement time valid whenever the suite runs (a day before the module is imported).
RECENT = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
# Free text that stands for PHI: it must never leave the cds_attestation row unsealed.
SECRET_REASON = "Pt Jane Roe MRN-4471: lab closed until Monday, renal function stable in March"


# -- helpers -------------------------------------------------------------------------------------


async def evaluate(
    client: AsyncClient, who: SignedIn, patient_id: str, order: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(
        EVALUATE, json={"patient_id": patient_id, "order": order or ORDER}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def attest(
    client: AsyncClient,
    who: SignedIn,
    evaluation_id: str,
    facts: list[str],
    reason: str | None = SECRET_REASON,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"evaluation_id": evaluation_id, "facts": facts} | extra
    if reason is not None:
        body["reason"] = reason
    return await client.post(ATTESTATIONS, json=body, headers=who.headers)


def reasons_of(evaluation: dict[str, Any]) -> dict[str, tuple[bool, str | None]]:
    return {r["key"]: (r["attested"], r["attestation_id"]) for r in evaluation["reasons"]}


def fields_of(response: Response) -> list[str]:
    problem = assert_problem(response, 422, "validation_failed")
    return [".".join(str(p) for p in e["loc"]) for e in problem["errors"]]


async def rows(owner_engine: AsyncEngine, organization_id: str) -> dict[str, list[Any]]:
    """The organization's attestation rows, cds.attest audit entries and AttestationRecorded
    events, and its evaluations, read as the owner (past row-level security)."""
    async with owner_engine.connect() as conn:
        attestations = (
            await conn.execute(
                select(CdsAttestation).where(CdsAttestation.organization_id == organization_id)
            )
        ).all()
        audits = (
            await conn.execute(
                select(AuditEvent)
                .where(
                    AuditEvent.organization_id == organization_id,
                    AuditEvent.action == "cds.attest",
                )
                .order_by(AuditEvent.seq)
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage).where(
                    OutboxMessage.organization_id == organization_id,
                    OutboxMessage.event_type == "cds.AttestationRecorded",
                )
            )
        ).all()
        evaluations = (
            await conn.execute(
                select(CdsEvaluation)
                .where(CdsEvaluation.organization_id == organization_id)
                .order_by(CdsEvaluation.evaluated_at, CdsEvaluation.id)
            )
        ).all()
        evaluation_events = (
            await conn.execute(
                select(OutboxMessage).where(
                    OutboxMessage.organization_id == organization_id,
                    OutboxMessage.event_type == "cds.EvaluationRecorded",
                )
            )
        ).all()
    return {
        "attestation": list(attestations),
        "audit": list(audits),
        "event": list(events),
        "evaluation": list(evaluations),
        "evaluation_event": list(evaluation_events),
    }


def evaluation_event(records: dict[str, list[Any]], evaluation_id: str) -> dict[str, Any]:
    [event] = [
        e for e in records["evaluation_event"] if e.payload["evaluation_id"] == evaluation_id
    ]
    payload: dict[str, Any] = event.payload
    return payload


def freeze(container: Container) -> FixedClock:
    """Put the app's unit-of-work clock under the test's control (tokens keep identity's own
    clock, so the signed-in users stay signed in)."""
    clock = FixedClock(datetime.now(UTC))
    container.clock = clock
    return clock


# -- the attested path in record mode --------------------------------------------------------


async def test_attested_creatinine_lets_record_mode_proceed_to_pass_with_one_event_and_audit(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await clinic(container, client, "att-pass", "clinician"))["clinician"]
    org = clinician.member.organization_id
    pid = await patient(client, clinician, weight_kg=55.8)  # no creatinine on record
    first = await evaluate(client, clinician, pid)
    assert (first["outcome"], reasons_of(first)) == (
        "ATTEST",
        {"creatinine_missing": (False, None)},
    )

    response = await attest(client, clinician, first["evaluation_id"], ["serum_creatinine"])

    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["kind"], made["evaluation_id"], made["patient_id"], made["facts"]) == (
        "attestation",
        first["evaluation_id"],
        pid,
        ["serum_creatinine"],
    )
    attested_at = datetime.fromisoformat(made["attested_at"])
    assert datetime.fromisoformat(made["expires_at"]) - attested_at == timedelta(hours=24)
    assert SECRET_REASON not in response.text
    again = await evaluate(client, clinician, pid)
    assert again["outcome"] == "PASS"
    assert reasons_of(again) == {"creatinine_missing": (True, made["attestation_id"])}

    records = await rows(owner_engine, org)
    [row] = records["attestation"]
    assert (row.id, row.patient_id, row.evaluation_id, row.drug, row.frequency) == (
        made["attestation_id"],
        pid,
        first["evaluation_id"],
        "dabigatran",
        "BID",
    )
    assert (float(row.dose_mg), row.indication, row.facts) == (
        150.0,
        "vte_treatment",
        ["serum_creatinine"],
    )
    assert SECRET_REASON not in row.reason  # sealed at rest
    assert (
        container.phi.decrypt(
            row.reason,
            organization_id=org,
            table="cds_attestation",
            column="reason",
            row_id=row.id,
        )
        == SECRET_REASON
    )
    [audit] = records["audit"]
    assert (audit.actor_type, audit.actor_id, audit.target_type, audit.target_id) == (
        "user",
        clinician.member.user_id,
        "cds_attestation",
        row.id,
    )
    [event] = records["event"]
    assert event.payload["attestation_id"] == row.id
    assert event.payload["facts"] == ["serum_creatinine"]
    assert (event.payload["patient_id"], event.payload["evaluation_id"]) == (
        pid,
        first["evaluation_id"],
    )
    assert SECRET_REASON not in str(event.payload) and SECRET_REASON not in str(tuple(audit))
    first_row, second_row = records["evaluation"]
    assert (first_row.outcome, first_row.attestation_ids) == ("ATTEST", None)
    assert (second_row.outcome, second_row.attestation_ids) == ("PASS", [row.id])
    assert second_row.reason_keys == ["creatinine_missing"]
    assert evaluation_event(records, second_row.id)["attestation_ids"] == [row.id]
    assert evaluation_event(records, second_row.id)["outcome"] == "PASS"


async def test_attesting_weight_only_when_both_are_missing_stays_attest(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await clinic(container, client, "att-partial", "clinician"))["clinician"]
    pid = await patient(client, clinician)  # neither weight nor creatinine
    first = await evaluate(client, clinician, pid)
    assert set(reasons_of(first)) == {"creatinine_missing", "weight_missing"}

    response = await attest(client, clinician, first["evaluation_id"], ["weight"])

    assert response.status_code == 201, response.text
    weight_id = response.json()["attestation_id"]
    again = await evaluate(client, clinician, pid)
    assert again["outcome"] == "ATTEST"
    assert reasons_of(again) == {
        "creatinine_missing": (False, None),
        "weight_missing": (True, weight_id),
    }
    # The second fact attested on the newer evaluation completes it.
    both = await attest(client, clinician, again["evaluation_id"], ["serum_creatinine"])
    assert both.status_code == 201, both.text
    last = await evaluate(client, clinician, pid)
    assert last["outcome"] == "PASS"
    assert reasons_of(last) == {
        "creatinine_missing": (True, both.json()["attestation_id"]),
        "weight_missing": (True, weight_id),
    }
    records = await rows(owner_engine, clinician.member.organization_id)
    assert [len(records[k]) for k in ("attestation", "audit", "event")] == [2, 2, 2]
    assert sorted(records["evaluation"][-1].attestation_ids) == sorted(
        [weight_id, both.json()["attestation_id"]]
    )


async def test_expired_attestation_no_longer_counts(
    container: Container, client: AsyncClient
) -> None:
    clock = freeze(container)
    clinician = (await clinic(container, client, "att-expiry", "clinician"))["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8)
    first = await evaluate(client, clinician, pid)
    response = await attest(
        client, clinician, first["evaluation_id"], ["serum_creatinine"], expires_in_hours=1
    )
    assert response.status_code == 201, response.text

    clock.advance(timedelta(minutes=59))
    within = await evaluate(client, clinician, pid)
    clock.advance(timedelta(minutes=1))  # exactly at expires_at: no longer valid
    expired = await evaluate(client, clinician, pid)

    assert within["outcome"] == "PASS"
    assert expired["outcome"] == "ATTEST"
    assert reasons_of(expired) == {"creatinine_missing": (False, None)}


async def test_attestation_does_not_cover_another_order_or_another_patient(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await clinic(container, client, "att-scope", "clinician"))["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8)
    other = await patient(client, clinician, weight_kg=55.8, mrn="GATE-2")
    first = await evaluate(client, clinician, pid)
    made = await attest(client, clinician, first["evaluation_id"], ["serum_creatinine"])
    assert made.status_code == 201, made.text

    other_dose = await evaluate(client, clinician, pid, ORDER | {"dose_mg": 110})
    other_patient = await evaluate(client, clinician, other)
    same_order = await evaluate(client, clinician, pid, ORDER | {"dose_mg": 150.0})

    assert other_dose["outcome"] == "ATTEST"
    assert reasons_of(other_dose)["creatinine_missing"] == (False, None)
    assert (other_patient["outcome"], reasons_of(other_patient)) == (
        "ATTEST",
        {"creatinine_missing": (False, None)},
    )
    assert same_order["outcome"] == "PASS"  # 150 mg and 150.0 mg are the same order


# -- the prescribing gate ------------------------------------------------------------------------


async def test_gate_refusal_then_attestation_then_issue_succeeds(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await clinic(container, client, "att-gate", "clinician"))["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8)
    rx_id = await draft(client, clinician, pid, DABIGATRAN_VTE)
    refused = await issue(client, clinician, pid, rx_id)
    problem = assert_problem(refused, 409, "cds_attestation_required")
    assert ATTESTATIONS in problem["detail"]

    made = await attest(client, clinician, problem["evaluation_id"], ["serum_creatinine"])
    assert made.status_code == 201, made.text
    issued = await issue(client, clinician, pid, rx_id)

    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "active"
    records = await rows(owner_engine, clinician.member.organization_id)
    row = next(r for r in records["evaluation"] if r.id == issued.json()["cds_evaluation_id"])
    assert (row.outcome, row.attestation_ids, row.prescription_id) == (
        "PASS",
        [made.json()["attestation_id"]],
        rx_id,
    )
    assert evaluation_event(records, row.id)["attestation_ids"] == [made.json()["attestation_id"]]


async def test_gate_attested_warn_still_needs_an_override(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await clinic(container, client, "att-gate-warn", "clinician"))["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8)
    # Apixaban 2.5 mg BID for VTE treatment is not a labelled regimen (A4): WARN
    # dose_not_labeled_for_indication, which runs even while the creatinine gate is open.
    rx_id = await draft(
        client, clinician, pid, APIXABAN_NVAF_UNDERDOSE | {"indication": "vte_treatment"}
    )
    refused = assert_problem(
        await issue(client, clinician, pid, rx_id), 409, "cds_attestation_required"
    )
    assert set(refused["reasons"]) == {"creatinine_missing", "dose_not_labeled_for_indication"}
    made = await attest(client, clinician, refused["evaluation_id"], ["serum_creatinine"])
    assert made.status_code == 201, made.text

    warned = assert_problem(
        await issue(client, clinician, pid, rx_id), 409, "cds_override_required"
    )
    assert warned["outcome"] == "WARN"
    assert warned["attested"] == {"creatinine_missing": made.json()["attestation_id"]}
    overridden = await override(client, clinician, warned["evaluation_id"])
    assert overridden.status_code == 201, overridden.text
    issued = await issue(client, clinician, pid, rx_id)

    assert issued.status_code == 200, issued.text


# -- the record form -----------------------------------------------------------------------------


async def test_record_form_stores_the_observation_and_the_next_evaluation_uses_it(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await clinic(container, client, "att-record", "clinician"))["clinician"]
    org = clinician.member.organization_id
    pid = await patient(client, clinician, weight_kg=55.8)
    first = await evaluate(client, clinician, pid)
    measured = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

    response = await client.post(
        ATTESTATIONS,
        json={
            "evaluation_id": first["evaluation_id"],
            "record": {"serum_creatinine_mg_dl": 2.0, "measured_at": measured},
        },
        headers=clinician.headers,
    )

    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["kind"], made["attestation_id"], made["expires_at"]) == (
        "observation",
        None,
        None,
    )
    assert made["facts"] == ["serum_creatinine"]
    again = await evaluate(client, clinician, pid)
    assert (again["outcome"], again["crcl_ml_min"], again["reasons"]) == ("PASS", 31.0, [])
    creatinine = again["facts"]["creatinine"]
    assert (creatinine["observation_id"], creatinine["code"], creatinine["unit"]) == (
        made["observation_id"],
        "2160-0",
        "mg/dL",
    )
    listed = await client.get(
        f"/api/v1/patients/{pid}/observations/{made['observation_id']}",
        headers=clinician.headers,
    )
    assert (listed.json()["status"], listed.json()["category"]) == ("final", "laboratory")
    records = await rows(owner_engine, org)
    assert [len(records[k]) for k in ("attestation", "audit", "event")] == [0, 0, 0]
    async with owner_engine.connect() as conn:
        created = (
            await conn.execute(
                select(AuditEvent.target_id).where(
                    AuditEvent.organization_id == org,
                    AuditEvent.action == "records.observation.create",
                )
            )
        ).all()
    # One for the set-up's weight, one for the creatinine recorded through cds.
    assert [tuple(r) for r in created] == [(pid,), (pid,)]


async def test_record_form_weight_in_kg_resolves_weight_gate(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await clinic(container, client, "att-record-kg", "clinician"))["clinician"]
    pid = await patient(client, clinician, scr_mg_dl=2.0)  # weight missing
    first = await evaluate(client, clinician, pid)
    assert set(reasons_of(first)) == {"weight_missing"}

    response = await client.post(
        ATTESTATIONS,
        json={
            "evaluation_id": first["evaluation_id"],
            "record": {
                "weight_kg": 55.8,
                "measured_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            },
        },
        headers=clinician.headers,
    )

    assert response.status_code == 201, response.text
    again = await evaluate(client, clinician, pid)
    assert (again["outcome"], again["crcl_ml_min"]) == ("PASS", 31.0)
    assert again["facts"]["weight"]["observation_id"] == response.json()["observation_id"]


# -- refusals -------------------------------------------------------------------------------------


async def test_unknown_or_other_organizations_evaluation_is_404_and_records_nothing(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    a = (await clinic(container, client, "att-org-a", "clinician"))["clinician"]
    b = (await clinic(container, client, "att-org-b", "clinician"))["clinician"]
    pid = await patient(client, a, weight_kg=55.8)
    evaluation_id = (await evaluate(client, a, pid))["evaluation_id"]

    foreign = await attest(client, b, evaluation_id, ["serum_creatinine"])
    unknown = await attest(client, b, "00000000-0000-0000-0000-000000000000", ["weight"])

    foreign_body = assert_problem(foreign, 404, "not_found")
    assert foreign_body["detail"] == assert_problem(unknown, 404, "not_found")["detail"]
    assert evaluation_id not in foreign.text
    for org in (a, b):
        records = await rows(owner_engine, org.member.organization_id)
        assert [len(records[k]) for k in ("attestation", "audit", "event")] == [0, 0, 0]


async def test_pharmacist_and_nurse_may_not_attest(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "att-roles", "clinician", "pharmacist", "nurse")
    pid = await patient(client, staff["clinician"], weight_kg=55.8)
    evaluation_id = (await evaluate(client, staff["clinician"], pid))["evaluation_id"]

    for role in ("pharmacist", "nurse"):
        response = await attest(client, staff[role], evaluation_id, ["serum_creatinine"])
        assert_problem(response, 403, "permission_denied")
    records = await rows(owner_engine, staff["clinician"].member.organization_id)
    assert records["attestation"] == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"facts": ["weight"], "reason": "x"}, ["body.facts.0"]),
        ({"facts": ["height"], "reason": "x"}, ["body.facts.0"]),
        ({"facts": ["serum_creatinine", "serum_creatinine"], "reason": "x"}, ["body.facts.1"]),
        ({"facts": [], "reason": "x"}, ["body.facts"]),
        ({"facts": ["serum_creatinine"]}, ["body.reason"]),
        ({"facts": ["serum_creatinine"], "reason": "   "}, ["body.reason"]),
        ({"facts": ["serum_creatinine"], "reason": "x" * 501}, ["body.reason"]),
        ({"facts": ["serum_creatinine"], "reason": "x", "expires_in_hours": 0}, None),
        ({"facts": ["serum_creatinine"], "reason": "x", "expires_in_hours": 73}, None),
        ({}, ["body.facts", "body.record"]),
        ({"reason": "x"}, ["body.facts", "body.record"]),
        (
            {
                "facts": ["serum_creatinine"],
                "reason": "x",
                "record": {"serum_creatinine_mg_dl": 2.0, "measured_at": RECENT},
            },
            ["body.facts", "body.reason"],
        ),
        (
            {
                "record": {
                    "serum_creatinine_mg_dl": 2.0,
                    "weight_kg": 55.8,
                    "measured_at": RECENT,
                }
            },
            ["body.record"],
        ),
        ({"record": {"measured_at": RECENT}}, ["body.record"]),
        (
            {"record": {"weight_kg": 55.8, "measured_at": RECENT}},
            ["body.record.weight_kg"],
        ),
        ({"record": {"serum_creatinine_mg_dl": 50, "measured_at": RECENT}}, None),
        ({"record": {"serum_creatinine_mg_dl": 0, "measured_at": RECENT}}, None),
        ({"record": {"serum_creatinine_mg_dl": 2, "measured_at": "2099-01-01T00:00:00Z"}}, None),
        ({"record": {"serum_creatinine_mg_dl": 2, "measured_at": RECENT[:19]}}, None),
    ],
    ids=[
        "fact-not-behind-attest",
        "unknown-fact",
        "fact-twice",
        "no-facts",
        "no-reason",
        "blank-reason",
        "reason-too-long",
        "expiry-zero",
        "expiry-over-72",
        "neither-form",
        "reason-alone",
        "both-forms",
        "two-values",
        "no-value",
        "value-not-behind-attest",
        "implausible-creatinine",
        "zero-creatinine",
        "future-measurement",
        "naive-measurement",
    ],
)
async def test_bad_request_is_422_naming_the_field_and_records_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    body: dict[str, Any],
    fields: list[str] | None,
) -> None:
    clinician = (await clinic(container, client, "att-invalid", "clinician"))["clinician"]
    org = clinician.member.organization_id
    pid = await patient(client, clinician, weight_kg=55.8)  # ATTEST: creatinine_missing only
    evaluation_id = (await evaluate(client, clinician, pid))["evaluation_id"]

    response = await client.post(
        ATTESTATIONS, json={"evaluation_id": evaluation_id} | body, headers=clinician.headers
    )

    named = fields_of(response)
    if fields is not None:
        assert named == fields
    else:  # the one field of the parametrised body that is out of range
        key = "expires_in_hours" if "expires_in_hours" in body else "record"
        assert len(named) == 1 and named[0].startswith(f"body.{key}"), named
        if key == "record":
            value_field = next(k for k in body["record"] if k != "measured_at")
            assert named[0] in (f"body.record.{value_field}", "body.record.measured_at")
    assert SECRET_REASON not in response.text
    records = await rows(owner_engine, org)
    assert [len(records[k]) for k in ("attestation", "audit", "event")] == [0, 0, 0]
    async with owner_engine.connect() as conn:
        observations = (
            await conn.execute(
                select(AuditEvent.id).where(
                    AuditEvent.organization_id == org,
                    AuditEvent.action == "records.observation.create",
                )
            )
        ).all()
    assert len(observations) == 1  # the set-up's weight only


async def test_evaluation_without_attest_reasons_or_patient_is_422_on_evaluation_id(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await clinic(container, client, "att-which", "clinician"))["clinician"]
    pid = await patient(client, clinician, weight_kg=55.8, scr_mg_dl=2.0)
    passed = await evaluate(client, clinician, pid)
    assert passed["outcome"] == "PASS"
    inline_body = base_body()
    inline_body["patient"] |= {"serum_creatinine_mg_dl": None, "creatinine_measured_at": None}
    inline = await client.post(EVALUATE, json=inline_body, headers=clinician.headers)
    assert inline.json()["outcome"] == "ATTEST", inline.text

    on_pass = await attest(client, clinician, passed["evaluation_id"], ["serum_creatinine"])
    on_inline = await attest(
        client, clinician, inline.json()["evaluation_id"], ["serum_creatinine"]
    )

    assert fields_of(on_pass) == ["body.evaluation_id"]
    assert fields_of(on_inline) == ["body.evaluation_id"]
    assert "record mode" in on_inline.json()["errors"][0]["message"]
    records = await rows(owner_engine, clinician.member.organization_id)
    assert records["attestation"] == []


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM cds_attestation", "UPDATE cds_attestation SET expires_at = now()"],
    ids=["delete", "update"],
)
async def test_attestation_rows_as_app_role_are_tenant_scoped_and_never_changed(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine, statement: str
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and grants are PostgreSQL features")
    clinician = (await clinic(container, client, "att-rls", "clinician"))["clinician"]
    org = clinician.member.organization_id
    pid = await patient(client, clinician, weight_kg=55.8)
    evaluation_id = (await evaluate(client, clinician, pid))["evaluation_id"]
    assert (await attest(client, clinician, evaluation_id, ["serum_creatinine"])).is_success

    async with container.engine.connect() as conn:
        unscoped = (await conn.execute(text("SELECT count(*) FROM cds_attestation"))).scalar_one()
        await conn.execute(text("SELECT set_config('app.organization_id', :o, false)"), {"o": org})
        scoped = (await conn.execute(text("SELECT count(*) FROM cds_attestation"))).scalar_one()
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(text(statement))
        await conn.rollback()

    assert (unscoped, scoped) == (0, 1)
    assert "permission denied" in str(excinfo.value.orig)
    assert len((await rows(owner_engine, org))["attestation"]) == 1
