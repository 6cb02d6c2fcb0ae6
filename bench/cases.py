"""Engine inputs for the CDS benchmarks: the published worked cases (tests/data/doac-examples.json)
and a broader generated mix (CrCl from failing to normal kidneys, every drug and indication,
interacting and harmless co-medications, missing and stale measurements)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.options import REPOSITORY

EXAMPLES = REPOSITORY / "tests" / "data" / "doac-examples.json"
AS_OF = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

Case = tuple[dict[str, Any], dict[str, Any]]  # (facts, order) as evaluate() takes them


def _days_ago(days: int | None) -> date | None:
    return None if days is None else AS_OF.date() - timedelta(days=days)


def load_examples() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(
        EXAMPLES.read_text(encoding="utf-8"), parse_float=Decimal
    )
    return cases


def example_cases() -> list[Case]:
    """The published cases as engine inputs (``*_measured_days_ago`` become dates before AS_OF,
    as tests/unit/cds/builders.py does)."""
    result: list[Case] = []
    for case in load_examples():
        facts = dict(case["patient"])
        facts["creatinine_measured_at"] = _days_ago(facts.pop("creatinine_measured_days_ago", None))
        facts["weight_measured_at"] = _days_ago(facts.pop("weight_measured_days_ago", None))
        order = dict(case["order"])
        order["dose_mg"] = Decimal(str(order["dose_mg"]))
        result.append((facts, order))
    return result


def example_request_bodies() -> list[bytes]:
    """The published cases as ``POST /api/v1/cds/evaluate`` bodies (inline facts)."""
    bodies = []
    for facts, order in example_cases():
        patient = {k: _json_value(v) for k, v in facts.items() if v is not None}
        body = {
            "as_of": AS_OF.isoformat().replace("+00:00", "Z"),
            "patient": patient,
            "order": {k: _json_value(v) for k, v in order.items()},
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# Doses and frequencies actually prescribed per drug (labelled and a few off-label ones).
_REGIMENS: dict[str, list[tuple[str, str]]] = {
    "apixaban": [("5", "BID"), ("2.5", "BID"), ("10", "BID")],
    "rivaroxaban": [("20", "QD"), ("15", "QD"), ("15", "BID"), ("10", "QD")],
    "dabigatran": [("150", "BID"), ("110", "BID"), ("75", "BID"), ("220", "QD")],
    "edoxaban": [("60", "QD"), ("30", "QD")],
    "warfarin": [("5", "QD"), ("2.5", "QD"), ("7.5", "QD")],
}
_INDICATIONS = ["nvaf", "nvaf", "vte_treatment", "vte_prophylaxis"]
_INTERACTING = [
    "ketoconazole",
    "itraconazole",
    "ritonavir",
    "rifampin",
    "carbamazepine",
    "phenytoin",
    "st johns wort",
    "amiodarone",
    "dronedarone",
    "verapamil",
    "quinidine",
    "clarithromycin",
    "erythromycin",
    "warfarin",
    "apixaban",
]
_HARMLESS = ["metformin", "lisinopril", "atorvastatin", "omeprazole", "levothyroxine"]


def generated_cases(count: int = 2000, seed: int = 1) -> list[Case]:
    """A deterministic mix of plausible orders; dates before AS_OF."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for _ in range(count):
        sex = rng.choice(["male", "female"])
        age = rng.randint(18, 98)
        weight = Decimal(rng.randint(380, 1400)) / 10
        # SCr from 0.5 to 8 mg/dL, skewed to normal: CrCl spans < 15 to > 130 mL/min.
        scr_mg_dl = Decimal(str(round(0.5 + rng.expovariate(1.2), 2))).min(Decimal(8))
        facts: dict[str, Any] = {
            "age_years": age,
            "sex": sex,
            "weight_kg": weight,
            "weight_measured_at": _days_ago(rng.choice([1, 7, 30, 120, 400])),
            "creatinine_measured_at": _days_ago(rng.choice([1, 7, 30, 90, 200])),
            "active_bleeding": rng.random() < 0.02,
            "mechanical_valve": rng.random() < 0.02,
            "pregnant": sex == "female" and age < 45 and rng.random() < 0.1,
            "other_medications": rng.sample(_HARMLESS, rng.randint(0, 2))
            + rng.sample(_INTERACTING, rng.choice([0, 0, 0, 1, 1, 2])),
        }
        if rng.random() < 0.2:  # a lab that reports in µmol/L
            facts["serum_creatinine_umol_l"] = (scr_mg_dl * Decimal("88.4")).quantize(Decimal(1))
        else:
            facts["serum_creatinine_mg_dl"] = scr_mg_dl
        if rng.random() < 0.04:
            facts.pop("serum_creatinine_mg_dl", None)
            facts.pop("serum_creatinine_umol_l", None)
            facts["creatinine_measured_at"] = None
        if rng.random() < 0.04:
            facts["weight_kg"] = None
            facts["weight_measured_at"] = None
        drug = rng.choice(list(_REGIMENS))
        dose, frequency = rng.choice(_REGIMENS[drug])
        order = {
            "drug": drug,
            "dose_mg": Decimal(dose),
            "frequency": frequency,
            "indication": rng.choice(_INDICATIONS),
        }
        cases.append((facts, order))
    return cases
