"""Hypothesis properties of the engine: monotonicity, determinism, units, outcome policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clinicos.cds.engine import UMOL_L_PER_MG_DL
from clinicos.cds.engine.keys import DOSE_SELECTION_KEYS, SEVERITY_RANK
from tests.unit.cds.builders import PACK, order, patient, run

OUTCOME_RANK = {"PASS": 0, "WARN": 1, "ATTEST": 2, "BLOCK": 3}
INTERACTING = sorted(
    set().union(
        *(
            PACK.drug_list(name)
            for name in (
                "strong_pgp_cyp3a4_inhibitors",
                "strong_pgp_cyp3a4_inducers",
                "dabigatran_pgp_inhibitors",
                "edoxaban_vte_pgp_inhibitors",
            )
        )
    )
)
OTHER_MEDS = [*INTERACTING, "enoxaparin", "warfarin", "aspirin", "metformin"]
# The labelled full (unreduced) dose per drug and indication. Edoxaban NVAF is left out on
# purpose: CrCl >95 is the one rule where better kidney function is the hazard (Savaysa BW A).
FULL_DOSE_ORDERS = [
    order("apixaban", 5, "BID", "nvaf"),
    order("apixaban", 10, "BID", "vte_treatment"),
    order("apixaban", "2.5", "BID", "vte_prophylaxis"),
    order("rivaroxaban", 20, "QD", "nvaf"),
    order("rivaroxaban", 15, "BID", "vte_treatment"),
    order("rivaroxaban", 10, "QD", "vte_prophylaxis"),
    order("dabigatran", 150, "BID", "nvaf"),
    order("dabigatran", 150, "BID", "vte_treatment"),
    order("dabigatran", 220, "QD", "vte_prophylaxis"),
    order("edoxaban", 60, "QD", "vte_treatment"),
    order("warfarin", 5, "QD", "nvaf"),
]
ANY_ORDERS = [
    *FULL_DOSE_ORDERS,
    order("apixaban", "2.5", "BID", "nvaf"),
    order("apixaban", "2.5", "BID", "vte_treatment"),
    order("rivaroxaban", 15, "QD", "nvaf"),
    order("dabigatran", 75, "BID", "nvaf"),
    order("dabigatran", 110, "BID", "nvaf"),
    order("edoxaban", 60, "QD", "nvaf"),
    order("edoxaban", 30, "QD", "nvaf"),
    order("edoxaban", 30, "QD", "vte_prophylaxis"),
]

decimals_1 = st.integers(min_value=300, max_value=1800).map(lambda n: Decimal(n) / 10)
creatinine = st.integers(min_value=30, max_value=900).map(lambda n: Decimal(n) / 100)


@st.composite
def patients(draw: st.DrawFn, meds: list[str] | None = None) -> dict[str, Any]:
    return patient(
        age_years=draw(st.integers(min_value=18, max_value=100)),
        sex=draw(st.sampled_from(["male", "female"])),
        weight_kg=draw(st.none() | decimals_1),
        serum_creatinine_mg_dl=draw(st.none() | creatinine),
        creatinine_measured_days_ago=draw(st.none() | st.integers(0, 200)),
        weight_measured_days_ago=draw(st.none() | st.integers(0, 200)),
        active_bleeding=draw(st.booleans()),
        mechanical_valve=draw(st.booleans()),
        pregnant=draw(st.booleans()),
        other_medications=draw(st.lists(st.sampled_from(OTHER_MEDS), max_size=3))
        if meds is None
        else meds,
    )


@settings(max_examples=300)
@given(
    facts=patients(),
    the_order=st.sampled_from(FULL_DOSE_ORDERS),
    factor=st.integers(min_value=101, max_value=400),
)
def test_engine_higher_creatinine_never_makes_full_dose_outcome_safer(
    facts: dict[str, Any], the_order: dict[str, Any], factor: int
) -> None:
    worse = dict(facts)
    if facts["serum_creatinine_mg_dl"] is not None:
        worse["serum_creatinine_mg_dl"] = facts["serum_creatinine_mg_dl"] * factor / 100

    before, after = run(facts, the_order), run(worse, the_order)

    assert OUTCOME_RANK[after.outcome] >= OUTCOME_RANK[before.outcome]


@settings(max_examples=300)
@given(facts=patients(), the_order=st.sampled_from(ANY_ORDERS), extra=st.sampled_from(INTERACTING))
def test_engine_adding_interacting_drug_never_removes_a_reason(
    facts: dict[str, Any], the_order: dict[str, Any], extra: str
) -> None:
    more = dict(facts, other_medications=[*facts["other_medications"], extra])

    before, after = run(facts, the_order), run(more, the_order)

    # Dose-selection reasons (and dose_not_labeled, A12) are re-decided with the inhibitor's
    # halved or avoided dose; every other reason must survive.
    redecided = DOSE_SELECTION_KEYS | {"dose_not_labeled_for_indication"}
    assert before.reason_keys - redecided <= after.reason_keys
    if the_order in FULL_DOSE_ORDERS:
        assert OUTCOME_RANK[after.outcome] >= OUTCOME_RANK[before.outcome]


@given(facts=patients(), the_order=st.sampled_from(ANY_ORDERS))
def test_engine_same_input_gives_same_evaluation_and_hash(
    facts: dict[str, Any], the_order: dict[str, Any]
) -> None:
    first, second = run(facts, the_order), run(dict(facts), dict(the_order))

    assert first == second
    assert len(first.input_hash) == 64


@settings(max_examples=300)
@given(facts=patients(), the_order=st.sampled_from(ANY_ORDERS), scr=creatinine)
def test_engine_umol_and_equivalent_mg_dl_give_same_result(
    facts: dict[str, Any], the_order: dict[str, Any], scr: Decimal
) -> None:
    in_mg = dict(facts, serum_creatinine_mg_dl=scr)
    in_umol = dict(
        facts, serum_creatinine_mg_dl=None, serum_creatinine_umol_l=scr * UMOL_L_PER_MG_DL
    )

    a, b = run(in_mg, the_order), run(in_umol, the_order)

    assert (a.outcome, a.crcl_ml_min, a.reason_keys) == (b.outcome, b.crcl_ml_min, b.reason_keys)


@settings(max_examples=300)
@given(facts=patients(), the_order=st.sampled_from(ANY_ORDERS))
def test_engine_outcome_is_max_severity_and_info_never_raises(
    facts: dict[str, Any], the_order: dict[str, Any]
) -> None:
    result = run(facts, the_order)

    raising = [r.severity for r in result.reasons if r.severity != "INFO"]
    expected = max(raising, key=SEVERITY_RANK.__getitem__) if raising else "PASS"
    assert result.outcome == expected
    for reason in result.reasons:
        assert reason.severity == PACK.rules[reason.key].severity
