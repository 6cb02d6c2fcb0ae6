"""Apixaban rules: NVAF 2-of-3 dose selection and the inhibitor rule (doac-rules.md 1.1, A12)."""

from __future__ import annotations

from decimal import Decimal

from clinicos.cds.engine import keys
from clinicos.cds.engine.context import Context, Finding

INHIBITORS = "strong_pgp_cyp3a4_inhibitors"


def has_inhibitor(ctx: Context) -> bool:
    """Combined P-gp + strong CYP3A4 inhibitor; clarithromycin is not on the list (Eliquis 7.1)."""
    return ctx.has_any(INHIBITORS)


def inhibitor_halved_vte_dose(ctx: Context) -> bool:
    """A12: apixaban vte_treatment 2.5 mg BID with an inhibitor is the halved 5 mg dose."""
    return (
        ctx.drug == "apixaban"
        and ctx.indication == "vte_treatment"
        and has_inhibitor(ctx)
        and ctx.is_order("2.5", "BID")
    )


def reduction_criteria(ctx: Context) -> int | None:
    """Eliquis D&A (NVAF), inclusive (A1): age >=80, weight <=60 kg, SCr >=1.5 mg/dL.

    None when a data gate fired: the count reads weight and SCr (doac-rules.md 0.2).
    """
    renal = ctx.renal
    if renal is None:
        return None
    return sum(
        (
            ctx.age_years >= ctx.threshold("apixaban_age_min_years"),
            renal.weight_kg <= ctx.threshold("apixaban_weight_max_kg"),
            renal.creatinine.at_least_mg_dl(ctx.threshold("apixaban_scr_min_mg_dl")),
        )
    )


def check_apixaban(ctx: Context) -> list[Finding]:
    """Dispatch by indication; the base dose decides what an inhibitor means (A12)."""
    if ctx.drug != "apixaban":
        return []
    if ctx.indication == "vte_prophylaxis":
        # Eliquis D&A: prophylaxis is always 2.5 mg BID, so an inhibitor means "avoid".
        return [Finding(keys.STRONG_INHIBITOR)] if has_inhibitor(ctx) else []
    if ctx.indication == "vte_treatment":
        return _vte_treatment(ctx) if has_inhibitor(ctx) else []
    return _nvaf(ctx)


def _vte_treatment(ctx: Context) -> list[Finding]:
    """A12: base 10 or 5 mg BID (A7), halved with an inhibitor; reads no renal data."""
    if ctx.is_order("10", "BID"):
        return [Finding(keys.APIXABAN_INHIBITOR_REQUIRED, Decimal(5), "BID")]
    if ctx.is_order("5", "BID") or ctx.is_order("2.5", "BID"):
        return [Finding(keys.APIXABAN_INHIBITOR_APPLIED)]
    return []


def _nvaf(ctx: Context) -> list[Finding]:
    """Eliquis D&A NVAF: 5 mg BID, or 2.5 mg BID with >=2 criteria; skipped under a gate."""
    criteria = reduction_criteria(ctx)
    if criteria is None:
        return []
    reduced_base = criteria >= ctx.threshold("apixaban_criteria_min_count")
    if has_inhibitor(ctx):
        if reduced_base:
            # Eliquis 7.1: "in patients already taking 2.5 mg twice daily, avoid".
            return [Finding(keys.STRONG_INHIBITOR)]
        if ctx.is_order("5", "BID"):
            return [Finding(keys.APIXABAN_INHIBITOR_REQUIRED, Decimal("2.5"), "BID")]
        if ctx.is_order("2.5", "BID"):
            return [Finding(keys.APIXABAN_INHIBITOR_APPLIED)]
        return []
    if reduced_base and ctx.is_order("5", "BID"):
        return [Finding(keys.APIXABAN_CRITERIA_MET, Decimal("2.5"), "BID")]
    if not reduced_base and ctx.is_order("2.5", "BID"):
        return [Finding(keys.APIXABAN_UNDERDOSE, Decimal(5), "BID")]
    return []
