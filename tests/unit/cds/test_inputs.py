"""Input validation, age and date handling, CrCl arithmetic and the shape of an Evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from clinicos.cds import Facts, Order, evaluate
from clinicos.cds.engine import cockcroft_gault
from clinicos.cds.engine.renal import Creatinine
from tests.unit.cds.builders import AS_OF, PACK, facts_from_case, order, patient, run

APIX_NVAF = order("apixaban", 5, "BID", "nvaf")


def facts(**changes: Any) -> dict[str, Any]:
    """Default engine facts (measured 7 days ago) with ``changes`` applied as given."""
    return {**facts_from_case(patient()), **changes}


def test_cockcroft_gault_female_applies_0_85() -> None:
    crcl = cockcroft_gault(
        age_years=85,
        weight_kg=Decimal(58),
        female=True,
        creatinine=Creatinine(Decimal("0.9"), "mg/dL"),
    )

    assert crcl == Decimal("41.8")  # G-018


def test_cockcroft_gault_no_floor_on_low_creatinine() -> None:
    crcl = cockcroft_gault(
        age_years=60,
        weight_kg=Decimal(80),
        female=False,
        creatinine=Creatinine(Decimal("0.4"), "mg/dL"),
    )

    assert crcl == Decimal("222.2")


def test_creatinine_umol_converts_to_mg_dl_by_88_4() -> None:
    assert Creatinine(Decimal("132.6"), "umol/L").mg_dl == Decimal("1.5")
    assert Creatinine(Decimal("1.2"), "mg/dL").mg_dl == Decimal("1.2")


def test_evaluate_birth_date_gives_whole_years_on_as_of_date() -> None:
    on_birthday = facts(age_years=None, birth_date=date(1946, 11, 22))
    day_before = facts(age_years=None, birth_date=date(1946, 11, 23))

    assert evaluate(on_birthday, APIX_NVAF, PACK, AS_OF).crcl_ml_min == Decimal("66.7")
    assert evaluate(day_before, APIX_NVAF, PACK, AS_OF).crcl_ml_min == Decimal("67.8")


def test_evaluate_birth_date_80th_birthday_counts_as_criterion() -> None:
    eighty = facts(age_years=None, birth_date=date(1946, 11, 22), weight_kg=Decimal(60))
    seventy_nine = facts(age_years=None, birth_date=date(1946, 11, 23), weight_kg=Decimal(60))

    assert evaluate(eighty, APIX_NVAF, PACK, AS_OF).outcome == "WARN"
    assert evaluate(seventy_nine, APIX_NVAF, PACK, AS_OF).outcome == "PASS"


def test_evaluate_measured_datetime_counts_days_in_utc() -> None:
    # 2026-08-23 23:30 at UTC-5 is 2026-08-24 UTC: 90 days before 2026-11-22, so fresh.
    late_evening = facts(creatinine_measured_at="2026-08-23T23:30:00-05:00")
    naive_day = facts(creatinine_measured_at=datetime(2026, 8, 23, 12, tzinfo=UTC))

    assert evaluate(late_evening, APIX_NVAF, PACK, AS_OF).outcome == "PASS"
    assert evaluate(naive_day, APIX_NVAF, PACK, AS_OF).reason_keys == {"creatinine_stale"}


def test_evaluate_as_of_in_other_zone_uses_its_utc_date() -> None:
    as_of = datetime.fromisoformat("2026-11-21T20:00:00-05:00")  # 2026-11-22 01:00 UTC

    result = evaluate(facts(creatinine_measured_at=date(2026, 8, 24)), APIX_NVAF, PACK, as_of)

    assert result.outcome == "PASS"
    assert result.as_of == datetime(2026, 11, 22, 1, tzinfo=UTC)


def test_evaluate_accepts_models_and_normalizes_names() -> None:
    the_facts = Facts.model_validate(facts(other_medications=["  KetoConazole "]))
    the_order = Order(drug="Apixaban", dose_mg=Decimal(5), frequency="bid", indication="NVAF")  # type: ignore[arg-type]

    result = evaluate(the_facts, the_order, PACK, AS_OF)

    assert result.reason_keys == {"apixaban_inhibitor_dose_reduction_required"}


BAD_INPUTS = [
    pytest.param({"birth_date": date(1960, 1, 1)}, "exactly one", id="age_and_birth_date"),
    pytest.param({"age_years": None}, "exactly one", id="no_age"),
    pytest.param({"age_years": 131}, "age_years", id="age_over_130"),
    pytest.param({"age_years": -1}, "age_years", id="negative_age"),
    pytest.param({"weight_kg": Decimal(0)}, "weight_kg", id="zero_weight"),
    pytest.param({"weight_kg": Decimal(501)}, "weight_kg", id="weight_over_500"),
    pytest.param(
        {"serum_creatinine_mg_dl": Decimal(0)}, "serum_creatinine_mg_dl", id="zero_creatinine"
    ),
    pytest.param({"serum_creatinine_umol_l": Decimal(88)}, "one unit", id="two_creatinine_units"),
    pytest.param(
        {"creatinine_measured_at": datetime(2026, 11, 1)}, "timezone-aware", id="naive_datetime"
    ),
    pytest.param({"sex": "unknown"}, "sex", id="unknown_sex"),
    pytest.param({"height_cm": 170}, "Extra inputs", id="unknown_fact"),
    pytest.param({"other_medications": [""]}, "other_medications", id="empty_medication"),
    pytest.param({"other_medications": [5]}, "other_medications", id="non_text_medication"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_INPUTS)
def test_evaluate_impossible_facts_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        evaluate(facts(**changes), APIX_NVAF, PACK, AS_OF)


def test_evaluate_birth_date_after_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="birth_date"):
        evaluate(facts(age_years=None, birth_date=date(2027, 1, 1)), APIX_NVAF, PACK, AS_OF)


@pytest.mark.parametrize(
    ("field", "value"),
    [("drug", "heparin"), ("frequency", "weekly"), ("indication", "stroke"), ("dose_mg", 0)],
)
def test_evaluate_unknown_order_values_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        evaluate(facts(), {**APIX_NVAF, field: value}, PACK, AS_OF)


def test_evaluate_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(facts(), APIX_NVAF, PACK, datetime(2026, 11, 22))


def test_evaluation_reason_carries_messages_source_policy_and_suggestion() -> None:
    result = run(
        patient(
            age_years=85, weight_kg=Decimal(58), sex="female", serum_creatinine_mg_dl=Decimal("0.9")
        ),
        APIX_NVAF,
    )

    (reason,) = result.reasons
    assert reason.key == "apixaban_dose_reduction_criteria_met"
    assert {reason.message(lang) for lang in ("en", "es", "pt")} == set(reason.messages.values())
    assert "Eliquis".upper() in reason.source and reason.policy == "label"
    assert reason.suggestion is not None
    assert (reason.suggestion.dose_mg, reason.suggestion.frequency) == (Decimal("2.5"), "BID")
    assert reason.suggestion.text["en"] == "Change the order to apixaban 2.5 mg BID."
    assert (result.rule_pack.id, result.rule_pack.version) == ("doac", "1.0.0")


def test_evaluation_reasons_are_most_severe_first_and_local_policy_flagged() -> None:
    result = run(
        patient(
            sex="female",
            age_years=30,
            pregnant=True,
            active_bleeding=True,
            other_medications=["heparin"],
            weight_kg=None,
        ),
        APIX_NVAF,
    )

    assert [r.severity for r in result.reasons] == ["BLOCK", "ATTEST", "WARN", "WARN"]
    assert {r.key: r.policy for r in result.reasons}["pregnancy_doac_review"] == "local"
    assert {r.key: r.policy for r in result.reasons}["weight_missing"] == "local"


def test_evaluation_hash_changes_with_inputs_but_not_with_equal_decimals() -> None:
    base = run(patient(), APIX_NVAF)
    same_value = run(patient(weight_kg=Decimal("80.0")), APIX_NVAF)
    other = run(patient(weight_kg=Decimal("80.1")), APIX_NVAF)

    assert base.input_hash == same_value.input_hash
    assert base.input_hash != other.input_hash
