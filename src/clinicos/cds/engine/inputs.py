"""The engine's inputs: patient facts and the draft order, validated at the edge with pydantic."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from clinicos.cds.engine.keys import Drug, Frequency, Indication

# Impossible values are rejected (issue 5, "Bad input"): age 0-130, weight 0-500 kg, SCr > 0.
MAX_AGE_YEARS = 130
MAX_WEIGHT_KG = 500
# Our policy, not a clinical floor (doac-rules.md 0.5 forbids rounding a low SCr up): a serum
# creatinine below 0.01 mg/dL (0.884 umol/L) is under the reporting resolution of clinical
# creatinine assays (results are given to 0.01 mg/dL or 1 umol/L), so it is not a measurement but
# a typo. Refusing it also keeps Cockcroft-Gault's quotient finite: 1e-300 mg/dL would divide
# past what the decimal context can round (found by the parser fuzzer, tests/fuzz).
MIN_SCR_MG_DL = Decimal("0.01")
MIN_SCR_UMOL_L = Decimal("0.884")  # 0.01 x 88.4


def plausible_creatinine(value: Decimal, unit: Literal["mg/dL", "umol/L"]) -> bool:
    """Whether a serum creatinine in ``unit`` is one the engine takes (see MIN_SCR_MG_DL)."""
    return value >= (MIN_SCR_MG_DL if unit == "mg/dL" else MIN_SCR_UMOL_L)


def _to_utc_date(value: Any) -> Any:
    """A measurement date: a date, or an aware datetime / ISO text reduced to its UTC date."""
    if isinstance(value, str) and "T" in value:
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("measurement datetimes must be timezone-aware")
        return value.astimezone(UTC).date()
    return value


def _normalize_medication(value: Any) -> Any:
    """doac-rules.md A8: lowercase generic names ("st johns wort" for St John's wort)."""
    if not isinstance(value, str):
        return value
    text = value.lower().replace("\u2019", "").replace("'", "").replace(".", " ")
    return re.sub(r"\s+", " ", text).strip()


MeasuredDate = Annotated[date | None, BeforeValidator(_to_utc_date)]
Medication = Annotated[str, BeforeValidator(_normalize_medication), Field(min_length=1)]


class Facts(BaseModel):
    """What the engine knows about the patient on the evaluation date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age_years: int | None = Field(default=None, ge=0, le=MAX_AGE_YEARS)
    birth_date: date | None = None
    sex: Literal["male", "female"]
    weight_kg: Decimal | None = Field(default=None, gt=0, le=MAX_WEIGHT_KG)
    weight_measured_at: MeasuredDate = None
    serum_creatinine_mg_dl: Decimal | None = Field(default=None, ge=MIN_SCR_MG_DL)
    serum_creatinine_umol_l: Decimal | None = Field(default=None, ge=MIN_SCR_UMOL_L)
    creatinine_measured_at: MeasuredDate = None
    active_bleeding: bool = False
    mechanical_valve: bool = False
    pregnant: bool = False
    other_medications: tuple[Medication, ...] = ()

    @model_validator(mode="after")
    def _one_of_each(self) -> Facts:
        if (self.age_years is None) == (self.birth_date is None):
            raise ValueError("give exactly one of age_years and birth_date")
        if self.serum_creatinine_mg_dl is not None and self.serum_creatinine_umol_l is not None:
            raise ValueError("give serum creatinine in one unit only (mg/dL or umol/L)")
        return self

    def age_on(self, day: date) -> int:
        """Age in whole years on the evaluation date (terminology.md: from birthDate)."""
        if self.age_years is not None:
            return self.age_years
        assert self.birth_date is not None  # guaranteed by _one_of_each
        born = self.birth_date
        age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
        if not 0 <= age <= MAX_AGE_YEARS:
            raise ValueError(f"age from birth_date must be 0-{MAX_AGE_YEARS} on the as_of date")
        return age


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Order(BaseModel):
    """The draft anticoagulant order being checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: Annotated[Drug, BeforeValidator(_lower)]
    dose_mg: Decimal = Field(gt=0)
    frequency: Annotated[Frequency, BeforeValidator(_upper)]
    indication: Annotated[Indication, BeforeValidator(_lower)]
