"""The CDS Hooks 2.0 service end to end on SQLite and PostgreSQL: discovery, every worked case
through order-sign, client JWT authentication (algorithms, audience, expiry, replay, issuer),
the console's own access token, feedback as governance records, malformed requests, and the
`clinicos cds clients` commands."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds.hooks import services as hook_services
from clinicos.cds.hooks.models import CdsHooksCard, CdsHooksClient, CdsHooksJti
from clinicos.cds.models import CdsEvaluation, CdsOverride
from clinicos.cds.overrides import REASON_SYSTEM
from clinicos.governance import AuditEvent
from clinicos.platform.db.models import OutboxMessage
from tests.integration.cds.api_cases import load_cases, signed_in
from tests.integration.cds.hooks_support import (
    BASE,
    DISCOVERY,
    PATIENT_ID,
    PRACTITIONER,
    SELECT,
    SIGN,
    SIGN_FEEDBACK,
    ClientKey,
    bearer,
    case_request,
    client_token,
    ec_key,
    ed25519_key,
    hook_request,
    jwks_of,
    medication_request,
    post_hook,
    prefetch_for,
    reasons_of,
    register,
    rsa_key,
)
from tests.integration.cds.packs_support import cli, cli_env, failed, ok
from tests.support.tenancy_fixtures import new_organization

ISSUER = "https://ehr.example.org"
SECRET_COMMENT = "Pt Jane Roe MRN-4471 tolerated it for years"


class Client:
    """A registered CDS client of a fresh organization, minting one fresh token per call."""

    def __init__(self, container: Container, organization_id: str, key: ClientKey) -> None:
        self.container = container
        self.organization_id = organization_id
        self.key = key
        self.client_id = ""

    def headers(self, path: str = SIGN, **claims: Any) -> dict[str, str]:
        token = client_token(
            self.key,
            issuer=ISSUER,
            audience=BASE + path,
            now=self.container.clock.now(),
            **claims,
        )
        return bearer(token)


async def new_client(container: Container, slug: str, key: ClientKey | None = None) -> Client:
    organization_id = await new_organization(container, slug)
    client = Client(container, organization_id, key or rsa_key())
    client.client_id = await register(container, organization_id, ISSUER, client.key)
    return client


def today(container: Container) -> date:
    return container.clock.now().date()


def apixaban_request(container: Container, case_id: str = "G-018") -> dict[str, Any]:
    return case_request(load_cases()[case_id], today(container))


async def rows(owner_engine: AsyncEngine, model: Any, *where: Any) -> list[Any]:
    async with owner_engine.connect() as conn:
        return list((await conn.execute(select(model).where(*where))).all())


# -- discovery -----------------------------------------------------------------------------------


async def test_discovery_lists_sign_and_select_services_with_prefetch(client: AsyncClient) -> None:
    response = await client.get(DISCOVERY)

    assert response.status_code == 200, response.text
    services = {s["id"]: s for s in response.json()["services"]}
    assert {k: s["hook"] for k, s in services.items()} == {
        "doac-safety": "order-sign",
        "doac-safety-select": "order-select",
    }
    prefetch = services["doac-safety"]["prefetch"]
    assert prefetch == services["doac-safety-select"]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["weight"] == (
        "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7"
        "&_sort=-date&_count=1"
    )
    assert "http://loinc.org|2160-0" in prefetch["creatinine"]
    assert "http://loinc.org|14682-9" in prefetch["creatinine"]
    assert prefetch["medications"].startswith("MedicationRequest?patient={{context.patientId}}")
    assert "status=active" in prefetch["medications"]
    assert prefetch["conditions"].startswith("Condition?patient={{context.patientId}}")
    assert all(s["title"] and s["description"] for s in services.values())


# -- every worked case ---------------------------------------------------------------------------


async def test_every_worked_case_through_order_sign_gives_one_card_per_reason(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    cases = load_cases()
    assert len(cases) >= 15
    ehr = await new_client(container, "hooks-cases")
    mismatches = []
    for case_id, case in cases.items():
        response = await post_hook(client, ehr.headers(), case_request(case, today(container)))
        assert response.status_code == 200, (case_id, response.text)
        cards = response.json()["cards"]
        expected = case["expected"]
        got_block = sorted(
            c["extension"]["clinicos.reason"] for c in cards if c["indicator"] == "critical"
        )
        want_block = sorted(
            c["extension"]["clinicos.reason"]
            for c in cards
            if c["extension"]["clinicos.severity"] == "BLOCK"
        )
        crcls = {c["extension"]["clinicos.crcl_ml_min"] for c in cards}
        if (
            reasons_of(cards) != set(case["expected_reasons"])
            or got_block != want_block
            or (expected["outcome"] == "BLOCK") != bool(got_block)
            or (expected["outcome"] == "PASS") != (cards == [])
            or (cards and crcls != {expected["crcl_ml_min"]})
        ):
            mismatches.append((case_id, reasons_of(cards), case["expected_reasons"]))
        for card in cards:
            assert len(card["summary"]) < 140
            assert card["source"]["label"]
            assert card["extension"]["clinicos.evaluation_id"]
    assert mismatches == []
    evaluations = await rows(
        owner_engine, CdsEvaluation, CdsEvaluation.organization_id == ehr.organization_id
    )
    assert len(evaluations) == len(cases)
    # The client is the actor of its evaluations (docs/contexts/cds-hooks.md, "Who acts").
    assert {e.evaluated_by for e in evaluations} == {ehr.client_id}


async def test_block_card_carries_override_reasons_source_link_and_extension(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-block")

    response = await post_hook(client, ehr.headers(), apixaban_request(container, "G-006"))

    (card,) = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert card["extension"]["clinicos.reason"] == "dabigatran_crcl_30_or_less_vte"
    assert card["extension"]["clinicos.severity"] == "BLOCK"
    assert card["extension"]["clinicos.crcl_ml_min"] == 29.0
    assert card["source"]["url"].startswith("https://dailymed.nlm.nih.gov/")
    assert "29.0 mL/min" in card["detail"]
    codes = {(r["system"], r["code"]) for r in card["overrideReasons"]}
    assert (REASON_SYSTEM, "benefit_outweighs_risk") in codes
    (stored,) = await rows(owner_engine, CdsHooksCard, CdsHooksCard.id == card["uuid"])
    assert stored.evaluation_id == card["extension"]["clinicos.evaluation_id"]
    assert (stored.client_id, stored.acting_for, stored.reason_key) == (
        ehr.client_id,
        PRACTITIONER,
        "dabigatran_crcl_30_or_less_vte",
    )


async def test_dose_warning_card_suggests_the_labelled_dose_as_an_update(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-suggest")

    response = await post_hook(client, ehr.headers(), apixaban_request(container, "G-018"))

    (card,) = response.json()["cards"]
    assert (card["indicator"], card["extension"]["clinicos.severity"]) == ("warning", "WARN")
    assert card["overrideReasons"]
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    dosage = action["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 2.5
    assert dosage["timing"]["repeat"] == {"frequency": 2, "period": 1, "periodUnit": "d"}
    assert card["selectionBehavior"] == "at-most-one"


async def test_attest_card_has_no_override_reasons_and_spanish_when_asked(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-es")

    response = await post_hook(
        client, ehr.headers(), apixaban_request(container, "G-037"), language="es-BO"
    )

    (card,) = response.json()["cards"]
    assert card["extension"]["clinicos.reason"] == "creatinine_stale"
    assert card["indicator"] == "warning"
    assert "overrideReasons" not in card
    assert "creatinina" in card["summary"].lower()


# -- missing or unreadable data: never silence ---------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ({"weight"}, {"weight_missing"}),
        ({"creatinine"}, {"creatinine_missing"}),
        ({"weight", "creatinine"}, {"weight_missing", "creatinine_missing"}),
        ({"medications", "conditions"}, {"prefetch_incomplete"}),
    ],
    ids=["no-weight", "no-creatinine", "no-measurements", "no-lists"],
)
async def test_missing_prefetch_gives_attest_cards_never_silence(
    container: Container, client: AsyncClient, drop: set[str], expected: set[str]
) -> None:
    ehr = await new_client(container, "hooks-missing")
    body = apixaban_request(container, "G-017")  # a PASS with everything present
    for key in drop:
        del body["prefetch"][key]

    response = await post_hook(client, ehr.headers(), body)

    cards = response.json()["cards"]
    assert reasons_of(cards) == expected
    assert {c["indicator"] for c in cards} == {"warning"}
    assert {c["extension"]["clinicos.severity"] for c in cards} == {"ATTEST"}


async def test_missing_patient_or_unreadable_dose_gives_not_checkable_card(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-unreadable")
    no_patient = apixaban_request(container)
    del no_patient["prefetch"]["patient"]
    tablets = apixaban_request(container)
    draft = tablets["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 1, "unit": "tab"}

    first = (await post_hook(client, ehr.headers(), no_patient)).json()["cards"]
    second = (await post_hook(client, ehr.headers(), tablets)).json()["cards"]

    assert reasons_of(first) == reasons_of(second) == {"order_not_checkable"}
    assert first[0]["extension"]["clinicos.fields"] == ["prefetch.patient"]
    assert second[0]["extension"]["clinicos.fields"] == [
        "dosageInstruction[0].doseAndRate[0].doseQuantity"
    ]
    evaluations = await rows(
        owner_engine, CdsEvaluation, CdsEvaluation.organization_id == ehr.organization_id
    )
    assert evaluations == []


async def test_non_anticoagulant_draft_gives_no_cards_and_records_nothing(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-other-drug")
    draft = medication_request(
        None, dose_mg=500, frequency="BID", indication="nvaf", text="Metformin 500 mg tablet"
    )
    body = hook_request(draft, prefetch_for(load_cases()["G-017"]["patient"], today(container)))

    response = await post_hook(client, ehr.headers(), body)

    assert (response.status_code, response.json()) == (200, {"cards": []})
    assert await rows(owner_engine, CdsHooksCard) == []


async def test_order_select_checks_selected_draft_with_other_drafts_as_medications(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-select")
    case = load_cases()["G-017"]
    apixaban = medication_request("apixaban", dose_mg=5, frequency="BID", indication="nvaf")
    ketoconazole = medication_request(
        None,
        dose_mg=200,
        frequency="QD",
        indication="nvaf",
        request_id="draft-2",
        text="Ketoconazole 200 MG Oral Tablet",
    )
    body = hook_request(
        [apixaban, ketoconazole],
        prefetch_for(case["patient"], today(container)),
        hook="order-select",
        selections=["MedicationRequest/draft-1"],
    )

    response = await post_hook(client, ehr.headers(SELECT), body, path=SELECT)

    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    # 84 y, 75 kg, SCr 1.1: one criterion, base 5 mg; with the inhibitor the dose must halve.
    assert reasons_of(cards) == {"apixaban_inhibitor_dose_reduction_required"}
    assert cards[0]["extension"]["clinicos.draft_order"] == "MedicationRequest/draft-1"


async def test_creatinine_in_umol_l_gives_same_cards_as_mg_dl(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-umol")
    by_mg = apixaban_request(container, "G-006")
    by_umol = copy.deepcopy(by_mg)
    obs = by_umol["prefetch"]["creatinine"]["entry"][0]["resource"]
    obs["code"]["coding"][0]["code"] = "14682-9"
    obs["valueQuantity"] = {"value": 265.2, "unit": "µmol/L"}  # 3.0 mg/dL x 88.4

    first = (await post_hook(client, ehr.headers(), by_mg)).json()["cards"]
    second = (await post_hook(client, ehr.headers(), by_umol)).json()["cards"]

    def summary(cards: list[dict[str, Any]]) -> list[tuple[str, float]]:
        return [
            (c["extension"]["clinicos.reason"], c["extension"]["clinicos.crcl_ml_min"])
            for c in cards
        ]

    assert summary(first) == summary(second)
    assert first


# -- malformed requests: 400 ---------------------------------------------------------------------


def _malformed(container: Container) -> dict[str, tuple[Any, str]]:
    base = apixaban_request(container)
    no_patient_id = copy.deepcopy(base)
    del no_patient_id["context"]["patientId"]
    wrong_hook = copy.deepcopy(base) | {"hook": "patient-view"}
    select_hook = copy.deepcopy(base) | {"hook": "order-select"}
    not_bundle = copy.deepcopy(base)
    not_bundle["context"]["draftOrders"] = {"resourceType": "MedicationRequest"}
    other_patient = copy.deepcopy(base)
    other_patient["prefetch"]["patient"]["id"] = "someone-else"
    bad_prefetch = copy.deepcopy(base)
    bad_prefetch["prefetch"]["weight"] = "72 kg"
    return {
        "missing-patientId": (no_patient_id, "body.context.patientId"),
        "unknown-hook": (wrong_hook, "body.hook"),
        "hook-of-other-service": (select_hook, "body"),
        "draftOrders-not-bundle": (not_bundle, "body.context.draftOrders"),
        "prefetch-other-patient": (other_patient, "body.prefetch.patient.id"),
        "prefetch-not-resource": (bad_prefetch, "body.prefetch.weight"),
        "not-an-object": ([1, 2], "body"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "missing-patientId",
        "unknown-hook",
        "hook-of-other-service",
        "draftOrders-not-bundle",
        "prefetch-other-patient",
        "prefetch-not-resource",
        "not-an-object",
    ],
)
async def test_malformed_request_returns_400_naming_the_field(
    container: Container, client: AsyncClient, name: str
) -> None:
    ehr = await new_client(container, "hooks-400")
    body, field = _malformed(container)[name]

    response = await post_hook(client, ehr.headers(), body)

    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "malformed_cds_hooks_request"
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert PATIENT_ID not in response.text and "someone-else" not in response.text


async def test_body_not_json_returns_400(container: Container, client: AsyncClient) -> None:
    ehr = await new_client(container, "hooks-json")

    response = await client.post(
        SIGN, content=b"{not json", headers=ehr.headers() | {"content-type": "application/json"}
    )

    assert response.status_code == 400


# -- client authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_key", [rsa_key, ec_key, ed25519_key], ids=["RS256", "ES256", "EdDSA"]
)
async def test_client_token_with_registered_asymmetric_key_is_accepted(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine, make_key: Any
) -> None:
    ehr = await new_client(container, "hooks-alg", make_key())

    response = await post_hook(client, ehr.headers(), apixaban_request(container))

    assert response.status_code == 200, response.text
    assert reasons_of(response.json()["cards"]) == {"apixaban_dose_reduction_criteria_met"}
    seen = await rows(owner_engine, CdsHooksJti, CdsHooksJti.client_id == ehr.client_id)
    assert len(seen) == 1


async def test_client_call_records_evaluation_cards_and_service_audit_in_one_transaction(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-one-tx")

    response = await post_hook(client, ehr.headers(), apixaban_request(container))

    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    (evaluation,) = await rows(
        owner_engine, CdsEvaluation, CdsEvaluation.organization_id == ehr.organization_id
    )
    (stored,) = await rows(owner_engine, CdsHooksCard, CdsHooksCard.id == card["uuid"])
    assert (stored.evaluation_id, evaluation.evaluated_by) == (evaluation.id, ehr.client_id)
    (audit,) = await rows(
        owner_engine,
        AuditEvent,
        AuditEvent.organization_id == ehr.organization_id,
        AuditEvent.action == "cds.evaluate",
    )
    assert (audit.actor_type, audit.actor_id, audit.target_id) == (
        "service",
        ehr.client_id,
        evaluation.id,
    )
    # Its governance event too (all-or-nothing: see the failure test below).
    (event,) = await rows(
        owner_engine,
        OutboxMessage,
        OutboxMessage.organization_id == ehr.organization_id,
        OutboxMessage.event_type == "cds.EvaluationRecorded",
    )
    assert event.payload["evaluation_id"] == evaluation.id


async def test_failure_storing_cards_leaves_no_evaluation(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ehr = await new_client(container, "hooks-atomic")
    # Every card gets the same id: the second card of G-006's evaluations violates the card
    # table's primary key when the call's single transaction flushes.
    monkeypatch.setattr(hook_services, "new_id", lambda: "00000000-0000-0000-0000-00000000dup0")
    body = apixaban_request(container, "G-006")
    body["context"]["draftOrders"]["entry"].append(
        copy.deepcopy(body["context"]["draftOrders"]["entry"][0])
    )
    body["context"]["draftOrders"]["entry"][1]["resource"]["id"] = "second-draft"

    response = await post_hook(client, ehr.headers(), body)

    assert response.status_code == 500, response.text
    evaluations = await rows(
        owner_engine, CdsEvaluation, CdsEvaluation.organization_id == ehr.organization_id
    )
    audits = await rows(
        owner_engine,
        AuditEvent,
        AuditEvent.organization_id == ehr.organization_id,
        AuditEvent.action == "cds.evaluate",
    )
    cards = await rows(
        owner_engine, CdsHooksCard, CdsHooksCard.organization_id == ehr.organization_id
    )
    assert (evaluations, audits, cards) == ([], [], [])


def _token_variants(ehr: Client, container: Container) -> dict[str, str]:
    now = container.clock.now()
    key = ehr.key
    other = rsa_key(kid=key.kid)
    return {
        "wrong-aud": client_token(key, issuer=ISSUER, audience=BASE + SELECT, now=now),
        "expired": client_token(
            key, issuer=ISSUER, now=now - timedelta(minutes=10), lifetime=timedelta(minutes=2)
        ),
        "too-long-lived": client_token(key, issuer=ISSUER, now=now, lifetime=timedelta(hours=1)),
        "unknown-issuer": client_token(key, issuer="https://evil.example.org", now=now),
        "wrong-key": client_token(other, issuer=ISSUER, now=now),
        "no-jti": jwt.encode(
            {
                "iss": ISSUER,
                "aud": BASE + SIGN,
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 120,
            },
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid},
        ),
        "HS256": jwt.encode(
            {
                "iss": ISSUER,
                "aud": BASE + SIGN,
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 120,
                "jti": "hs",
            },
            "a-shared-secret-of-32-bytes-long!",
            algorithm="HS256",
            headers={"kid": key.kid},
        ),
        "none": jwt.encode(
            {
                "iss": ISSUER,
                "aud": BASE + SIGN,
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 120,
                "jti": "none",
            },
            None,
            algorithm="none",
        ),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    ("variant", "detail"),
    [
        ("wrong-aud", "aud"),
        ("expired", "expired"),
        ("too-long-lived", "5 minutes"),
        ("unknown-issuer", "not a registered"),
        ("wrong-key", "signature"),
        ("no-jti", "jti"),
        ("HS256", "algorithm"),
        ("none", "algorithm"),
        ("garbage", "signed JWT"),
    ],
)
async def test_client_token_refused_returns_401_and_records_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    variant: str,
    detail: str,
) -> None:
    ehr = await new_client(container, "hooks-401")
    token = _token_variants(ehr, container)[variant]

    response = await post_hook(client, bearer(token), apixaban_request(container))

    assert response.status_code == 401, response.text
    assert response.json()["code"] in ("invalid_client_token", "invalid_token")
    assert detail in response.json()["detail"]
    assert await rows(owner_engine, CdsEvaluation) == []


async def test_client_token_replayed_jti_is_refused(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-replay")
    headers = ehr.headers(jti="once-only")

    first = await post_hook(client, headers, apixaban_request(container))
    again = await post_hook(client, headers, apixaban_request(container))

    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert "replay" in again.json()["detail"]


async def test_removed_client_is_refused(container: Container, client: AsyncClient) -> None:
    ehr = await new_client(container, "hooks-removed")
    from clinicos.cds.hooks.clients import remove_client

    await remove_client(uows=container.uow, organization_id=ehr.organization_id, issuer=ISSUER)
    response = await post_hook(client, ehr.headers(), apixaban_request(container))

    assert response.status_code == 401


async def test_missing_bearer_token_returns_401(container: Container, client: AsyncClient) -> None:
    response = await post_hook(client, {}, apixaban_request(container))

    assert response.status_code == 401


async def test_clinician_access_token_is_accepted_and_admin_is_refused(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await signed_in(container, client, "hooks-console", "clinician", "admin")

    ok_response = await post_hook(client, staff["clinician"].headers, apixaban_request(container))
    refused = await post_hook(client, staff["admin"].headers, apixaban_request(container))

    assert ok_response.status_code == 200, ok_response.text
    assert refused.status_code == 403
    (card,) = ok_response.json()["cards"]
    (stored,) = await rows(owner_engine, CdsHooksCard, CdsHooksCard.id == card["uuid"])
    assert (stored.client_id, stored.created_by) == (None, staff["clinician"].member.user_id)


# -- feedback ------------------------------------------------------------------------------------


async def _cards(client: AsyncClient, ehr: Client, container: Container, case_id: str) -> Any:
    response = await post_hook(client, ehr.headers(), apixaban_request(container, case_id))
    assert response.status_code == 200, response.text
    return response.json()["cards"]


async def _feedback(client: AsyncClient, ehr: Client, body: Any) -> Any:
    return await client.post(SIGN_FEEDBACK, json=body, headers=ehr.headers(SIGN_FEEDBACK))


def _timestamp(container: Container) -> str:
    return container.clock.now().isoformat()


async def _governance(owner_engine: AsyncEngine, organization_id: str) -> dict[str, list[Any]]:
    audits = await rows(
        owner_engine,
        AuditEvent,
        AuditEvent.organization_id == organization_id,
        AuditEvent.action.in_(["cds.hooks_feedback", "cds.override"]),
    )
    events = await rows(
        owner_engine,
        OutboxMessage,
        OutboxMessage.organization_id == organization_id,
        OutboxMessage.event_type.in_(["cds.HookFeedbackRecorded", "cds.OverrideRecorded"]),
    )
    return {"audit": audits, "event": events}


async def test_feedback_accepted_is_one_event_and_one_audit_entry(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-accept")
    (card,) = await _cards(client, ehr, container, "G-018")

    response = await _feedback(
        client,
        ehr,
        {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "accepted",
                    "outcomeTimestamp": _timestamp(container),
                }
            ]
        },
    )

    assert response.status_code == 200, response.text
    gov = await _governance(owner_engine, ehr.organization_id)
    (audit,) = gov["audit"]
    (event,) = gov["event"]
    # A client is audited as a service named by its id (ADR 0015), as its evaluations are.
    assert (audit.action, audit.actor_type, audit.actor_id, audit.target_id) == (
        "cds.hooks_feedback",
        "service",
        ehr.client_id,
        card["uuid"],
    )
    assert event.event_type == "cds.HookFeedbackRecorded"
    assert event.payload["outcome"] == "accepted"
    assert event.payload["reason_key"] == "apixaban_dose_reduction_criteria_met"
    (stored,) = await rows(owner_engine, CdsHooksCard, CdsHooksCard.id == card["uuid"])
    assert stored.feedback_outcome == "accepted"


async def test_feedback_overridden_warn_records_approved_override_with_sealed_comment(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-override-warn")
    (card,) = await _cards(client, ehr, container, "G-018")
    reason = {"system": REASON_SYSTEM, "code": "patient_tolerating"}

    response = await _feedback(
        client,
        ehr,
        {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason, "userComment": SECRET_COMMENT},
                    "outcomeTimestamp": _timestamp(container),
                }
            ]
        },
    )

    assert response.status_code == 200, response.text
    (result,) = response.json()["feedback"]
    assert result["overrideStatus"] == "approved"
    (override,) = await rows(owner_engine, CdsOverride, CdsOverride.id == result["overrideId"])
    assert override.evaluation_id == card["extension"]["clinicos.evaluation_id"]
    assert (override.reason_code, override.created_by) == ("patient_tolerating", ehr.client_id)
    assert override.comment is not None and SECRET_COMMENT not in override.comment
    gov = await _governance(owner_engine, ehr.organization_id)
    assert [a.action for a in gov["audit"]] == ["cds.override"]
    assert [e.event_type for e in gov["event"]] == ["cds.OverrideRecorded"]
    assert SECRET_COMMENT not in response.text
    assert all(SECRET_COMMENT not in json.dumps(e.payload) for e in gov["event"])


async def test_feedback_overridden_block_in_flat_shape_awaits_cosign(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    ehr = await new_client(container, "hooks-override-block")
    (card,) = await _cards(client, ehr, container, "G-006")

    response = await _feedback(
        client,
        ehr,
        {
            "feedback": [
                {
                    "card": f"urn:uuid:{card['uuid']}",
                    "outcome": "overridden",
                    "overrideReason": {
                        "code": "specialist_recommendation",
                        "system": REASON_SYSTEM,
                    },
                }
            ]
        },
    )

    assert response.status_code == 200, response.text
    (result,) = response.json()["feedback"]
    assert result["overrideStatus"] == "pending_cosign"
    (stored,) = await rows(owner_engine, CdsHooksCard, CdsHooksCard.id == card["uuid"])
    assert (stored.feedback_outcome, stored.override_id) == ("overridden", result["overrideId"])


@pytest.mark.parametrize(
    ("override_reason", "field"),
    [
        (None, "body.feedback.0.overrideReason"),
        ({"userComment": "because"}, "body.feedback.0.overrideReason"),
        ({"code": "not_a_reason"}, "body.feedback.0.overrideReason.reason.code"),
        ({"code": "other"}, "body.feedback.0.overrideReason.userComment"),
        (
            {"reason": {"code": "other", "system": "http://elsewhere"}},
            "body.feedback.0.overrideReason.reason.system",
        ),
    ],
    ids=["absent", "no-coding", "unknown-code", "other-without-comment", "foreign-system"],
)
async def test_feedback_overridden_without_valid_reason_returns_422_and_records_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    override_reason: Any,
    field: str,
) -> None:
    ehr = await new_client(container, "hooks-422")
    (card,) = await _cards(client, ehr, container, "G-018")
    entry: dict[str, Any] = {"card": card["uuid"], "outcome": "overridden"}
    if override_reason is not None:
        entry["overrideReason"] = override_reason

    response = await _feedback(client, ehr, {"feedback": [entry]})

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await _governance(owner_engine, ehr.organization_id) == {"audit": [], "event": []}


async def test_feedback_unknown_or_other_clients_card_returns_404(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-404")
    (card,) = await _cards(client, ehr, container, "G-018")
    staff = await signed_in(container, client, "hooks-404-b", "clinician")

    unknown = await _feedback(
        client,
        ehr,
        {"feedback": [{"card": "1b2c3d4e-0000-4000-8000-000000000000", "outcome": "accepted"}]},
    )
    foreign = await client.post(
        SIGN_FEEDBACK,
        json={"feedback": [{"card": card["uuid"], "outcome": "accepted"}]},
        headers=staff["clinician"].headers,
    )

    assert (unknown.status_code, foreign.status_code) == (404, 404)


async def test_feedback_twice_for_a_card_returns_409(
    container: Container, client: AsyncClient
) -> None:
    ehr = await new_client(container, "hooks-409")
    (card,) = await _cards(client, ehr, container, "G-018")
    body = {"feedback": [{"card": card["uuid"], "outcome": "accepted"}]}

    first = await _feedback(client, ehr, body)
    second = await _feedback(client, ehr, body)

    assert (first.status_code, second.status_code) == (200, 409)


async def test_feedback_malformed_returns_400(container: Container, client: AsyncClient) -> None:
    ehr = await new_client(container, "hooks-fb-400")

    response = await _feedback(client, ehr, {"feedback": [{"card": "x", "outcome": "ignored"}]})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body.feedback.0.outcome"


# -- clinicos cds clients ------------------------------------------------------------------------


async def test_clients_cli_add_list_remove_and_refusals(
    container: Container, client: AsyncClient, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    org_id = await new_organization(container, "hooks-cli")
    env = cli_env(container, tmp_path)
    key = ec_key(kid="cli-key")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(key)), encoding="utf-8")
    private_file = tmp_path / "private.json"
    private_file.write_text(
        json.dumps({"keys": [key.public_jwk | {"d": "c2VjcmV0"}]}), encoding="utf-8"
    )
    args = ("cds", "clients")

    add = (*args, "add", "--org", "hooks-cli", "--issuer")

    added = ok(await cli(env, *add, ISSUER, "--jwks-file", str(jwks_file)))
    duplicate = failed(await cli(env, *add, ISSUER, "--jwks-file", str(jwks_file)))
    private = failed(
        await cli(env, *add, "https://other.example.org", "--jwks-file", str(private_file))
    )
    listed = ok(await cli(env, *args, "list", "--org", "hooks-cli"))
    token = client_token(key, issuer=ISSUER, now=container.clock.now())
    served = await post_hook(client, bearer(token), apixaban_request(container))
    removed = ok(await cli(env, *args, "remove", "--org", "hooks-cli", "--issuer", ISSUER))
    after = ok(await cli(env, *args, "list", "--org", "hooks-cli"))

    assert f"registered CDS client {ISSUER}" in added and "cli-key" in added
    assert "already registered" in duplicate
    assert "private key" in private
    assert ISSUER in listed and "cli-key" in listed
    assert served.status_code == 200, served.text
    assert "removed" in removed and "no CDS clients" in after
    assert await rows(owner_engine, CdsHooksClient, CdsHooksClient.organization_id == org_id) == []
    actions = [
        a.action
        for a in await rows(owner_engine, AuditEvent, AuditEvent.organization_id == org_id)
        if a.action.startswith("cds.hooks.client")
    ]
    assert actions == ["cds.hooks.client_add", "cds.hooks.client_remove"]


# -- row-level security (PostgreSQL) -------------------------------------------------------------


async def test_client_rows_as_app_role_show_only_the_named_issuer_and_only_for_reading(
    container: Container,
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    a = await new_client(container, "hooks-rls-a")
    other_org = await new_organization(container, "hooks-rls-b")
    await register(container, other_org, "https://other-ehr.example.org", rsa_key())
    count = text("SELECT count(*) FROM cds_hooks_client")

    async with container.engine.begin() as conn:  # the app role, no tenant, no issuer
        unscoped = (await conn.execute(count)).scalar_one()
    async with container.engine.begin() as conn:
        await conn.execute(
            text("SELECT set_config('app.cds_issuer', :issuer, true)"), {"issuer": ISSUER}
        )
        visible = (await conn.execute(text("SELECT organization_id FROM cds_hooks_client"))).all()
        deleted = await conn.execute(text("DELETE FROM cds_hooks_client"))

    assert unscoped == 0
    assert [row.organization_id for row in visible] == [a.organization_id]
    assert deleted.rowcount == 0
