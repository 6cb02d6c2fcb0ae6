"""POST /api/v1/cds/evaluate with ``patient_id`` (record mode): the engine's facts come from the
stored record — latest released weight and creatinine by ``effective_at``, active medications
and conditions — and each call leaves one governance row and one audit entry naming the
patient. Every test runs on SQLite and PostgreSQL (the `client`/`container` fixtures).

Expected CrCl values are computed by hand from doac-rules.md 0.5 (Cockcroft-Gault, actual body
weight, no SCr floor, round half-up to one decimal, x 0.85 if female) and written next to each
scenario; the patient is 60 on AS_OF (born 1966-03-14), so (140 - 60) = 80.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds.engine import Order
from clinicos.cds.models import CdsEvaluation
from clinicos.cds.services import record_patient_evaluation
from clinicos.governance import AuditEvent
from clinicos.identity import Permission
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import PermissionDenied
from clinicos.platform.db.models import OutboxMessage
from clinicos.records import (
    ConditionFields,
    ObservationFields,
    PrescriptionFields,
    StatementFields,
    add_prescription,
    record_condition,
    record_medication,
    record_observation,
)
from tests.integration.cds.api_cases import AS_OF, AS_OF_TEXT, EVALUATE
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of, assert_problem, audit_count

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
BORN_60_ON_AS_OF = "1966-03-14"

DABIGATRAN_VTE = {
    "drug": "dabigatran",
    "dose_mg": 150,
    "frequency": "BID",
    "indication": "vte_treatment",
}
RIVAROXABAN_VTE = {
    "drug": "rivaroxaban",
    "dose_mg": 20,
    "frequency": "QD",
    "indication": "vte_treatment",
}
APIXABAN_NVAF = {"drug": "apixaban", "dose_mg": 5, "frequency": "BID", "indication": "nvaf"}


def days_ago(days: int) -> datetime:
    return AS_OF - timedelta(days=days)


@dataclass(frozen=True)
class Obs:
    """One observation to store; ``label`` finds its id in the response's facts."""

    label: str
    code: str
    value: str
    unit: str
    measured_days_ago: int
    status: str = "final"
    issued_days_ago: int | None = None

    def fields(self) -> ObservationFields:
        issued = self.measured_days_ago if self.issued_days_ago is None else self.issued_days_ago
        return ObservationFields(
            code=self.code,
            category="vital-signs" if self.code == "29463-7" else "laboratory",
            status=self.status,  # type: ignore[arg-type]
            effective_at=days_ago(self.measured_days_ago),
            issued_at=days_ago(issued),
            value=Decimal(self.value),
            unit=self.unit,
        )


def weight(value: str = "52.2", unit: str = "kg", days: int = 5, label: str = "weight") -> Obs:
    return Obs(label, "29463-7", value, unit, days)


def scr(value: str, days: int = 5, label: str = "scr", **extra: Any) -> Obs:
    return Obs(label, "2160-0", value, "mg/dL", days, **extra)


def scr_umol(value: str, days: int, label: str = "scr_umol") -> Obs:
    return Obs(label, "14682-9", value, "umol/L", days)


