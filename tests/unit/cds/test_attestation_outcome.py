"""The outcome policy with attestations (issue 5 point 4): a pure function of the engine's
reasons and the attested facts. Scenarios are real engine evaluations (the gate fires when the
data is missing or stale, doac-rules.md 0.4) plus one hand-built reason for the defensive
branch; the order fingerprint that scopes an attestation to one order is checked alongside."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clinicos.cds.engine import (
    GATE_FACTS,
    AttestableFact,
    Order,
    Reason,
    order_fingerprint,
    outcome_with_attestations,
)
from tests.unit.cds.builders import order, patient, run

APIXABAN_NVAF = order("apixaban", 5, "BID", "nvaf")
NO_SCR: dict[str, Any] = {"serum_creatinine_mg_dl": None, "creatinine_measured_days_ago": None}
NO_WEIGHT: dict[str, Any] = {"weight_kg": None, "weight_measured_days_ago": None}
CREATININE = "att-creatinine"
WEIGHT = "att-weight"


@pytest.mark.parametrize(
    ("case_patient", "case_order", "attested", "outcome", "covered", "open_keys"),
    [
        pytest.param(
            patient(**NO_SCR),
            APIXABAN_NVAF,
            {"serum_creatinine": CREATININE},
            "PASS",
            {"creatinine_missing": CREATININE},
            (),
            id="creatinine-missing-attested-nothing-else-passes",
        ),
        pytest.param(
            patient(creatinine_measured_days_ago=91),
            APIXABAN_NVAF,
            {"serum_creatinine": CREATININE},
            "PASS",
            {"creatinine_stale": CREATININE},
            (),
            id="creatinine-stale-attested-passes",
        ),
        pytest.param(
            patient(**NO_SCR, **NO_WEIGHT),
            APIXABAN_NVAF,
            {"weight": WEIGHT},
            "ATTEST",
            {"weight_missing": WEIGHT},
            ("creatinine_missing",),
            id="both-missing-only-weight-attested-stays-attest",
        ),
        pytest.param(
            patient(**NO_SCR, **NO_WEIGHT),
            APIXABAN_NVAF,
            {"weight": WEIGHT, "serum_creatinine": CREATININE},
            "PASS",
            {"weight_missing": WEIGHT, "creatinine_missing": CREATININE},
            (),
            id="both-missing-both-attested-passes",
        ),
        pytest.param(
            patient(**NO_SCR),
            APIXABAN_NVAF,
            {},
            "ATTEST",
            {},
            ("creatinine_missing",),
            id="no-attestation-stays-attest",
        ),
        pytest.param(
            patient(**NO_SCR, other_medications=["warfarin"]),
            APIXABAN_NVAF,
            {"serum_creatinine": CREATININE},
            "WARN",
            {"creatinine_missing": CREATININE},
            (),
            id="attested-with-duplicate-anticoagulant-is-warn",
        ),
        pytest.param(
            patient(**NO_SCR, active_bleeding=True),
            APIXABAN_NVAF,
            {"serum_creatinine": CREATININE},
            "BLOCK",
            {"creatinine_missing": CREATININE},
            (),
            id="attested-with-active-bleeding-is-block",
        ),
        pytest.param(
            patient(**NO_SCR, active_bleeding=True),
            APIXABAN_NVAF,
            {},
            "BLOCK",
            {},
            ("creatinine_missing",),
            id="block-with-open-gate-stays-block",
        ),
        pytest.param(
            patient(**NO_SCR, age_years=70),
            order("dabigatran", 150, "BID", "nvaf"),
            {"serum_creatinine": CREATININE},
            "PASS",
            {"creatinine_missing": CREATININE},
            (),
            id="attested-with-info-only-passes",
        ),
        pytest.param(
            patient(),
            APIXABAN_NVAF,
            {"serum_creatinine": CREATININE, "weight": WEIGHT},
            "PASS",
            {},
            (),
            id="fresh-data-attestations-unused",
        ),
    ],
)
def test_outcome_with_attestations_scenarios(
    case_patient: dict[str, Any],
    case_order: dict[str, Any],
    attested: dict[AttestableFact, str],
    outcome: str,
    covered: dict[str, str],
    open_keys: tuple[str, ...],
) -> None:
    evaluation = run(case_patient, case_order)

    result = outcome_with_attestations(evaluation.reasons, attested)

    assert result.outcome == outcome
    assert dict(result.attested) == covered
    assert result.unattested == open_keys
    assert result.proceeds == (bool(covered) and not open_keys)
    assert result.attestation_ids == tuple(sorted(set(covered.values())))


def test_outcome_without_attestations_equals_the_engine_outcome_for_every_gate_case() -> None:
    for changes in (NO_SCR, NO_WEIGHT, {"weight_measured_days_ago": 181}, {}):
        evaluation = run(patient(**changes), APIXABAN_NVAF)

        assert outcome_with_attestations(evaluation.reasons, {}).outcome == evaluation.outcome


def test_every_gate_key_concerns_one_attestable_fact() -> None:
    assert GATE_FACTS == {
        "creatinine_missing": "serum_creatinine",
        "creatinine_stale": "serum_creatinine",
        "weight_missing": "weight",
        "weight_stale": "weight",
    }


def test_attest_reason_without_a_gate_fact_is_never_attested() -> None:
    # Packs reserve ATTEST for the four gate keys (pack.py); should another key ever carry
    # ATTEST, no attestation can lift it.
    unknown = Reason(key="unknown_gate", severity="ATTEST", messages={}, source="", policy="local")

    result = outcome_with_attestations(
        (unknown,), {"serum_creatinine": CREATININE, "weight": WEIGHT}
    )

    assert (result.outcome, dict(result.attested), result.unattested) == (
        "ATTEST",
        {},
        ("unknown_gate",),
    )


def test_order_fingerprint_equal_for_equal_orders_and_differs_for_any_part() -> None:
    base = Order.model_validate(APIXABAN_NVAF)
    same = Order.model_validate(APIXABAN_NVAF | {"dose_mg": Decimal("5.0")})

    assert order_fingerprint(base) == order_fingerprint(same)
    for change in (
        {"dose_mg": Decimal("2.5")},
        {"frequency": "QD"},
        {"indication": "vte_treatment"},
        {"drug": "rivaroxaban"},
    ):
        assert order_fingerprint(Order.model_validate(APIXABAN_NVAF | change)) != (
            order_fingerprint(base)
        )
