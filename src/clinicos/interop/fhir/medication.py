"""What ``MedicationRequest`` and ``MedicationStatement`` share: the drug
(``medicationCodeableConcept``: an RxNorm or ATC coding) and the first dosage (dose quantity,
frequency from ``timing``, route) ↔ the record's medication fields.

Frequencies are stored as the HL7 v3 GTS abbreviations decision support reads (``QD``, ``BID``,
``TID``, ``QID``, ``Q<n>H``, ``QW``): from ``timing.code`` when the client sends one, else
derived from ``timing.repeat`` (``frequency`` per ``period`` ``periodUnit``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from clinicos.interop.fhir.base import coding, fhir_decimal
from clinicos.interop.fhir.outcome import invalid
from clinicos.records import MEDICATION_CODE_SYSTEMS

GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
# Administrations per day → GTS abbreviation.
_PER_DAY = {1: "QD", 2: "BID", 3: "TID", 4: "QID"}
# GTS abbreviation → timing.repeat (frequency, period, periodUnit), for the ones we write back.
_REPEAT = {
    "QD": (1, 1, "d"),
    "BID": (2, 1, "d"),
    "TID": (3, 1, "d"),
    "QID": (4, 1, "d"),
    "QW": (1, 1, "wk"),
}
# SNOMED CT route of administration concepts (Route of administration value set, SNOMED CT
# 284009009 descendants) for the routes we store as words.
ROUTES = {
    "26643006": "oral",
    "47625008": "intravenous",
    "34206005": "subcutaneous",
    "78421000": "intramuscular",
    "37161004": "rectal",
    "45890007": "transdermal",
    "46713006": "nasal",
    "37839007": "sublingual",
}
_ROUTE_CODES = {word: code for code, word in ROUTES.items()}


def drug_of(concept: Any, path: str) -> tuple[str, str, str]:
    """``(system, code, display)`` of ``medicationCodeableConcept``: its first RxNorm or ATC
    coding; the display falls back to the concept's text."""
    if concept is None:
        raise invalid(path, "a coded medication (RxNorm or ATC) is required")
    for entry in concept.coding or []:
        if entry.system in MEDICATION_CODE_SYSTEMS and entry.code:
            display = entry.display or concept.text or entry.code
            return str(entry.system), str(entry.code), str(display)[:200]
    raise invalid(f"{path}.coding", "an RxNorm or ATC coding is required")


def frequency_of(timing: Any, path: str) -> str | None:
    """A GTS abbreviation for a dosage's ``timing`` (None when there is no timing)."""
    if timing is None:
        return None
    if timing.code is not None:
        for entry in timing.code.coding or []:
            if entry.code:
                return str(entry.code).strip().upper()[:32]
        if timing.code.text:
            return str(timing.code.text).strip().upper()[:32]
    repeat = timing.repeat
    if repeat is None or repeat.frequency is None or repeat.period is None:
        return None
    times, period, unit = int(repeat.frequency), Decimal(str(repeat.period)), repeat.periodUnit
    if unit == "d" and period == 1 and times in _PER_DAY:
        return _PER_DAY[times]
    if unit == "h" and times == 1 and period == period.to_integral_value():
        return f"Q{int(period)}H"
    if unit == "wk" and period == 1 and times == 1:
        return "QW"
    raise invalid(f"{path}.timing.repeat", "give timing.code (GTS abbreviation) for this frequency")


def route_of(concept: Any) -> str | None:
    """A route word (``oral``) from a SNOMED CT coding, else the concept's display or text."""
    if concept is None:
        return None
    for entry in concept.coding or []:
        if entry.system == SNOMED and entry.code in ROUTES:
            return ROUTES[entry.code]
    for entry in concept.coding or []:
        if entry.display:
            return str(entry.display).strip().lower()[:32]
    return str(concept.text).strip().lower()[:32] if concept.text else None


def dosage_of(dosage: Any, path: str) -> dict[str, Any]:
    """Dose, dose unit, frequency and route of the first Dosage (model or None)."""
    if dosage is None:
        return {"dose": None, "dose_unit": None, "frequency": None, "route": None}
    dose = dose_unit = None
    for index, rate in enumerate(dosage.doseAndRate or []):
        quantity = rate.doseQuantity
        if quantity is not None and quantity.value is not None:
            dose = Decimal(str(quantity.value))
            dose_unit = quantity.code or quantity.unit
            if not dose_unit:
                raise invalid(
                    f"{path}.doseAndRate[{index}].doseQuantity.code", "a dose needs its unit"
                )
            break
    return {
        "dose": dose,
        "dose_unit": dose_unit,
        "frequency": frequency_of(dosage.timing, path),
        "route": route_of(dosage.route),
    }


def medication_json(row: Any) -> dict[str, Any]:
    """``medicationCodeableConcept`` of a stored medication."""
    return {
        "coding": [coding(row.code_system, row.code, row.display)],
        "text": row.display,
    }


def dosage_json(row: Any) -> list[dict[str, Any]]:
    """``dosageInstruction`` / ``dosage`` of a stored medication (empty when it has none)."""
    dosage: dict[str, Any] = {}
    if row.frequency:
        timing: dict[str, Any] = {"code": {"coding": [coding(GTS, row.frequency)]}}
        if row.frequency in _REPEAT:
            times, period, unit = _REPEAT[row.frequency]
            timing["repeat"] = {"frequency": times, "period": period, "periodUnit": unit}
        dosage["timing"] = timing
    if row.route:
        code = _ROUTE_CODES.get(row.route)
        dosage["route"] = (
            {"coding": [coding(SNOMED, code, row.route)], "text": row.route}
            if code
            else {"text": row.route}
        )
    if row.dose is not None and row.dose_unit:
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": fhir_decimal(row.dose),
                    "unit": row.dose_unit,
                    "system": UCUM,
                    "code": row.dose_unit,
                }
            }
        ]
    return [dosage] if dosage else []
