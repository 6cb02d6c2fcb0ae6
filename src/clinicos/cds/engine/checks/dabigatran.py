"""Dabigatran rules: VTE renal limits, P-gp inhibitors, NVAF renal band (Pradaxa capsules 2.1)."""

from __future__ import annotations

from decimal import Decimal

from clinicos.cds.engine import keys
from clinicos.cds.engine.context import Context, Finding, Renal

# Pradaxa v48 2.1 (NVAF): CrCl >30 -> 150 mg BID; CrCl 15-30 -> 75 mg BID.
NVAF_FULL_DOSE = Decimal(150)
NVAF_REDUCED_DOSE = Decimal(75)


def check_dabigatran(ctx: Context) -> list[Finding]:
    """Pradaxa indications (hip only, INFO), 2.1 renal limits and P-gp inhibitor rules."""
    if ctx.drug != "dabigatran":
        return []
    found: list[Finding] = []
    if ctx.indication == "vte_prophylaxis":
        found.append(Finding(keys.DABIGATRAN_HIP_ONLY))
    renal = ctx.renal
    if renal is None:
        return found
    pgp = ctx.has_any("dabigatran_pgp_inhibitors")
    if ctx.indication == "nvaf":
        return found + _nvaf(ctx, renal, pgp)
    # Pradaxa 2.1 DVT/PE and hip prophylaxis: CrCl <=30 "cannot be provided".
    if renal.crcl <= ctx.threshold("dabigatran_vte_no_dosing_crcl_max"):
        found.append(Finding(keys.DABIGATRAN_CRCL_30_OR_LESS_VTE))
    # Pradaxa 2.1: CrCl <50 with any P-gp inhibitor -> avoid (DVT/PE and prophylaxis).
    if pgp and renal.crcl < ctx.threshold("dabigatran_vte_pgp_avoid_crcl_below"):
        found.append(Finding(keys.DABIGATRAN_PGP_RENAL_AVOID))
    return found


def _nvaf(ctx: Context, renal: Renal, pgp: bool) -> list[Finding]:
    """NVAF: avoid with P-gp at CrCl <=30 (A3), else the dronedarone/ketoconazole reduction."""
    crcl = renal.crcl
    if pgp and crcl <= ctx.threshold("dabigatran_nvaf_pgp_avoid_crcl_max"):
        return [Finding(keys.DABIGATRAN_PGP_RENAL_AVOID)]
    # Pradaxa 2.1/7: CrCl >30 to <=50 with dronedarone or systemic ketoconazole -> 75 mg BID.
    reduce = (
        ctx.has_any("dabigatran_nvaf_reduce_inhibitors")
        and crcl > ctx.threshold("dabigatran_nvaf_pgp_avoid_crcl_max")
        and crcl <= ctx.threshold("dabigatran_nvaf_pgp_reduce_crcl_max")
    )
    if reduce and ctx.is_order("150", "BID"):
        return [Finding(keys.DABIGATRAN_PGP_REDUCTION, NVAF_REDUCED_DOSE, "BID")]
    order = ctx.order
    if order.frequency != "BID" or order.dose_mg not in (NVAF_FULL_DOSE, NVAF_REDUCED_DOSE):
        return []  # any other dose gets only dose_not_labeled_for_indication
    full = crcl > ctx.threshold("dabigatran_nvaf_full_dose_crcl_above") and not reduce
    band = NVAF_FULL_DOSE if full else NVAF_REDUCED_DOSE
    if order.dose_mg != band:
        return [Finding(keys.DABIGATRAN_NVAF_MISMATCH, band, "BID")]
    return []
