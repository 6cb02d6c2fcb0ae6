"""Builders for engine inputs in the acceptance-set shape (days ago instead of dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from clinicos.cds.engine import Evaluation, RulePack, evaluate, load_rule_pack

AS_OF = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PACK: RulePack = load_rule_pack()


def days_ago(days: int | None) -> date | None:
    return None if days is None else AS_OF.date() - timedelta(days=days)


def facts_from_case(patient: dict[str, Any]) -> dict[str, Any]:
    """Turn an acceptance-set patient (``*_measured_days_ago``) into engine facts."""
    facts = dict(patient)
    facts["creatinine_measured_at"] = days_ago(facts.pop("creatinine_measured_days_ago", None))
    facts["weight_measured_at"] = days_ago(facts.pop("weight_measured_days_ago", None))
    return facts


def patient(**changes: Any) -> dict[str, Any]:
    """A fresh 60-year-old man, 80 kg, SCr 1.0 (CrCl 88.9), measured a week ago."""
    base: dict[str, Any] = {
        "age_years": 60,
        "sex": "male",
        "weight_kg": Decimal(80),
        "serum_creatinine_mg_dl": Decimal("1.0"),
        "creatinine_measured_days_ago": 7,
        "weight_measured_days_ago": 7,
        "active_bleeding": False,
        "mechanical_valve": False,
        "pregnant": False,
        "other_medications": [],
    }
    base.update(changes)
    return base


def order(drug: str, dose_mg: str | int, frequency: str, indication: str) -> dict[str, Any]:
    return {
        "drug": drug,
        "dose_mg": Decimal(str(dose_mg)),
        "frequency": frequency,
        "indication": indication,
    }


def run(
    case_patient: dict[str, Any], case_order: dict[str, Any], pack: RulePack = PACK
) -> Evaluation:
    return evaluate(facts_from_case(case_patient), case_order, pack, AS_OF)


def weight_for_crcl(crcl: str, *, age: int = 60, scr: str = "1.0", female: bool = False) -> Decimal:
    """The exact weight that gives ``crcl`` mL/min with Cockcroft-Gault (for boundary cases)."""
    factor = Decimal("0.85") if female else Decimal(1)
    return Decimal(crcl) * 72 * Decimal(scr) / ((140 - age) * factor)
