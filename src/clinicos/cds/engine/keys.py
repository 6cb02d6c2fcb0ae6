"""Reason keys the engine can emit, with the groups doac-rules.md 0.2 uses to skip rules."""

from __future__ import annotations

from typing import Literal

Severity = Literal["BLOCK", "ATTEST", "WARN", "INFO"]
Outcome = Literal["BLOCK", "ATTEST", "WARN", "PASS"]
PolicyFlag = Literal["label", "local"]
Drug = Literal["apixaban", "rivaroxaban", "dabigatran", "edoxaban", "warfarin"]
Indication = Literal["nvaf", "vte_treatment", "vte_prophylaxis"]
Frequency = Literal["QD", "BID", "TID", "QID"]

# doac-rules.md 0.2: outcome is the highest severity, BLOCK > ATTEST > WARN > PASS; INFO never
# raises the outcome above PASS.
SEVERITY_RANK: dict[str, int] = {"INFO": 0, "WARN": 1, "ATTEST": 2, "BLOCK": 3}

ACTIVE_BLEEDING = "active_bleeding"
MECHANICAL_HEART_VALVE = "mechanical_heart_valve"
WARFARIN_PREGNANCY = "warfarin_pregnancy_contraindicated"
CRCL_BELOW_15 = "crcl_below_15"
DABIGATRAN_CRCL_30_OR_LESS_VTE = "dabigatran_crcl_30_or_less_vte"
EDOXABAN_NVAF_CRCL_ABOVE_95 = "edoxaban_nvaf_crcl_above_95"
STRONG_INHIBITOR = "strong_pgp_cyp3a4_inhibitor"
STRONG_INDUCER = "strong_pgp_cyp3a4_inducer"
DABIGATRAN_PGP_RENAL_AVOID = "dabigatran_pgp_inhibitor_renal_avoid"
CREATININE_MISSING = "creatinine_missing"
CREATININE_STALE = "creatinine_stale"
WEIGHT_MISSING = "weight_missing"
WEIGHT_STALE = "weight_stale"
APIXABAN_CRITERIA_MET = "apixaban_dose_reduction_criteria_met"
APIXABAN_UNDERDOSE = "apixaban_underdose_criteria_not_met"
APIXABAN_INHIBITOR_REQUIRED = "apixaban_inhibitor_dose_reduction_required"
APIXABAN_INHIBITOR_APPLIED = "apixaban_inhibitor_dose_reduction_applied"
RIVAROXABAN_NVAF_MISMATCH = "rivaroxaban_nvaf_dose_mismatch"
RIVAROXABAN_LIMITED_DATA = "rivaroxaban_crcl_15_29_limited_data"
DABIGATRAN_NVAF_MISMATCH = "dabigatran_nvaf_dose_mismatch"
DABIGATRAN_PGP_REDUCTION = "dabigatran_pgp_inhibitor_dose_reduction_required"
EDOXABAN_MISMATCH = "edoxaban_dose_mismatch"
DOSE_NOT_LABELED = "dose_not_labeled_for_indication"
INDICATION_NOT_LABELED_US = "indication_not_labeled_us"
BEERS_RIVAROXABAN = "beers_rivaroxaban_long_term"
BEERS_WARFARIN = "beers_warfarin_initiation"
BEERS_DABIGATRAN = "beers_dabigatran_caution"
PREGNANCY_DOAC = "pregnancy_doac_review"
DUPLICATE_ANTICOAGULANT = "duplicate_anticoagulant"
DABIGATRAN_HIP_ONLY = "dabigatran_prophylaxis_hip_only"

# doac-rules.md 0.4: the data gates, the only ATTEST keys.
DATA_GATE_KEYS: frozenset[str] = frozenset(
    {CREATININE_MISSING, CREATININE_STALE, WEIGHT_MISSING, WEIGHT_STALE}
)

# The fact each data gate is about: what a clinician attests to (issue 5 point 4) or records
# afresh. Both creatinine gates concern the serum creatinine, both weight gates the weight.
AttestableFact = Literal["serum_creatinine", "weight"]
ATTESTABLE_FACTS: tuple[AttestableFact, ...] = ("serum_creatinine", "weight")
GATE_FACTS: dict[str, AttestableFact] = {
    CREATININE_MISSING: "serum_creatinine",
    CREATININE_STALE: "serum_creatinine",
    WEIGHT_MISSING: "weight",
    WEIGHT_STALE: "weight",
}

# doac-rules.md 0.2: below CrCl 15 these dose-selection rules are not evaluated.
DOSE_SELECTION_KEYS: frozenset[str] = frozenset(
    {
        APIXABAN_CRITERIA_MET,
        APIXABAN_UNDERDOSE,
        APIXABAN_INHIBITOR_REQUIRED,
        APIXABAN_INHIBITOR_APPLIED,
        RIVAROXABAN_NVAF_MISMATCH,
        DABIGATRAN_NVAF_MISMATCH,
        DABIGATRAN_PGP_REDUCTION,
        EDOXABAN_MISMATCH,
    }
)

ENGINE_REASON_KEYS: frozenset[str] = frozenset(
    {
        ACTIVE_BLEEDING,
        MECHANICAL_HEART_VALVE,
        WARFARIN_PREGNANCY,
        CRCL_BELOW_15,
        DABIGATRAN_CRCL_30_OR_LESS_VTE,
        EDOXABAN_NVAF_CRCL_ABOVE_95,
        STRONG_INHIBITOR,
        STRONG_INDUCER,
        DABIGATRAN_PGP_RENAL_AVOID,
        DOSE_NOT_LABELED,
        INDICATION_NOT_LABELED_US,
        RIVAROXABAN_LIMITED_DATA,
        BEERS_RIVAROXABAN,
        BEERS_WARFARIN,
        BEERS_DABIGATRAN,
        PREGNANCY_DOAC,
        DUPLICATE_ANTICOAGULANT,
        DABIGATRAN_HIP_ONLY,
    }
    | DATA_GATE_KEYS
    | DOSE_SELECTION_KEYS
)
