"""Named clinical scenarios for rules shared by every drug: contraindications, gates, floor."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.unit.cds.builders import order, patient, run, weight_for_crcl

APIX_NVAF = order("apixaban", 5, "BID", "nvaf")
WARFARIN_NVAF = order("warfarin", 5, "QD", "nvaf")
# SCr 5.0 at age 60: weight 67.5 kg gives CrCl 15.0 and 67.05 kg gives 14.9 (G-001).
AT_15 = {"weight_kg": weight_for_crcl("15.0", scr="5.0"), "serum_creatinine_mg_dl": Decimal(5)}
AT_14_9 = {"weight_kg": weight_for_crcl("14.9", scr="5.0"), "serum_creatinine_mg_dl": Decimal(5)}


def case(
    name: str, facts: dict[str, Any], the_order: dict[str, Any], outcome: str, *keys: str
) -> Any:
    return pytest.param(facts, the_order, outcome, set(keys), id=name)


CONTRAINDICATIONS = [
    case(
        "warfarin_active_bleeding_blocks",
        patient(active_bleeding=True),
        WARFARIN_NVAF,
        "BLOCK",
        "active_bleeding",
    ),
    case(
        "apixaban_active_bleeding_blocks",
        patient(active_bleeding=True),
        APIX_NVAF,
        "BLOCK",
        "active_bleeding",
    ),
    case(
        "apixaban_mechanical_valve_blocks",
        patient(mechanical_valve=True),
        APIX_NVAF,
        "BLOCK",
        "mechanical_heart_valve",
    ),
    case(
        "dabigatran_mechanical_valve_blocks",
        patient(mechanical_valve=True),
        order("dabigatran", 150, "BID", "nvaf"),
        "BLOCK",
        "mechanical_heart_valve",
    ),
    case("warfarin_mechanical_valve_passes", patient(mechanical_valve=True), WARFARIN_NVAF, "PASS"),
    case(
        "warfarin_pregnant_no_valve_blocks",
        patient(sex="female", age_years=30, pregnant=True),
        WARFARIN_NVAF,
        "BLOCK",
        "warfarin_pregnancy_contraindicated",
    ),
    case(
        "warfarin_pregnant_with_valve_passes",
        patient(sex="female", age_years=30, pregnant=True, mechanical_valve=True),
        WARFARIN_NVAF,
        "PASS",
    ),
    case(
        "apixaban_pregnant_warns_review",
        patient(sex="female", age_years=30, pregnant=True),
        APIX_NVAF,
        "WARN",
        "pregnancy_doac_review",
    ),
    case(
        "apixaban_pregnant_with_valve_blocks_both",
        patient(sex="female", age_years=30, pregnant=True, mechanical_valve=True),
        APIX_NVAF,
        "BLOCK",
        "pregnancy_doac_review",
        "mechanical_heart_valve",
    ),
    case(
        "apixaban_with_enoxaparin_duplicate",
        patient(other_medications=["enoxaparin"]),
        APIX_NVAF,
        "WARN",
        "duplicate_anticoagulant",
    ),
    case(
        "apixaban_with_heparin_duplicate",
        patient(other_medications=["Heparin"]),
        APIX_NVAF,
        "WARN",
        "duplicate_anticoagulant",
    ),
    case(
        "apixaban_renewal_not_duplicate", patient(other_medications=["apixaban"]), APIX_NVAF, "PASS"
    ),
    case(
        "warfarin_with_rivaroxaban_duplicate",
        patient(other_medications=["rivaroxaban"]),
        WARFARIN_NVAF,
        "WARN",
        "duplicate_anticoagulant",
    ),
    case(
        "apixaban_with_aspirin_not_encoded",
        patient(other_medications=["aspirin"]),
        APIX_NVAF,
        "PASS",
    ),
]

GATES = [
    case("creatinine_90_days_fresh", patient(creatinine_measured_days_ago=90), APIX_NVAF, "PASS"),
    case(
        "creatinine_91_days_stale",
        patient(creatinine_measured_days_ago=91),
        APIX_NVAF,
        "ATTEST",
        "creatinine_stale",
    ),
    case(
        "creatinine_undated_stale",
        patient(creatinine_measured_days_ago=None),
        APIX_NVAF,
        "ATTEST",
        "creatinine_stale",
    ),
    case(
        "creatinine_missing",
        patient(serum_creatinine_mg_dl=None, creatinine_measured_days_ago=None),
        APIX_NVAF,
        "ATTEST",
        "creatinine_missing",
    ),
    case(
        "creatinine_missing_with_date",
        patient(serum_creatinine_mg_dl=None),
        APIX_NVAF,
        "ATTEST",
        "creatinine_missing",
    ),
    case("weight_180_days_fresh", patient(weight_measured_days_ago=180), APIX_NVAF, "PASS"),
    case(
        "weight_181_days_stale",
        patient(weight_measured_days_ago=181),
        APIX_NVAF,
        "ATTEST",
        "weight_stale",
    ),
    case(
        "weight_undated_stale",
        patient(weight_measured_days_ago=None),
        APIX_NVAF,
        "ATTEST",
        "weight_stale",
    ),
    case(
        "weight_missing",
        patient(weight_kg=None, weight_measured_days_ago=None),
        APIX_NVAF,
        "ATTEST",
        "weight_missing",
    ),
    case(
        "both_missing",
        patient(weight_kg=None, serum_creatinine_mg_dl=None),
        APIX_NVAF,
        "ATTEST",
        "weight_missing",
        "creatinine_missing",
    ),
    case(
        "both_stale",
        patient(weight_measured_days_ago=400, creatinine_measured_days_ago=400),
        APIX_NVAF,
        "ATTEST",
        "weight_stale",
        "creatinine_stale",
    ),
    case(
        "future_measurement_counts_fresh",
        patient(creatinine_measured_days_ago=-1),
        APIX_NVAF,
        "PASS",
    ),
    case(
        "warfarin_missing_data_not_gated",
        patient(weight_kg=None, serum_creatinine_mg_dl=None),
        WARFARIN_NVAF,
        "PASS",
    ),
    case(
        "warfarin_stale_data_not_gated",
        patient(creatinine_measured_days_ago=400),
        WARFARIN_NVAF,
        "PASS",
    ),
    case(
        "bleeding_with_stale_creatinine_blocks_and_attests",
        patient(active_bleeding=True, creatinine_measured_days_ago=120),
        APIX_NVAF,
        "BLOCK",
        "active_bleeding",
        "creatinine_stale",
    ),
    case(
        "gate_keeps_pregnancy_rule",
        patient(sex="female", age_years=30, pregnant=True, weight_measured_days_ago=200),
        APIX_NVAF,
        "ATTEST",
        "weight_stale",
        "pregnancy_doac_review",
    ),
    case(
        "gate_keeps_duplicate_rule",
        patient(other_medications=["warfarin"], weight_kg=None),
        APIX_NVAF,
        "ATTEST",
        "weight_missing",
        "duplicate_anticoagulant",
    ),
    case(
        "gate_keeps_inducer_rule",
        patient(other_medications=["rifampin"], weight_kg=None),
        APIX_NVAF,
        "BLOCK",
        "weight_missing",
        "strong_pgp_cyp3a4_inducer",
    ),
    case(
        "gate_skips_crcl_floor",
        patient(**AT_14_9, creatinine_measured_days_ago=91),
        APIX_NVAF,
        "ATTEST",
        "creatinine_stale",
    ),
    case(
        "gate_keeps_dose_not_labeled",
        patient(weight_kg=None),
        order("apixaban", 2.5, "BID", "vte_treatment"),
        "ATTEST",
        "weight_missing",
        "dose_not_labeled_for_indication",
    ),
    case(
        "gate_keeps_indication_not_labeled",
        patient(weight_kg=None),
        order("edoxaban", 30, "QD", "vte_prophylaxis"),
        "ATTEST",
        "weight_missing",
        "indication_not_labeled_us",
    ),
    case(
        "gate_keeps_beers",
        patient(age_years=70, weight_kg=None),
        order("rivaroxaban", 20, "QD", "nvaf"),
        "ATTEST",
        "weight_missing",
        "beers_rivaroxaban_long_term",
    ),
    case(
        "gate_keeps_hip_only_info",
        patient(weight_kg=None),
        order("dabigatran", 220, "QD", "vte_prophylaxis"),
        "ATTEST",
        "weight_missing",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "gate_skips_rivaroxaban_15_29",
        patient(
            weight_kg=weight_for_crcl("20.0", scr="2.5"),
            serum_creatinine_mg_dl=Decimal("2.5"),
            creatinine_measured_days_ago=91,
        ),
        order("rivaroxaban", 15, "QD", "nvaf"),
        "ATTEST",
        "creatinine_stale",
    ),
    case(
        "gate_skips_dabigatran_vte_renal",
        patient(
            weight_kg=weight_for_crcl("20.0", scr="2.5"),
            serum_creatinine_mg_dl=Decimal("2.5"),
            weight_measured_days_ago=181,
        ),
        order("dabigatran", 150, "BID", "vte_treatment"),
        "ATTEST",
        "weight_stale",
    ),
    case(
        "gate_skips_edoxaban_above_95",
        patient(weight_kg=Decimal(140), creatinine_measured_days_ago=91),
        order("edoxaban", 60, "QD", "nvaf"),
        "ATTEST",
        "creatinine_stale",
    ),
]

CRCL_FLOOR = [
    case("apixaban_crcl_14_9_blocks", patient(**AT_14_9), APIX_NVAF, "BLOCK", "crcl_below_15"),
    case("apixaban_crcl_15_0_passes", patient(**AT_15), APIX_NVAF, "PASS"),
    case(
        "edoxaban_crcl_14_9_blocks",
        patient(**AT_14_9),
        order("edoxaban", 30, "QD", "nvaf"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "edoxaban_crcl_15_0_passes", patient(**AT_15), order("edoxaban", 30, "QD", "nvaf"), "PASS"
    ),
    case(
        "dabigatran_nvaf_crcl_14_9_blocks",
        patient(**AT_14_9),
        order("dabigatran", 75, "BID", "nvaf"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "dabigatran_nvaf_crcl_15_0_passes",
        patient(**AT_15),
        order("dabigatran", 75, "BID", "nvaf"),
        "PASS",
    ),
    case(
        "rivaroxaban_nvaf_crcl_14_9_blocks_without_band",
        patient(**AT_14_9),
        order("rivaroxaban", 20, "QD", "nvaf"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "rivaroxaban_vte_crcl_15_0_limited_data",
        patient(**AT_15),
        order("rivaroxaban", 15, "BID", "vte_treatment"),
        "WARN",
        "rivaroxaban_crcl_15_29_limited_data",
    ),
    case("warfarin_crcl_14_9_not_blocked", patient(**AT_14_9), WARFARIN_NVAF, "PASS"),
    case(
        "dabigatran_vte_crcl_14_9_blocks_twice",
        patient(**AT_14_9),
        order("dabigatran", 150, "BID", "vte_treatment"),
        "BLOCK",
        "crcl_below_15",
        "dabigatran_crcl_30_or_less_vte",
    ),
    case(
        "dabigatran_nvaf_crcl_14_9_pgp_avoid_still_fires",
        patient(**AT_14_9, other_medications=["amiodarone"]),
        order("dabigatran", 150, "BID", "nvaf"),
        "BLOCK",
        "crcl_below_15",
        "dabigatran_pgp_inhibitor_renal_avoid",
    ),
    case(
        "edoxaban_crcl_14_9_skips_dose_band",
        patient(**AT_14_9),
        order("edoxaban", 60, "QD", "nvaf"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "rivaroxaban_crcl_14_9_keeps_dose_not_labeled",
        patient(**AT_14_9),
        order("rivaroxaban", 10, "QD", "nvaf"),
        "BLOCK",
        "crcl_below_15",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_crcl_below_15_skips_criteria_met",
        patient(age_years=85, weight_kg=Decimal(50), serum_creatinine_mg_dl=Decimal(3)),
        APIX_NVAF,
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "apixaban_crcl_below_15_base_2_5_inhibitor_still_blocks",
        patient(
            age_years=85,
            weight_kg=Decimal(50),
            serum_creatinine_mg_dl=Decimal(3),
            other_medications=["ketoconazole"],
        ),
        order("apixaban", 2.5, "BID", "nvaf"),
        "BLOCK",
        "crcl_below_15",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "apixaban_crcl_below_15_skips_inhibitor_required",
        patient(**AT_14_9, other_medications=["ketoconazole"]),
        APIX_NVAF,
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "apixaban_vte_crcl_below_15_skips_halving_info",
        patient(**AT_14_9, other_medications=["itraconazole"]),
        order("apixaban", 2.5, "BID", "vte_treatment"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "apixaban_vte_crcl_below_15_skips_halving_warn",
        patient(**AT_14_9, other_medications=["itraconazole"]),
        order("apixaban", 10, "BID", "vte_treatment"),
        "BLOCK",
        "crcl_below_15",
    ),
    case(
        "dabigatran_nvaf_crcl_below_15_skips_band",
        patient(**AT_14_9),
        order("dabigatran", 150, "BID", "nvaf"),
        "BLOCK",
        "crcl_below_15",
    ),
]

BEERS = [
    case(
        "warfarin_age_65_nvaf_beers",
        patient(age_years=65),
        WARFARIN_NVAF,
        "WARN",
        "beers_warfarin_initiation",
    ),
    case("warfarin_age_64_nvaf_no_beers", patient(age_years=64), WARFARIN_NVAF, "PASS"),
    case(
        "warfarin_age_70_vte_treatment_beers",
        patient(age_years=70),
        order("warfarin", 5, "QD", "vte_treatment"),
        "WARN",
        "beers_warfarin_initiation",
    ),
    case(
        "warfarin_age_80_prophylaxis_no_beers",
        patient(age_years=80),
        order("warfarin", 5, "QD", "vte_prophylaxis"),
        "PASS",
    ),
    case("warfarin_any_dose_not_checked", patient(), order("warfarin", 17, "BID", "nvaf"), "PASS"),
    case(
        "apixaban_age_90_no_beers_entry",
        patient(age_years=90),
        order("apixaban", 10, "BID", "vte_treatment"),
        "PASS",
    ),
    case(
        "edoxaban_age_70_no_beers_entry",
        patient(age_years=70),
        order("edoxaban", 60, "QD", "nvaf"),
        "PASS",
    ),
]


@pytest.mark.parametrize(
    ("facts", "the_order", "outcome", "keys"), CONTRAINDICATIONS + GATES + CRCL_FLOOR + BEERS
)
def test_engine_general_scenario_gives_expected_reasons(
    facts: dict[str, Any], the_order: dict[str, Any], outcome: str, keys: set[str]
) -> None:
    result = run(facts, the_order)

    assert result.reason_keys == keys
    assert result.outcome == outcome


def test_engine_stale_inputs_still_report_crcl() -> None:
    result = run(patient(age_years=70, creatinine_measured_days_ago=120), APIX_NVAF)

    assert result.crcl_ml_min == Decimal("77.8")


def test_engine_missing_weight_reports_no_crcl() -> None:
    assert run(patient(weight_kg=None), APIX_NVAF).crcl_ml_min is None


def test_engine_warfarin_reports_crcl_without_using_it() -> None:
    assert run(patient(**AT_14_9), WARFARIN_NVAF).crcl_ml_min == Decimal("14.9")
