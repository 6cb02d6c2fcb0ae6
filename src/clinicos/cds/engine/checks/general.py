"""Rules shared by every anticoagulant: contraindications, gates, CrCl floor, Beers, regimens."""

from __future__ import annotations

from clinicos.cds.engine import keys
from clinicos.cds.engine.checks.apixaban import inhibitor_halved_vte_dose
from clinicos.cds.engine.context import Context, Finding

# doac-rules.md A9 / Beers 2023: "long-term treatment" is nvaf and vte_treatment only.
LONG_TERM_INDICATIONS = frozenset({"nvaf", "vte_treatment"})
# Beers 2023 Table 2 ("avoid", WARN) and Table 4 ("use with caution", INFO).
BEERS_KEYS = {
    "rivaroxaban": keys.BEERS_RIVAROXABAN,
    "warfarin": keys.BEERS_WARFARIN,
    "dabigatran": keys.BEERS_DABIGATRAN,
}


def check_contraindications(ctx: Context) -> list[Finding]:
    """Labels section 4; A11 (valve + any DOAC); A10 (warfarin in pregnancy, no valve)."""
    found: list[Finding] = []
    if ctx.facts.active_bleeding:
        found.append(Finding(keys.ACTIVE_BLEEDING))
    if ctx.is_doac and ctx.facts.mechanical_valve:
        found.append(Finding(keys.MECHANICAL_HEART_VALVE))
    if ctx.drug == "warfarin" and ctx.facts.pregnant and not ctx.facts.mechanical_valve:
        found.append(Finding(keys.WARFARIN_PREGNANCY))
    return found


def check_pregnancy(ctx: Context) -> list[Finding]:
    """A10 [policy]: DOAC + pregnant -> WARN; the US labels (8.1) do not contraindicate it."""
    if ctx.is_doac and ctx.facts.pregnant:
        return [Finding(keys.PREGNANCY_DOAC)]
    return []


def check_duplicate_anticoagulant(ctx: Context) -> list[Finding]:
    """doac-rules.md 2/5 [policy]: a different anticoagulant on the list (own drug = renewal)."""
    if ctx.has_any("anticoagulants"):
        return [Finding(keys.DUPLICATE_ANTICOAGULANT)]
    return []


def check_data_gates(ctx: Context) -> list[Finding]:
    """doac-rules.md 0.4 [policy]: missing or stale weight/SCr on a DOAC order -> ATTEST."""
    return [Finding(key) for key in ctx.gates]


def check_crcl_floor(ctx: Context) -> list[Finding]:
    """A6 [policy]: CrCl <15 blocks all four DOACs (stricter than Eliquis and Xarelto NVAF)."""
    if ctx.below_crcl_floor:
        return [Finding(keys.CRCL_BELOW_15)]
    return []


def check_inducers(ctx: Context) -> list[Finding]:
    """Eliquis/Xarelto 7.2: combined inducers; Pradaxa 7 and Savaysa 7: rifampin. CrCl-free."""
    list_name = ctx.pack.drugs[ctx.order.drug].inducer_list
    if list_name is not None and ctx.has_any(list_name):
        return [Finding(keys.STRONG_INDUCER)]
    return []


def check_labelled_regimen(ctx: Context) -> list[Finding]:
    """A4/A7: the dose/frequency must be a labelled regimen for the indication (DOACs only).

    Warfarin is titrated to INR and not dose-checked (doac-rules.md 1.5). A DOAC with no US
    regimen for the indication (edoxaban prophylaxis) gets only indication_not_labeled_us.
    """
    if not ctx.is_doac:
        return []
    regimens = ctx.pack.regimens[ctx.order.drug].get(ctx.order.indication)
    if regimens is None:
        return [Finding(keys.INDICATION_NOT_LABELED_US)]
    dose_mg, frequency = ctx.order.dose_mg, ctx.order.frequency
    labelled = any(r.dose_mg == dose_mg and r.frequency == frequency for r in regimens)
    # A12: apixaban 2.5 mg BID for vte_treatment is the halved 5 mg when an inhibitor is taken.
    if labelled or inhibitor_halved_vte_dose(ctx):
        return []
    return [Finding(keys.DOSE_NOT_LABELED)]


def check_beers(ctx: Context) -> list[Finding]:
    """Beers 2023 at age >=65 (A9) for long-term indications; every order is a new start (A5)."""
    key = BEERS_KEYS.get(ctx.drug)
    if key is None or ctx.indication not in LONG_TERM_INDICATIONS:
        return []
    if ctx.age_years >= ctx.threshold("beers_age_min_years"):
        return [Finding(key)]
    return []
