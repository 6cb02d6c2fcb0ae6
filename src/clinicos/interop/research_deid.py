"""De-identification transforms for research exports: plain functions over plain data, no
database (docs/contexts/interop.md, *Research export*, says what is kept and why).

- Patients are named by a pseudonym: HMAC-SHA256 of the patient id under a key drawn at random
  for one export and never stored, so it is stable within the export and cannot be linked
  across exports, nor turned back into the id, by anyone — us included.
- Ages: HIPAA §164.514(b)(2)(i)(C) keeps ages but collapses every age over 89, and any date
  element that shows it, into one "90 or older" category: the birth year is withheld then.
- Dates of events keep their year (Safe Harbor) or, when the export asks, their year and month
  (beyond Safe Harbor: see the docs); never the day.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from clinicos.records import ResearchCondition, ResearchMedication, ResearchObservation

DatePrecision = Literal["year", "month"]
Pseudonymizer = Callable[[str], str]
# 96 bits: no collision in any export we could produce (birthday bound ~2^48 patients).
PSEUDONYM_HEX = 24
OLDEST_AGE_SHOWN = 89
AGE_BAND_YEARS = 5


def new_pseudonymizer() -> Pseudonymizer:
    """A pseudonym function keyed with 256 fresh random bits, held only by the closure: the
    key dies with the export (never logged, stored or returned)."""
    key = secrets.token_bytes(32)

    def pseudonym(patient_id: str) -> str:
        digest = hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_HEX]

    return pseudonym


def age_on(birth: date, day: date) -> int:
    """Whole years completed on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(birth: date | None, day: date) -> str | None:
    """Five-year band of the age on ``day`` (``"65-69"``); ``"90+"`` from 90 on."""
    if birth is None:
        return None
    age = max(age_on(birth, day), 0)
    if age > OLDEST_AGE_SHOWN:
        return "90+"
    low = age - age % AGE_BAND_YEARS
    return f"{low}-{low + AGE_BAND_YEARS - 1}"


def birth_year(birth: date | None, day: date) -> int | None:
    """The birth year, withheld (None) when the patient is over 89 on ``day``: the year alone
    would show the age Safe Harbor collapses into "90+"."""
    if birth is None or age_on(birth, day) > OLDEST_AGE_SHOWN:
        return None
    return birth.year


def coarse_date(value: date | datetime | None, precision: DatePrecision) -> str | None:
    """``"2024"`` or ``"2024-03"`` — a datetime by its UTC date (it is stored in UTC)."""
    if value is None:
        return None
    return f"{value.year:04d}" if precision == "year" else f"{value.year:04d}-{value.month:02d}"


def _number(value: Decimal | None) -> str | None:
    # Decimals as strings: exact, as the record holds them (JSON floats would round).
    return None if value is None else str(value)


def observation_row(row: ResearchObservation, precision: DatePrecision) -> dict[str, Any]:
    return {
        "code": row.code,
        "category": row.category,
        "status": row.status,
        "value": _number(row.value),
        "unit": row.unit,
        "components": [
            {"code": code, "value": _number(value), "unit": unit}
            for code, value, unit in row.components
        ],
        "effective": coarse_date(row.effective_at, precision),
    }


def condition_row(row: ResearchCondition, precision: DatePrecision) -> dict[str, Any]:
    return {
        "icd10_code": row.icd10_code,
        "snomed_code": row.snomed_code,
        "clinical_status": row.clinical_status,
        "verification_status": row.verification_status,
        "onset": coarse_date(row.onset_date, precision),
        "abatement": coarse_date(row.abatement_date, precision),
        "recorded": coarse_date(row.recorded_at, precision),
    }


def medication_row(row: ResearchMedication, precision: DatePrecision) -> dict[str, Any]:
    return {
        "code_system": row.code_system,
        "code": row.code,
        "status": row.status,
        "dose": _number(row.dose),
        "dose_unit": row.dose_unit,
        "frequency": row.frequency,
        "route": row.route,
        "started": coarse_date(row.started, precision),
        "ended": coarse_date(row.ended, precision),
    }


def prescription_row(row: ResearchMedication, precision: DatePrecision) -> dict[str, Any]:
    """A prescription: as a medication, plus its indication code (``nvaf`` …)."""
    return {**medication_row(row, precision), "indication": row.indication}
