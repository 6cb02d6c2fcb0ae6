"""Rivaroxaban rules: inhibitors, the 15-29 limited-data warning, the NVAF renal band."""

from __future__ import annotations

from decimal import Decimal

from clinicos.cds.engine import keys
from clinicos.cds.engine.context import Context, Finding

# Xarelto v64/65 2.1 (NVAF): CrCl >50 -> 20 mg QD; CrCl <=50 -> 15 mg QD, evening meal.
NVAF_FULL_DOSE = Decimal(20)
NVAF_REDUCED_DOSE = Decimal(15)


def check_rivaroxaban(ctx: Context) -> list[Finding]:
    """Xarelto 7.2 (inhibitors, any CrCl), 8.6 + policy (15-29), 2.1 (NVAF band)."""
    if ctx.drug != "rivaroxaban":
        return []
    found: list[Finding] = []
    if ctx.has_any("strong_pgp_cyp3a4_inhibitors"):
        found.append(Finding(keys.STRONG_INHIBITOR))
    renal = ctx.renal
    if renal is None:
        return found
    crcl = renal.crcl
    # Xarelto 8.6 "not studied" below 30; WARN at 15 <= CrCl < 30 is our policy (0.6 item 1).
    floor = ctx.threshold("crcl_block_below")
    if floor <= crcl < ctx.threshold("rivaroxaban_limited_data_crcl_below"):
        found.append(Finding(keys.RIVAROXABAN_LIMITED_DATA))
    order = ctx.order
    if (
        ctx.indication == "nvaf"
        and order.frequency == "QD"
        and order.dose_mg in (NVAF_FULL_DOSE, NVAF_REDUCED_DOSE)
    ):
        full = crcl > ctx.threshold("rivaroxaban_nvaf_full_dose_crcl_above")
        band = NVAF_FULL_DOSE if full else NVAF_REDUCED_DOSE
        if order.dose_mg != band:
            found.append(Finding(keys.RIVAROXABAN_NVAF_MISMATCH, band, "QD"))
    return found
