"""Renal inputs: creatinine units, Cockcroft-Gault CrCl (doac-rules.md 0.5) and data age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

# Creatinine molar mass 113.12 g/mol: 1 mg/dL = 88.4 umol/L. doac-rules.md 0.5 [V: NHS Highland
# renal prescribing page]; terminology.md "mg/dL = umol/L / 88.4".
UMOL_L_PER_MG_DL = Decimal("88.4")
# Cockcroft DW, Gault MH. Nephron 1976;16:31-41: (140 - age) x weight / (72 x SCr), x 0.85 female.
CG_AGE_BASE = 140
CG_DENOMINATOR = Decimal(72)
CG_FEMALE_FACTOR = Decimal("0.85")
# doac-rules.md 0.5 [policy]: round half-up to one decimal; compare thresholds on this value.
CRCL_QUANTUM = Decimal("0.1")
# Enough digits that one exact division can never land on a rounding tie by accident.
_PRECISION = 60


@dataclass(frozen=True)
class Creatinine:
    """A serum creatinine value in the unit it was measured in (never pre-converted)."""

    value: Decimal
    unit: Literal["mg/dL", "umol/L"]

    def at_least_mg_dl(self, threshold: Decimal) -> bool:
        """value >= threshold mg/dL, compared exactly (1.5 mg/dL = 132.6 umol/L, 0.5)."""
        if self.unit == "umol/L":
            return self.value >= threshold * UMOL_L_PER_MG_DL
        return self.value >= threshold

    @property
    def mg_dl(self) -> Decimal:
        """The value in mg/dL (for display; comparisons use at_least_mg_dl)."""
        if self.unit == "mg/dL":
            return self.value
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return self.value / UMOL_L_PER_MG_DL


def cockcroft_gault(
    *, age_years: int, weight_kg: Decimal, female: bool, creatinine: Creatinine
) -> Decimal:
    """CrCl in mL/min with actual body weight, no SCr floor, rounded half-up to 0.1.

    One exact division of the decimal inputs, so a true 50.05 stays 50.05 before rounding, and
    umol/L gives the same result as the equivalent mg/dL (doac-rules.md 0.5).
    """
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        numerator = (CG_AGE_BASE - age_years) * weight_kg
        if female:
            numerator *= CG_FEMALE_FACTOR
        if creatinine.unit == "umol/L":
            numerator *= UMOL_L_PER_MG_DL
        raw = numerator / (CG_DENOMINATOR * creatinine.value)
        return raw.quantize(CRCL_QUANTUM, rounding=ROUND_HALF_UP)


def is_stale(measured_on: date | None, as_of: date, max_age_days: Decimal) -> bool:
    """doac-rules.md 0.4: whole UTC days; the window is inclusive; an undated value is stale."""
    if measured_on is None:
        return True
    return (as_of - measured_on).days > max_age_days
