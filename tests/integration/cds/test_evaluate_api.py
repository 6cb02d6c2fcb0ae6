"""POST /api/v1/cds/evaluate with the patient inline: seeds, worked cases, units, languages,
permissions. Every test runs on SQLite and PostgreSQL (the `client`/`container` fixtures)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from clinicos.bootstrap import Container
from clinicos.cds import evaluate, load_rule_pack
from clinicos.cds.engine import UMOL_L_PER_MG_DL
from clinicos.governance import AuditEvent
from tests.integration.cds.api_cases import (
    AS_OF,
    AS_OF_TEXT,
    EVALUATE,
    base_body,
    birth_date_for_age,
    case_ids,
    load_cases,
    patient_body,
    request_body,
    signed_in,
)
from tests.support.tenancy_fixtures import assert_problem

# `facts` explains record mode's inputs; inline it is null (the caller gave them).
RESPONSE_KEYS = {
    "evaluation_id",
    "outcome",
    "crcl_ml_min",
    "reasons",
    "rule_pack",
    "as_of",
    "facts",
}
# `attested`/`attestation_id`: record mode's attestation flags (false/null inline).
REASON_KEYS = {
    "key",
    "severity",
    "message",
    "source",
    "policy",
    "suggestion",
    "attested",
    "attestation_id",
}


def keys_of(body: dict[str, Any]) -> set[str]:
    return {reason["key"] for reason in body["reasons"]}


async def post(client: AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    response = await client.post(EVALUATE, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# -- seed fixtures (issue 5: P-001, P-002, P-007) -----------------------------------------------


@pytest.mark.parametrize(
    ("seed", "case_id", "outcome", "crcl", "reasons"),
    [
        ("P-001", "G-006", "BLOCK", 29.0, {"dabigatran_crcl_30_or_less_vte"}),
        ("P-002", "G-008", "PASS", 31.0, set()),
        ("P-007", "G-047", "WARN", 70.6, {"beers_rivaroxaban_long_term"}),
    ],
    ids=["P-001-dabigatran-vte-crcl-29-block", "P-002-crcl-31-pass", "P-007-beers"],
)
async def test_evaluate_seed_fixture_when_posted_gives_seed_outcome(
    container: Container,
    client: AsyncClient,
    seed: str,
    case_id: str,
    outcome: str,
    crcl: float,
    reasons: set[str],
) -> None:
    case = load_cases()[case_id]
    clinician = (await signed_in(container, client, "seed-org", "clinician"))["clinician"]

    body = await post(client, clinician.headers, request_body(case))

    assert set(body) == RESPONSE_KEYS
    assert body["facts"] is None
    assert (body["outcome"], body["crcl_ml_min"], keys_of(body)) == (outcome, crcl, reasons), seed
    assert body["rule_pack"] == {"id": "doac", "version": load_rule_pack().version}
    assert body["as_of"] == AS_OF_TEXT
    assert all(set(reason) == REASON_KEYS for reason in body["reasons"])


# -- every worked case: API == engine == expected ------------------------------------------------


async def test_evaluate_every_worked_case_when_posted_matches_engine_and_expected(
    container: Container, client: AsyncClient
) -> None:
    cases = load_cases()
    assert len(cases) == len(case_ids()) >= 15
    pharmacist = (await signed_in(container, client, "cases-org", "pharmacist"))["pharmacist"]
    pack = load_rule_pack()
    mismatches = []
    for case_id, case in cases.items():
        body = await post(client, pharmacist.headers, request_body(case))
        engine = evaluate(patient_body(case["patient"]), case["order"], pack, AS_OF)
        engine_crcl = None if engine.crcl_ml_min is None else float(engine.crcl_ml_min)
        got = (body["outcome"], body["crcl_ml_min"], keys_of(body))
        expected = case["expected"]
        wanted = (expected["outcome"], expected["crcl_ml_min"], set(case["expected_reasons"]))
        if got != (engine.outcome, engine_crcl, set(engine.reason_keys)) or got != wanted:
            mismatches.append((case_id, got, wanted))
    assert mismatches == []


# -- equivalent inputs ---------------------------------------------------------------------------


async def test_evaluate_creatinine_in_umol_l_when_equivalent_gives_same_result(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "units-org", "clinician"))["clinician"]
    for case in load_cases().values():
        mg_dl = request_body(case)
        scr = mg_dl["patient"].pop("serum_creatinine_mg_dl")
        if scr is None:
            continue
        umol_l = request_body(case)
        del umol_l["patient"]["serum_creatinine_mg_dl"]
        umol_l["patient"]["serum_creatinine_umol_l"] = float(Decimal(str(scr)) * UMOL_L_PER_MG_DL)

        by_mg = await post(client, clinician.headers, request_body(case))
        by_umol = await post(client, clinician.headers, umol_l)

        assert (by_umol["outcome"], by_umol["crcl_ml_min"], keys_of(by_umol)) == (
            by_mg["outcome"],
            by_mg["crcl_ml_min"],
            keys_of(by_mg),
        ), case["id"]


async def test_evaluate_birth_date_instead_of_age_gives_same_result(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "born-org", "clinician"))["clinician"]
    case = load_cases()["G-047"]  # 78 years old: Beers applies from 75
    by_age = request_body(case)
    by_birth = request_body(case)
    age = by_birth["patient"].pop("age_years")
    by_birth["patient"]["birth_date"] = birth_date_for_age(age, AS_OF.date())

    first = await post(client, clinician.headers, by_age)
    second = await post(client, clinician.headers, by_birth)

    assert (second["outcome"], second["crcl_ml_min"], keys_of(second)) == (
        first["outcome"],
        first["crcl_ml_min"],
        keys_of(first),
    )
    assert keys_of(second) == {"beers_rivaroxaban_long_term"}


@pytest.mark.parametrize(
    ("changes", "expected_keys"),
    [
        ({"weight_kg": None, "weight_measured_at": None}, {"weight_missing"}),
        ({"weight_kg": None}, {"weight_missing"}),
        ({"serum_creatinine_mg_dl": None, "creatinine_measured_at": None}, {"creatinine_missing"}),
    ],
    ids=["weight-null", "weight-value-null", "creatinine-null"],
)
async def test_evaluate_missing_measurement_when_posted_gives_attest_not_422(
    container: Container, client: AsyncClient, changes: dict[str, Any], expected_keys: set[str]
) -> None:
    clinician = (await signed_in(container, client, "gate-org", "clinician"))["clinician"]
    body = base_body()
    body["patient"].update(changes)

    result = await post(client, clinician.headers, body)

    assert result["outcome"] == "ATTEST"
    assert result["crcl_ml_min"] is None
    assert keys_of(result) == expected_keys


async def test_evaluate_weight_fields_absent_gives_weight_missing(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "absent-org", "clinician"))["clinician"]
    body = base_body()
    del body["patient"]["weight_kg"], body["patient"]["weight_measured_at"]

    result = await post(client, clinician.headers, body)

    assert (result["outcome"], keys_of(result)) == ("ATTEST", {"weight_missing"})


async def test_evaluate_without_as_of_uses_now(container: Container, client: AsyncClient) -> None:
    clinician = (await signed_in(container, client, "now-org", "clinician"))["clinician"]
    body = base_body()
    del body["as_of"]
    before = container.clock.now()

    result = await post(client, clinician.headers, body)

    as_of = datetime.fromisoformat(result["as_of"].replace("Z", "+00:00"))
    assert before <= as_of <= container.clock.now()


# -- language ------------------------------------------------------------------------------------


async def test_evaluate_accept_language_es_explains_in_spanish(
    container: Container, client: AsyncClient
) -> None:
    pack = load_rule_pack()
    clinician = (await signed_in(container, client, "lang-org", "clinician"))["clinician"]
    body = request_body(load_cases()["G-006"])

    spanish = await post(client, clinician.headers | {"Accept-Language": "es-BO,es;q=0.9"}, body)
    default = await post(client, clinician.headers, body)
    portuguese = await post(client, clinician.headers | {"Accept-Language": "pt-BR"}, body)

    rule = pack.rules["dabigatran_crcl_30_or_less_vte"]
    assert spanish["reasons"][0]["message"] == rule.messages.es
    assert default["reasons"][0]["message"] == rule.messages.en
    assert portuguese["reasons"][0]["message"] == rule.messages.pt
    assert rule.messages.es != rule.messages.en


async def test_evaluate_dose_suggestion_when_reason_has_one_is_in_the_language(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "hint-org", "clinician"))["clinician"]
    body = request_body(load_cases()["G-018"])  # apixaban 5 mg where 2.5 mg BID is labelled

    result = await post(client, clinician.headers | {"Accept-Language": "es"}, body)

    suggestion = result["reasons"][0]["suggestion"]
    template = load_rule_pack().suggestion_template.es
    assert suggestion == template.format(drug="apixaban", dose_mg="2.5", frequency="BID")


# -- permissions ---------------------------------------------------------------------------------


async def test_evaluate_as_nurse_is_forbidden_and_audited(
    container: Container, client: AsyncClient
) -> None:
    nurse = (await signed_in(container, client, "nurse-org", "nurse"))["nurse"]

    response = await client.post(EVALUATE, json=base_body(), headers=nurse.headers)

    assert_problem(response, 403, "permission_denied")
    async with container.uow(nurse.member.organization_id) as uow:
        rows = (
            await uow.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "access.denied")
            )
        ).all()
    assert [(r.actor_id, r.target_id) for r in rows] == [(nurse.member.user_id, "cds:evaluate")]


async def test_evaluate_without_token_is_401(client: AsyncClient) -> None:
    response = await client.post(EVALUATE, json=base_body())

    assert response.status_code == 401


async def test_evaluate_as_pharmacist_is_allowed(container: Container, client: AsyncClient) -> None:
    pharmacist = (await signed_in(container, client, "rx-org", "pharmacist"))["pharmacist"]

    result = await post(client, pharmacist.headers, base_body())

    assert result["outcome"] == "PASS"
    assert result["crcl_ml_min"] == 88.9