def statement(code_system: str, code: str, display: str, status: str = "active") -> StatementFields:
    return StatementFields(
        code_system=code_system,
        code=code,
        display=display,
        status=status,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Scenario:
    order: dict[str, Any]
    observations: tuple[Obs, ...]
    outcome: str
    crcl: float | None
    reasons: frozenset[str]
    sex: str = "male"
    creatinine_from: str | None = None
    medications: tuple[StatementFields, ...] = ()
    conditions: tuple[ConditionFields, ...] = ()
    recognised_medications: frozenset[str] = field(default_factory=frozenset)


SCENARIOS: dict[str, Scenario] = {
    # P-001: 80 x 52.2 / (72 x 2.0) = 4176 / 144 = 29.0 -> dabigatran VTE at CrCl <= 30: BLOCK.
    "P-001-dabigatran-vte-crcl-29-block": Scenario(
        DABIGATRAN_VTE,
        (weight(), scr("2.0")),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
        creatinine_from="scr",
    ),
    # P-002: 80 x 55.8 / 144 = 4464 / 144 = 31.0 -> PASS.
    "P-002-dabigatran-vte-crcl-31-pass": Scenario(
        DABIGATRAN_VTE,
        (weight("55.8"), scr("2.0")),
        "PASS",
        31.0,
        frozenset(),
        creatinine_from="scr",
    ),
    # Sampled 12 days ago (2.0 -> 29.0) beats a sample taken 21 days ago but issued 2 days ago
    # (1.0 would give 80 x 52.2 / 72 = 58.0): measurement time decides, not the report's.
    "newest-sample-wins-over-later-issued-older-sample": Scenario(
        DABIGATRAN_VTE,
        (
            weight(),
            scr("2.0", days=12, label="newer_sample", issued_days_ago=11),
            scr("1.0", days=21, label="older_sample", issued_days_ago=2),
        ),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
        creatinine_from="newer_sample",
    ),
    # 176.8 umol/L = 2.0 mg/dL (/ 88.4) measured 7 days ago, newer than 1.0 mg/dL 21 days ago:
    # 80 x 52.2 x 88.4 / (72 x 176.8) = 29.0.
    "umol-per-l-sample-used-when-newer": Scenario(
        DABIGATRAN_VTE,
        (weight(), scr("1.0", days=21, label="old_mg_dl"), scr_umol("176.8", days=7)),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
        creatinine_from="scr_umol",
    ),
    # The mg/dL result is newer here: 1.0 -> 58.0, PASS; the older umol/L (2.0 mg/dL) is unused.
    "mg-per-dl-sample-used-when-newer": Scenario(
        DABIGATRAN_VTE,
        (weight(), scr("1.0", days=3, label="new_mg_dl"), scr_umol("176.8", days=7)),
        "PASS",
        58.0,
        frozenset(),
        creatinine_from="new_mg_dl",
    ),
    # Newer preliminary (1.0) and cancelled results are not released: the final 2.0 -> 29.0.
    "preliminary-and-cancelled-results-ignored": Scenario(
        DABIGATRAN_VTE,
        (
            weight(),
            scr("2.0", days=12, label="final"),
            scr("1.0", days=2, label="preliminary", status="preliminary"),
            scr("1.0", days=1, label="cancelled", status="cancelled"),
        ),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
        creatinine_from="final",
    ),
    # Below assay resolution (inputs.MIN_SCR_MG_DL, our policy) a stored value is a typo, not a
    # fact: 0.001 mg/dL would give CrCl 58,000; the data gate asks for a real result instead.
    "creatinine-below-assay-resolution-attest": Scenario(
        DABIGATRAN_VTE, (weight(), scr("0.001")), "ATTEST", None, frozenset({"creatinine_missing"})
    ),
    # doac-rules.md 0.4: no creatinine -> ATTEST; CrCl null; nothing invented.
    "missing-creatinine-attest": Scenario(
        DABIGATRAN_VTE, (weight(),), "ATTEST", None, frozenset({"creatinine_missing"})
    ),
    "missing-weight-and-creatinine-attest": Scenario(
        DABIGATRAN_VTE,
        (),
        "ATTEST",
        None,
        frozenset({"creatinine_missing", "weight_missing"}),
    ),
    # Only a preliminary creatinine: as good as none.
    "only-preliminary-creatinine-is-missing": Scenario(
        DABIGATRAN_VTE,
        (weight(), scr("2.0", status="preliminary")),
        "ATTEST",
        None,
        frozenset({"creatinine_missing"}),
    ),
    # SCr 91 days and weight 181 days before AS_OF: stale (windows 90/180 inclusive); CrCl
    # is still reported (29.0) but no rule uses it.
    "stale-creatinine-and-weight-attest": Scenario(
        DABIGATRAN_VTE,
        (weight(days=181), scr("2.0", days=91)),
        "ATTEST",
        29.0,
        frozenset({"creatinine_stale", "weight_stale"}),
        creatinine_from="scr",
    ),
    # Exactly 90 and 180 days: still fresh (inclusive windows), so the renal rule decides.
    "data-at-the-window-edges-is-fresh": Scenario(
        DABIGATRAN_VTE,
        (weight(days=180), scr("2.0", days=90)),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
        creatinine_from="scr",
    ),
    # 52200 g = 52.2 kg -> 29.0.
    "weight-recorded-in-grams": Scenario(
        DABIGATRAN_VTE,
        (weight("52200", "g"), scr("2.0")),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
    ),
    # 115 [lb_av] x 0.45359237 = 52.16312255 kg; 80 x 52.16312255 / 144 = 28.9795 -> 29.0.
    "weight-recorded-in-pounds": Scenario(
        DABIGATRAN_VTE,
        (weight("115", "[lb_av]"), scr("2.0")),
        "BLOCK",
        29.0,
        frozenset({"dabigatran_crcl_30_or_less_vte"}),
    ),
    # 80 x 52.2 / (72 x 1.0) = 58.0. Ketoconazole (ATC-coded, recognised by its generic name)
    # is a combined P-gp/strong CYP3A4 inhibitor: rivaroxaban BLOCK. The stopped rifampin is
    # not taken any more and must not add the inducer reason.
    "interacting-active-medication-on-the-list": Scenario(
        RIVAROXABAN_VTE,
        (weight(), scr("1.0")),
        "BLOCK",
        58.0,
        frozenset({"strong_pgp_cyp3a4_inhibitor"}),
        medications=(
            statement(ATC, "J02AB02", "Ketoconazole 200 mg oral tablet"),
            statement(ATC, "J04AB02", "Rifampin 300 mg capsule", status="stopped"),
        ),
        recognised_medications=frozenset({"ketoconazole"}),
    ),
    # Warfarin by its RxNorm ingredient code (a brand display): another anticoagulant on the
    # list -> duplicate_anticoagulant WARN. Apixaban 5 mg BID: 1 of 3 criteria (<= 60 kg).
    "other-anticoagulant-on-the-list-by-rxnorm": Scenario(
        APIXABAN_NVAF,
        (weight(), scr("1.0")),
        "WARN",
        58.0,
        frozenset({"duplicate_anticoagulant"}),
        medications=(statement(RXNORM, "11289", "Coumadin 5 MG Oral Tablet"),),
        recognised_medications=frozenset({"warfarin"}),
    ),
    "active-bleeding-condition-blocks": Scenario(
        APIXABAN_NVAF,
        (weight(), scr("1.0")),
        "BLOCK",
        58.0,
        frozenset({"active_bleeding"}),
        conditions=(ConditionFields(clinical_status="active", icd10_code="R58"),),
    ),
    # Female: 58.0 x 0.85 = 49.3. Pregnancy (SNOMED) -> WARN, prosthetic valve (Z95.2) ->
    # BLOCK on any DOAC (A10, A11).
    "pregnancy-and-mechanical-valve-conditions": Scenario(
        APIXABAN_NVAF,
        (weight(), scr("1.0")),
        "BLOCK",
        49.3,
        frozenset({"pregnancy_doac_review", "mechanical_heart_valve"}),
        sex="female",
        conditions=(
            ConditionFields(clinical_status="active", snomed_code="77386006"),
            ConditionFields(clinical_status="active", icd10_code="Z95.2"),
        ),
    ),
    # A resolved bleed and a refuted pregnancy are not facts about the patient now: PASS.
    "resolved-and-refuted-conditions-ignored": Scenario(
        APIXABAN_NVAF,
        (weight(), scr("1.0")),
        "PASS",
        58.0,
        frozenset(),
        conditions=(
            ConditionFields(clinical_status="resolved", icd10_code="R58"),
            ConditionFields(
                clinical_status="active", verification_status="refuted", icd10_code="Z33.1"
            ),
        ),
    ),
}


async def patient_with(
    container: Container, client: AsyncClient, who: SignedIn, scenario: Scenario
) -> tuple[str, dict[str, str]]:
    """A patient born 1966-03-14 with the scenario's record; returns its id and the
    observation ids by label."""
    patient = await create_patient(
        client, who, mrn="MRN-REC-1", birth_date=BORN_60_ON_AS_OF, sex=scenario.sex
    )
    actor = actor_of(who)
    ids: dict[str, str] = {}
    for obs in scenario.observations:
        row = await record_observation(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            patient_id=patient["id"],
            values=obs.fields(),
        )
        ids[obs.label] = row.id
    for values in scenario.medications:
        await record_medication(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            patient_id=patient["id"],
            values=values,
        )
    for condition in scenario.conditions:
        await record_condition(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            patient_id=patient["id"],
            values=condition,
        )
    return patient["id"], ids


def record_body(patient_id: str, order: dict[str, Any]) -> dict[str, Any]:
    return {"as_of": AS_OF_TEXT, "patient_id": patient_id, "order": dict(order)}


async def clinician_of(container: Container, client: AsyncClient, slug: str) -> SignedIn:
    return (await clinic(container, client, slug, "clinician"))["clinician"]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_evaluate_record_mode_scenario_gives_expected_outcome(
    container: Container, client: AsyncClient, name: str
) -> None:
    scenario = SCENARIOS[name]
    clinician = await clinician_of(container, client, "record-mode")
    patient_id, observation_ids = await patient_with(container, client, clinician, scenario)

    response = await client.post(
        EVALUATE, json=record_body(patient_id, scenario.order), headers=clinician.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["crcl_ml_min"]) == (scenario.outcome, scenario.crcl)
    assert {reason["key"] for reason in body["reasons"]} == scenario.reasons
    facts = body["facts"]
    assert (facts["patient_id"], facts["age_years"], facts["sex"]) == (
        patient_id,
        60,
        scenario.sex,
    )
    if scenario.creatinine_from is not None:
        assert facts["creatinine"]["observation_id"] == observation_ids[scenario.creatinine_from]
    if "weight" in observation_ids and scenario.crcl is not None:
        assert facts["weight"]["observation_id"] == observation_ids["weight"]
    assert {m["name"] for m in facts["medications"]} == scenario.recognised_medications


async def test_evaluate_record_mode_explains_facts_without_identifying_data(
    container: Container, client: AsyncClient
) -> None:
    scenario = SCENARIOS["umol-per-l-sample-used-when-newer"]
    clinician = await clinician_of(container, client, "record-facts")
    patient_id, ids = await patient_with(container, client, clinician, scenario)

    response = await client.post(
        EVALUATE, json=record_body(patient_id, scenario.order), headers=clinician.headers
    )

    facts = response.json()["facts"]
    assert facts["weight"] == {
        "value_kg": 52.2,
        "value": 52.2,
        "unit": "kg",
        "measured_at": (AS_OF - timedelta(days=5)).date().isoformat(),
        "observation_id": ids["weight"],
    }
    assert facts["creatinine"] == {
        "value": 176.8,
        "unit": "umol/L",
        "code": "14682-9",
        "measured_at": (AS_OF - timedelta(days=7)).date().isoformat(),
        "observation_id": ids["scr_umol"],
    }
    assert (facts["active_bleeding"], facts["mechanical_valve"], facts["pregnant"]) == (
        False,
        False,
        False,
    )
    # Demographics from records_fixtures.patient_body: none of them may leave in the answer.
    for identifying in (BORN_60_ON_AS_OF, "Quispe", "Ana", "MRN-REC-1", "4821337", "El Alto"):
        assert identifying not in response.text


async def test_evaluate_record_mode_counts_an_imported_active_prescription(
    container: Container, client: AsyncClient
) -> None:
    # An active prescription brought in by an import adds no medication-list entry; it is
    # still taken, so warfarin on it makes apixaban a duplicate anticoagulant (WARN).
    scenario = Scenario(APIXABAN_NVAF, (weight(), scr("1.0")), "WARN", 58.0, frozenset())
    clinician = await clinician_of(container, client, "record-rx")
    patient_id, _ = await patient_with(container, client, clinician, scenario)
    actor = actor_of(clinician)
    async with container.uow(actor.organization_id) as uow:
        await add_prescription(
            uow,
            container.phi,
            actor,
            patient_id=patient_id,
            values=PrescriptionFields(
                code_system=RXNORM, code="11289", display="warfarin 5 MG Oral Tablet"
            ),
            status="active",
            issued_at=days_ago(30),
        )
        await uow.commit()

    response = await client.post(
        EVALUATE, json=record_body(patient_id, APIXABAN_NVAF), headers=clinician.headers
    )

    body = response.json()
    assert body["outcome"] == "WARN"
    assert {r["key"] for r in body["reasons"]} == {"duplicate_anticoagulant"}
    assert [(m["name"], m["source"], m["matched_by"]) for m in body["facts"]["medications"]] == [
        ("warfarin", "prescription", "rxnorm")
    ]


# -- governance: one evaluation row, one audit entry, one event per call -------------------------


async def test_evaluate_record_mode_writes_one_row_one_audit_entry_one_event(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    scenario = SCENARIOS["P-001-dabigatran-vte-crcl-29-block"]
    clinician = await clinician_of(container, client, "record-gov")
    org = clinician.member.organization_id
    patient_id, _ = await patient_with(container, client, clinician, scenario)
    audits_before = await audit_count(owner_engine, org)

    response = await client.post(
        EVALUATE, json=record_body(patient_id, scenario.order), headers=clinician.headers
    )

    evaluation_id = response.json()["evaluation_id"]
    assert await audit_count(owner_engine, org) == audits_before + 1
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(select(CdsEvaluation).where(CdsEvaluation.organization_id == org))
        ).all()
        audit = (
            await conn.execute(
                select(AuditEvent)
                .where(AuditEvent.organization_id == org)
                .order_by(AuditEvent.seq.desc())
                .limit(1)
            )
        ).one()
        events = (
            await conn.execute(
                select(OutboxMessage).where(
                    OutboxMessage.organization_id == org,
                    OutboxMessage.event_type == "cds.EvaluationRecorded",
                )
            )
        ).all()
    assert [(r.id, r.patient_id, r.outcome) for r in rows] == [(evaluation_id, patient_id, "BLOCK")]
    assert (audit.action, audit.target_type, audit.target_id, audit.actor_id) == (
        "cds.evaluate",
        "patient",
        patient_id,
        clinician.member.user_id,
    )
    assert [(e.payload["evaluation_id"], e.payload["patient_id"]) for e in events] == [
        (evaluation_id, patient_id)
    ]


# -- who and which patient ------------------------------------------------------------------------


async def test_evaluate_record_mode_for_another_organizations_patient_is_404(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    owner = await clinician_of(container, client, "record-owner")
    stranger = await clinician_of(container, client, "record-stranger")
    patient_id, _ = await patient_with(
        container, client, owner, SCENARIOS["P-001-dabigatran-vte-crcl-29-block"]
    )
    audits_before = await audit_count(owner_engine, stranger.member.organization_id)

    theirs = await client.post(
        EVALUATE, json=record_body(patient_id, DABIGATRAN_VTE), headers=stranger.headers
    )
    unknown = await client.post(
        EVALUATE,
        json=record_body("3f2b8c1e-0000-4000-8000-000000000001", DABIGATRAN_VTE),
        headers=stranger.headers,
    )

    first = assert_problem(theirs, 404, "not_found")
    second = assert_problem(unknown, 404, "not_found")
    assert (first["title"], first["detail"]) == (second["title"], second["detail"])
    assert patient_id not in theirs.text and "3f2b8c1e" not in unknown.text
    assert await audit_count(owner_engine, stranger.member.organization_id) == audits_before
    async with owner_engine.connect() as conn:
        stored = (await conn.execute(select(CdsEvaluation.id))).all()
    assert stored == []


async def test_evaluate_record_mode_by_a_nurse_is_forbidden(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "record-nurse", "clinician", "nurse")
    patient_id, _ = await patient_with(
        container, client, staff["clinician"], SCENARIOS["P-002-dabigatran-vte-crcl-31-pass"]
    )

    response = await client.post(
        EVALUATE, json=record_body(patient_id, DABIGATRAN_VTE), headers=staff["nurse"].headers
    )

    assert_problem(response, 403, "permission_denied")


@pytest.mark.parametrize("lacking", [Permission.patient_read, Permission.clinical_read])
async def test_record_patient_evaluation_without_record_read_permission_is_refused(
    container: Container, client: AsyncClient, lacking: Permission
) -> None:
    # No role holds cds:evaluate without both record reads today; the use case still checks
    # them, so a future role (say, a CDS-only integration) cannot read records through cds.
    clinician = await clinician_of(container, client, "record-perm")
    patient_id, _ = await patient_with(
        container, client, clinician, SCENARIOS["P-002-dabigatran-vte-crcl-31-pass"]
    )
    full = actor_of(clinician)
    actor = Actor(
        user_id=full.user_id,
        organization_id=full.organization_id,
        roles=full.roles,
        permissions=full.permissions - {lacking.value},
    )

    with pytest.raises(PermissionDenied, match=lacking.value):
        await record_patient_evaluation(
            uows=container.uow,
            phi=container.phi,
            actor=actor,
            patient_id=patient_id,
            order=Order.model_validate(DABIGATRAN_VTE),
            as_of=AS_OF,
        )


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"sex": "unknown"}, ["sex"]),
        ({"sex": "other", "birth_date": None}, ["sex", "birth_date"]),
        ({"birth_date": None}, ["birth_date"]),
    ],
    ids=["sex-unknown", "sex-other-no-birth-date", "no-birth-date"],
)
async def test_evaluate_record_mode_without_sex_or_birth_date_is_409_naming_them(
    container: Container, client: AsyncClient, changes: dict[str, Any], fields: list[str]
) -> None:
    # Cockcroft-Gault needs male/female and an age; no policy says what to assume, and no
    # data gate covers them, so the check refuses instead of guessing.
    clinician = await clinician_of(container, client, "record-incomplete")
    patient = await create_patient(client, clinician, mrn="MRN-INC", **changes)

    response = await client.post(
        EVALUATE, json=record_body(patient["id"], DABIGATRAN_VTE), headers=clinician.headers
    )

    problem = assert_problem(response, 409, "cds_record_incomplete")
    for name in fields:
        assert name in problem["detail"]
    assert "unknown" not in problem["detail"] and "other" not in problem["detail"].split()


