"""Named clinical scenarios per drug, on both sides of every threshold in doac-rules.md."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.unit.cds.builders import order, patient, run, weight_for_crcl


def at(crcl: str, scr: str = "2.5", **changes: Any) -> dict[str, Any]:
    """A 60-year-old man whose weight gives exactly ``crcl`` (before rounding) at ``scr``."""
    weight = weight_for_crcl(crcl, scr=scr)
    return patient(weight_kg=weight, serum_creatinine_mg_dl=Decimal(scr), **changes)


def case(
    name: str, facts: dict[str, Any], the_order: dict[str, Any], outcome: str, *keys: str
) -> Any:
    return pytest.param(facts, the_order, outcome, set(keys), id=name)


APIX_NVAF_5 = order("apixaban", 5, "BID", "nvaf")
APIX_NVAF_2_5 = order("apixaban", 2.5, "BID", "nvaf")
APIX_VTE = {d: order("apixaban", d, "BID", "vte_treatment") for d in ("10", "5", "2.5", "7.5")}
APIX_PROPH = order("apixaban", 2.5, "BID", "vte_prophylaxis")
KETO = ["ketoconazole"]

APIXABAN = [
    case(
        "apixaban_age_80_weight_60_two_criteria_warns",
        patient(age_years=80, weight_kg=Decimal(60)),
        APIX_NVAF_5,
        "WARN",
        "apixaban_dose_reduction_criteria_met",
    ),
    case(
        "apixaban_age_79_weight_60_one_criterion_passes",
        patient(age_years=79, weight_kg=Decimal(60)),
        APIX_NVAF_5,
        "PASS",
    ),
    case(
        "apixaban_age_80_weight_60_1_one_criterion_passes",
        patient(age_years=80, weight_kg=Decimal("60.1")),
        APIX_NVAF_5,
        "PASS",
    ),
    case(
        "apixaban_weight_60_scr_1_5_two_criteria_warns",
        patient(weight_kg=Decimal(60), serum_creatinine_mg_dl=Decimal("1.5")),
        APIX_NVAF_5,
        "WARN",
        "apixaban_dose_reduction_criteria_met",
    ),
    case(
        "apixaban_weight_60_scr_1_49_one_criterion_passes",
        patient(weight_kg=Decimal(60), serum_creatinine_mg_dl=Decimal("1.49")),
        APIX_NVAF_5,
        "PASS",
    ),
    case(
        "apixaban_age_80_scr_132_6_umol_two_criteria_warns",
        patient(
            age_years=80, serum_creatinine_mg_dl=None, serum_creatinine_umol_l=Decimal("132.6")
        ),
        APIX_NVAF_5,
        "WARN",
        "apixaban_dose_reduction_criteria_met",
    ),
    case(
        "apixaban_age_80_scr_132_5_umol_one_criterion_passes",
        patient(
            age_years=80, serum_creatinine_mg_dl=None, serum_creatinine_umol_l=Decimal("132.5")
        ),
        APIX_NVAF_5,
        "PASS",
    ),
    case(
        "apixaban_three_criteria_2_5_passes",
        patient(age_years=85, weight_kg=Decimal(55), serum_creatinine_mg_dl=Decimal("1.6")),
        APIX_NVAF_2_5,
        "PASS",
    ),
    case(
        "apixaban_two_criteria_2_5_passes",
        patient(age_years=85, weight_kg=Decimal(58), serum_creatinine_mg_dl=Decimal("0.9")),
        APIX_NVAF_2_5,
        "PASS",
    ),
    case(
        "apixaban_one_criterion_2_5_underdose",
        patient(age_years=84),
        APIX_NVAF_2_5,
        "WARN",
        "apixaban_underdose_criteria_not_met",
    ),
    case(
        "apixaban_no_criteria_2_5_underdose",
        patient(),
        APIX_NVAF_2_5,
        "WARN",
        "apixaban_underdose_criteria_not_met",
    ),
    case(
        "apixaban_nvaf_10_bid_not_labeled",
        patient(),
        order("apixaban", 10, "BID", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_nvaf_5_qd_not_labeled",
        patient(),
        order("apixaban", 5, "QD", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_nvaf_base_5_keto_5_reduction_required",
        patient(other_medications=KETO),
        APIX_NVAF_5,
        "WARN",
        "apixaban_inhibitor_dose_reduction_required",
    ),
    case(
        "apixaban_nvaf_base_5_ritonavir_2_5_applied_info",
        patient(other_medications=["ritonavir"]),
        APIX_NVAF_2_5,
        "PASS",
        "apixaban_inhibitor_dose_reduction_applied",
    ),
    case(
        "apixaban_nvaf_base_2_5_keto_blocks",
        patient(age_years=80, weight_kg=Decimal(60), other_medications=KETO),
        APIX_NVAF_2_5,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "apixaban_nvaf_base_2_5_keto_5_ordered_blocks",
        patient(age_years=80, weight_kg=Decimal(60), other_medications=KETO),
        APIX_NVAF_5,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "apixaban_nvaf_base_5_keto_10_not_labeled_only",
        patient(other_medications=KETO),
        order("apixaban", 10, "BID", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_nvaf_clarithromycin_exempt",
        patient(other_medications=["clarithromycin"]),
        APIX_NVAF_5,
        "PASS",
    ),
    case(
        "apixaban_nvaf_keto_under_gate_skipped",
        patient(other_medications=KETO, creatinine_measured_days_ago=91),
        APIX_NVAF_5,
        "ATTEST",
        "creatinine_stale",
    ),
    case("apixaban_prophylaxis_2_5_passes", patient(), APIX_PROPH, "PASS"),
    case(
        "apixaban_prophylaxis_keto_blocks",
        patient(other_medications=["posaconazole"]),
        APIX_PROPH,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "apixaban_prophylaxis_keto_under_gate_blocks",
        patient(other_medications=KETO, weight_kg=None),
        APIX_PROPH,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
        "weight_missing",
    ),
    case(
        "apixaban_prophylaxis_5_not_labeled",
        patient(),
        order("apixaban", 5, "BID", "vte_prophylaxis"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case("apixaban_vte_10_passes", patient(), APIX_VTE["10"], "PASS"),
    case("apixaban_vte_5_passes", patient(), APIX_VTE["5"], "PASS"),
    case(
        "apixaban_vte_2_5_not_labeled_a4",
        patient(),
        APIX_VTE["2.5"],
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_vte_keto_10_reduction_required",
        patient(other_medications=KETO),
        APIX_VTE["10"],
        "WARN",
        "apixaban_inhibitor_dose_reduction_required",
    ),
    case(
        "apixaban_vte_keto_5_applied_info",
        patient(other_medications=KETO),
        APIX_VTE["5"],
        "PASS",
        "apixaban_inhibitor_dose_reduction_applied",
    ),
    case(
        "apixaban_vte_keto_2_5_applied_info_a12",
        patient(other_medications=KETO),
        APIX_VTE["2.5"],
        "PASS",
        "apixaban_inhibitor_dose_reduction_applied",
    ),
    case(
        "apixaban_vte_keto_7_5_not_labeled",
        patient(other_medications=KETO),
        APIX_VTE["7.5"],
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "apixaban_vte_keto_under_gate_still_halving",
        patient(other_medications=KETO, creatinine_measured_days_ago=None),
        APIX_VTE["10"],
        "ATTEST",
        "apixaban_inhibitor_dose_reduction_required",
        "creatinine_stale",
    ),
    case(
        "apixaban_rifampin_blocks",
        patient(other_medications=["rifampin"]),
        APIX_NVAF_5,
        "BLOCK",
        "strong_pgp_cyp3a4_inducer",
    ),
    case(
        "apixaban_st_johns_wort_blocks",
        patient(other_medications=["St. John's Wort"]),
        APIX_NVAF_5,
        "BLOCK",
        "strong_pgp_cyp3a4_inducer",
    ),
]

RIVA_VTE = order("rivaroxaban", 15, "BID", "vte_treatment")
RIVA_NVAF_20 = order("rivaroxaban", 20, "QD", "nvaf")
RIVA_NVAF_15 = order("rivaroxaban", 15, "QD", "nvaf")

RIVAROXABAN = [
    case(
        "rivaroxaban_crcl_29_9_limited_data",
        at("29.9"),
        RIVA_VTE,
        "WARN",
        "rivaroxaban_crcl_15_29_limited_data",
    ),
    case("rivaroxaban_crcl_30_0_passes", at("30.0"), RIVA_VTE, "PASS"),
    case("rivaroxaban_raw_29_96_rounds_to_30_passes", at("29.96"), RIVA_VTE, "PASS"),
    case("rivaroxaban_raw_29_95_rounds_half_up_passes", at("29.95"), RIVA_VTE, "PASS"),
    case(
        "rivaroxaban_raw_29_94_rounds_down_warns",
        at("29.94"),
        RIVA_VTE,
        "WARN",
        "rivaroxaban_crcl_15_29_limited_data",
    ),
    case(
        "rivaroxaban_prophylaxis_crcl_20_limited_data",
        at("20.0"),
        order("rivaroxaban", 10, "QD", "vte_prophylaxis"),
        "WARN",
        "rivaroxaban_crcl_15_29_limited_data",
    ),
    case("rivaroxaban_nvaf_crcl_50_0_15mg_passes", at("50.0", scr="1.5"), RIVA_NVAF_15, "PASS"),
    case(
        "rivaroxaban_nvaf_crcl_50_0_20mg_mismatch",
        at("50.0", scr="1.5"),
        RIVA_NVAF_20,
        "WARN",
        "rivaroxaban_nvaf_dose_mismatch",
    ),
    case("rivaroxaban_nvaf_crcl_50_1_20mg_passes", at("50.1", scr="1.5"), RIVA_NVAF_20, "PASS"),
    case(
        "rivaroxaban_nvaf_crcl_50_1_15mg_mismatch",
        at("50.1", scr="1.5"),
        RIVA_NVAF_15,
        "WARN",
        "rivaroxaban_nvaf_dose_mismatch",
    ),
    case(
        "rivaroxaban_nvaf_raw_50_05_rounds_up_20mg_passes",
        at("50.05", scr="1.5"),
        RIVA_NVAF_20,
        "PASS",
    ),
    case(
        "rivaroxaban_nvaf_raw_50_04_rounds_down_20mg_mismatch",
        at("50.04", scr="1.5"),
        RIVA_NVAF_20,
        "WARN",
        "rivaroxaban_nvaf_dose_mismatch",
    ),
    case(
        "rivaroxaban_nvaf_crcl_25_20mg_two_warnings",
        at("25.0"),
        RIVA_NVAF_20,
        "WARN",
        "rivaroxaban_nvaf_dose_mismatch",
        "rivaroxaban_crcl_15_29_limited_data",
    ),
    case(
        "rivaroxaban_nvaf_10mg_not_labeled_only",
        patient(),
        order("rivaroxaban", 10, "QD", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "rivaroxaban_nvaf_20_bid_not_labeled_only",
        patient(),
        order("rivaroxaban", 20, "BID", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "rivaroxaban_vte_20_qd_maintenance_passes",
        patient(),
        order("rivaroxaban", 20, "QD", "vte_treatment"),
        "PASS",
    ),
    case(
        "rivaroxaban_vte_10_qd_extended_not_labeled_a4",
        patient(),
        order("rivaroxaban", 10, "QD", "vte_treatment"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "rivaroxaban_prophylaxis_10_qd_passes_age_70_no_beers",
        patient(age_years=70),
        order("rivaroxaban", 10, "QD", "vte_prophylaxis"),
        "PASS",
    ),
    case(
        "rivaroxaban_ketoconazole_blocks",
        patient(other_medications=KETO),
        RIVA_NVAF_20,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "rivaroxaban_cobicistat_blocks",
        patient(other_medications=["cobicistat"]),
        RIVA_VTE,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
    ),
    case(
        "rivaroxaban_clarithromycin_passes",
        patient(other_medications=["clarithromycin"]),
        RIVA_NVAF_20,
        "PASS",
    ),
    case(
        "rivaroxaban_inhibitor_under_gate_blocks",
        patient(other_medications=KETO, weight_kg=None),
        RIVA_NVAF_20,
        "BLOCK",
        "strong_pgp_cyp3a4_inhibitor",
        "weight_missing",
    ),
    case(
        "rivaroxaban_carbamazepine_blocks",
        patient(other_medications=["carbamazepine"]),
        RIVA_NVAF_20,
        "BLOCK",
        "strong_pgp_cyp3a4_inducer",
    ),
    case(
        "rivaroxaban_age_65_nvaf_beers",
        patient(age_years=65),
        RIVA_NVAF_20,
        "WARN",
        "beers_rivaroxaban_long_term",
    ),
    case("rivaroxaban_age_64_nvaf_no_beers", patient(age_years=64), RIVA_NVAF_20, "PASS"),
    case(
        "rivaroxaban_age_65_vte_beers",
        patient(age_years=65),
        RIVA_VTE,
        "WARN",
        "beers_rivaroxaban_long_term",
    ),
]

DABI_VTE = order("dabigatran", 150, "BID", "vte_treatment")
DABI_HIP = order("dabigatran", 220, "QD", "vte_prophylaxis")
DABI_150 = order("dabigatran", 150, "BID", "nvaf")
DABI_75 = order("dabigatran", 75, "BID", "nvaf")

DABIGATRAN = [
    case(
        "dabigatran_vte_crcl_30_0_blocks",
        at("30.0"),
        DABI_VTE,
        "BLOCK",
        "dabigatran_crcl_30_or_less_vte",
    ),
    case("dabigatran_vte_crcl_30_1_passes", at("30.1"), DABI_VTE, "PASS"),
    case(
        "dabigatran_hip_crcl_30_0_blocks",
        at("30.0"),
        DABI_HIP,
        "BLOCK",
        "dabigatran_crcl_30_or_less_vte",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_hip_crcl_30_1_passes_with_info",
        at("30.1"),
        DABI_HIP,
        "PASS",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_hip_110_qd_day_one_passes",
        patient(age_years=70),
        order("dabigatran", 110, "QD", "vte_prophylaxis"),
        "PASS",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_hip_150_bid_not_labeled",
        patient(),
        order("dabigatran", 150, "BID", "vte_prophylaxis"),
        "WARN",
        "dose_not_labeled_for_indication",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_vte_75_bid_not_labeled",
        patient(),
        order("dabigatran", 75, "BID", "vte_treatment"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "dabigatran_vte_verapamil_crcl_49_9_blocks",
        at("49.9", scr="1.5", other_medications=["verapamil"]),
        DABI_VTE,
        "BLOCK",
        "dabigatran_pgp_inhibitor_renal_avoid",
    ),
    case(
        "dabigatran_vte_verapamil_crcl_50_0_passes",
        at("50.0", scr="1.5", other_medications=["verapamil"]),
        DABI_VTE,
        "PASS",
    ),
    case(
        "dabigatran_hip_ticagrelor_crcl_40_blocks",
        at("40.0", scr="2.0", other_medications=["ticagrelor"]),
        DABI_HIP,
        "BLOCK",
        "dabigatran_pgp_inhibitor_renal_avoid",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_nvaf_amiodarone_crcl_30_0_blocks_a3",
        at("30.0", other_medications=["amiodarone"]),
        DABI_75,
        "BLOCK",
        "dabigatran_pgp_inhibitor_renal_avoid",
    ),
    case(
        "dabigatran_nvaf_amiodarone_crcl_30_1_passes",
        at("30.1", other_medications=["amiodarone"]),
        DABI_150,
        "PASS",
    ),
    case(
        "dabigatran_nvaf_dronedarone_crcl_30_1_reduce",
        at("30.1", other_medications=["dronedarone"]),
        DABI_150,
        "WARN",
        "dabigatran_pgp_inhibitor_dose_reduction_required",
    ),
    case(
        "dabigatran_nvaf_dronedarone_crcl_50_0_reduce",
        at("50.0", scr="1.5", other_medications=["dronedarone"]),
        DABI_150,
        "WARN",
        "dabigatran_pgp_inhibitor_dose_reduction_required",
    ),
    case(
        "dabigatran_nvaf_dronedarone_crcl_50_1_passes",
        at("50.1", scr="1.5", other_medications=["dronedarone"]),
        DABI_150,
        "PASS",
    ),
    case(
        "dabigatran_nvaf_dronedarone_crcl_40_75mg_passes",
        at("40.0", scr="2.0", other_medications=["dronedarone"]),
        DABI_75,
        "PASS",
    ),
    case(
        "dabigatran_nvaf_ketoconazole_crcl_40_reduce",
        at("40.0", scr="2.0", other_medications=KETO),
        DABI_150,
        "WARN",
        "dabigatran_pgp_inhibitor_dose_reduction_required",
    ),
    case(
        "dabigatran_nvaf_dronedarone_crcl_55_75mg_mismatch",
        at("55.0", scr="1.5", other_medications=["dronedarone"]),
        DABI_75,
        "WARN",
        "dabigatran_nvaf_dose_mismatch",
    ),
    case(
        "dabigatran_nvaf_crcl_30_0_150mg_mismatch",
        at("30.0"),
        DABI_150,
        "WARN",
        "dabigatran_nvaf_dose_mismatch",
    ),
    case("dabigatran_nvaf_crcl_30_0_75mg_passes", at("30.0"), DABI_75, "PASS"),
    case(
        "dabigatran_nvaf_crcl_30_1_75mg_mismatch",
        at("30.1"),
        DABI_75,
        "WARN",
        "dabigatran_nvaf_dose_mismatch",
    ),
    case("dabigatran_nvaf_crcl_30_1_150mg_passes", at("30.1"), DABI_150, "PASS"),
    case(
        "dabigatran_nvaf_110_bid_eu_dose_not_labeled",
        patient(),
        order("dabigatran", 110, "BID", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "dabigatran_nvaf_age_65_beers_info_passes",
        patient(age_years=65),
        DABI_150,
        "PASS",
        "beers_dabigatran_caution",
    ),
    case("dabigatran_nvaf_age_64_no_beers", patient(age_years=64), DABI_150, "PASS"),
    case(
        "dabigatran_vte_age_70_beers_info",
        patient(age_years=70),
        DABI_VTE,
        "PASS",
        "beers_dabigatran_caution",
    ),
    case(
        "dabigatran_hip_age_70_no_beers",
        patient(age_years=70),
        DABI_HIP,
        "PASS",
        "dabigatran_prophylaxis_hip_only",
    ),
    case(
        "dabigatran_rifampin_blocks",
        patient(other_medications=["rifampin"]),
        DABI_150,
        "BLOCK",
        "strong_pgp_cyp3a4_inducer",
    ),
    case(
        "dabigatran_carbamazepine_not_on_its_list",
        patient(other_medications=["carbamazepine"]),
        DABI_150,
        "PASS",
    ),
]

EDOX_60 = order("edoxaban", 60, "QD", "nvaf")
EDOX_30 = order("edoxaban", 30, "QD", "nvaf")
EDOX_VTE_60 = order("edoxaban", 60, "QD", "vte_treatment")
EDOX_VTE_30 = order("edoxaban", 30, "QD", "vte_treatment")

EDOXABAN = [
    case("edoxaban_nvaf_crcl_95_0_passes", at("95.0", scr="0.8"), EDOX_60, "PASS"),
    case(
        "edoxaban_nvaf_crcl_95_1_blocks",
        at("95.1", scr="0.8"),
        EDOX_60,
        "BLOCK",
        "edoxaban_nvaf_crcl_above_95",
    ),
    case(
        "edoxaban_nvaf_crcl_95_1_30mg_blocks_without_mismatch",
        at("95.1", scr="0.8"),
        EDOX_30,
        "BLOCK",
        "edoxaban_nvaf_crcl_above_95",
    ),
    case(
        "edoxaban_nvaf_actual_weight_140kg_blocks_g015",
        patient(weight_kg=Decimal(140), serum_creatinine_mg_dl=Decimal("0.8")),
        EDOX_60,
        "BLOCK",
        "edoxaban_nvaf_crcl_above_95",
    ),
    case("edoxaban_nvaf_crcl_50_0_30mg_passes", at("50.0", scr="1.5"), EDOX_30, "PASS"),
    case(
        "edoxaban_nvaf_crcl_50_0_60mg_mismatch",
        at("50.0", scr="1.5"),
        EDOX_60,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case("edoxaban_nvaf_crcl_50_1_60mg_passes", at("50.1", scr="1.5"), EDOX_60, "PASS"),
    case(
        "edoxaban_nvaf_crcl_50_1_30mg_mismatch",
        at("50.1", scr="1.5"),
        EDOX_30,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case(
        "edoxaban_nvaf_45mg_not_labeled_only",
        patient(),
        order("edoxaban", 45, "QD", "nvaf"),
        "WARN",
        "dose_not_labeled_for_indication",
    ),
    case(
        "edoxaban_nvaf_ketoconazole_no_reduction", patient(other_medications=KETO), EDOX_60, "PASS"
    ),
    case("edoxaban_vte_60_passes", patient(), EDOX_VTE_60, "PASS"),
    case(
        "edoxaban_vte_weight_60_60mg_mismatch",
        patient(weight_kg=Decimal(60)),
        EDOX_VTE_60,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case("edoxaban_vte_weight_60_30mg_passes", patient(weight_kg=Decimal(60)), EDOX_VTE_30, "PASS"),
    case(
        "edoxaban_vte_weight_60_1_60mg_passes",
        patient(weight_kg=Decimal("60.1")),
        EDOX_VTE_60,
        "PASS",
    ),
    case(
        "edoxaban_vte_weight_80_30mg_mismatch",
        patient(),
        EDOX_VTE_30,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case(
        "edoxaban_vte_crcl_50_0_60mg_mismatch",
        at("50.0", scr="1.5"),
        EDOX_VTE_60,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case("edoxaban_vte_crcl_50_1_60mg_passes", at("50.1", scr="1.5"), EDOX_VTE_60, "PASS"),
    case(
        "edoxaban_vte_crcl_120_no_upper_limit", patient(weight_kg=Decimal(108)), EDOX_VTE_60, "PASS"
    ),
    case(
        "edoxaban_vte_verapamil_60mg_mismatch",
        patient(other_medications=["verapamil"]),
        EDOX_VTE_60,
        "WARN",
        "edoxaban_dose_mismatch",
    ),
    case(
        "edoxaban_vte_azithromycin_30mg_passes",
        patient(other_medications=["azithromycin"]),
        EDOX_VTE_30,
        "PASS",
    ),
    case(
        "edoxaban_prophylaxis_not_labeled_us",
        patient(),
        order("edoxaban", 30, "QD", "vte_prophylaxis"),
        "WARN",
        "indication_not_labeled_us",
    ),
    case(
        "edoxaban_prophylaxis_odd_dose_indication_only",
        patient(),
        order("edoxaban", 15, "BID", "vte_prophylaxis"),
        "WARN",
        "indication_not_labeled_us",
    ),
    case(
        "edoxaban_rifampin_blocks",
        patient(other_medications=["rifampin"]),
        EDOX_60,
        "BLOCK",
        "strong_pgp_cyp3a4_inducer",
    ),
]


@pytest.mark.parametrize(
    ("facts", "the_order", "outcome", "keys"), APIXABAN + RIVAROXABAN + DABIGATRAN + EDOXABAN
)
def test_engine_drug_scenario_gives_expected_reasons(
    facts: dict[str, Any], the_order: dict[str, Any], outcome: str, keys: set[str]
) -> None:
    result = run(facts, the_order)

    assert result.reason_keys == keys
    assert result.outcome == outcome
