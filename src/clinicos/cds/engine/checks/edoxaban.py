"""Edoxaban rules: NVAF CrCl >95 block and the dose bands (Savaysa 1.1, 2.1, 2.2)."""

from __future__ import annotations

from decimal import Decimal

from clinicos.cds.engine import keys
from clinicos.cds.engine.context import Context, Finding, Renal

# Savaysa v28 2.1/2.2: 60 mg QD, or 30 mg QD when the reduction applies.
FULL_DOSE = Decimal(60)
REDUCED_DOSE = Decimal(30)


def check_edoxaban(ctx: Context) -> list[Finding]:
    """Savaysa Boxed Warning (A)/1.1 (NVAF CrCl >95: do not use) and the labelled dose."""
    if ctx.drug != "edoxaban" or ctx.indication == "vte_prophylaxis":
        return []  # prophylaxis: indication_not_labeled_us only (general check)
    renal = ctx.renal
    if renal is None:
        return []
    if ctx.indication == "nvaf":
        if renal.crcl > ctx.threshold("edoxaban_nvaf_crcl_max"):
            return [Finding(keys.EDOXABAN_NVAF_CRCL_ABOVE_95)]
        # Savaysa 2.1: CrCl >50 to <=95 -> 60 mg; CrCl 15-50 -> 30 mg.
        reduced = renal.crcl <= ctx.threshold("edoxaban_reduced_dose_crcl_max")
    else:
        reduced = _vte_reduced(ctx, renal)
    required = REDUCED_DOSE if reduced else FULL_DOSE
    order = ctx.order
    labelled_strength = order.frequency == "QD" and order.dose_mg in (FULL_DOSE, REDUCED_DOSE)
    if labelled_strength and order.dose_mg != required:
        return [Finding(keys.EDOXABAN_MISMATCH, required, "QD")]
    return []


def _vte_reduced(ctx: Context, renal: Renal) -> bool:
    """Savaysa 2.2 (DVT/PE): 30 mg if CrCl 15-50, weight <=60 kg, or certain P-gp inhibitors."""
    return (
        renal.crcl <= ctx.threshold("edoxaban_reduced_dose_crcl_max")
        or renal.weight_kg <= ctx.threshold("edoxaban_vte_weight_max_kg")
        or ctx.has_any("edoxaban_vte_pgp_inhibitors")
    )