# -- the request's choice of subject -------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        {},
        {"patient_id": None},
        {"patient_id": "3f2b8c1e-0000-4000-8000-000000000001", "patient": "inline"},
    ],
    ids=["neither", "null-patient-id", "both"],
)
async def test_evaluate_needs_exactly_one_of_patient_and_patient_id(
    container: Container, client: AsyncClient, subject: dict[str, Any]
) -> None:
    clinician = await clinician_of(container, client, "record-subject")
    body: dict[str, Any] = {"as_of": AS_OF_TEXT, "order": dict(DABIGATRAN_VTE)} | subject
    if body.get("patient") == "inline":
        body["patient"] = {"age_years": 60, "sex": "male"}

    response = await client.post(EVALUATE, json=body, headers=clinician.headers)

    problem = assert_problem(response, 422, "validation_failed")
    assert {e["field"] for e in problem["errors"]} == {"body.patient", "body.patient_id"}
    assert "3f2b8c1e" not in response.text


@pytest.mark.parametrize("patient_id", ["", "x" * 65, 42])
async def test_evaluate_with_malformed_patient_id_is_422_on_the_field(
    container: Container, client: AsyncClient, patient_id: Any
) -> None:
    clinician = await clinician_of(container, client, "record-malformed")

    response = await client.post(
        EVALUATE,
        json={"as_of": AS_OF_TEXT, "patient_id": patient_id, "order": dict(DABIGATRAN_VTE)},
        headers=clinician.headers,
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in problem["errors"]] == ["body.patient_id"]
