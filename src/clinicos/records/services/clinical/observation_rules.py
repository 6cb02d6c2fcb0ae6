"""Observation rules: the vocabulary, the status lifecycle, which value forms go together and
which quantities are plausible — plain functions over plain data (no database access), so the API,
imports and tests share one rule set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from clinicos.kernel.errors import FieldError
from clinicos.records.errors import InvalidTransition
from clinicos.records.services.entries import CLOCK_SKEW, aware_utc
from clinicos.records.services.terminology import (
    LOINC,
    MEASUREMENT_INTEGER_DIGITS,
    code_problem,
    is_loinc_code,
    magnitude_problem,
    normalise_unit,
    plain_decimal,
)

# LOINC 85354-9 "Blood pressure panel": its value is in the components (terminology.md).
BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"

ObservationStatus = Literal[
    "registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error"
]
# FHIR observation-category (http://terminology.hl7.org/CodeSystem/observation-category).
ObservationCategory = Literal[
    "vital-signs",
    "laboratory",
    "social-history",
    "imaging",
    "procedure",
    "survey",
    "exam",
    "therapy",
    "activity",
]

# Results a clinician may act on; decision support reads only these.
RELEASED: frozenset[str] = frozenset({"final", "amended", "corrected"})
# FHIR Observation.status lifecycle: a released result is amended or corrected, never taken
# back to preliminary; cancelled and entered-in-error are ends.
OBSERVATION_TRANSITIONS: dict[str, frozenset[str]] = {
    "registered": frozenset({"preliminary", "final", "cancelled", "entered-in-error"}),
    "preliminary": frozenset({"final", "cancelled", "entered-in-error"}),
    "final": frozenset({"amended", "corrected", "entered-in-error"}),
    "amended": frozenset({"corrected", "entered-in-error"}),
    "corrected": frozenset({"amended", "entered-in-error"}),
    "cancelled": frozenset({"entered-in-error"}),
    "entered-in-error": frozenset(),
}
# Statuses that may carry no value (ordered but not resulted yet, or called off).
VALUE_OPTIONAL: frozenset[str] = frozenset({"registered", "cancelled", "entered-in-error"})

# Plausible ranges, per UCUM unit, of the quantities decision support computes on: they refuse
# impossible values (a unit typo, a negative weight), not rare ones. 500 kg is the engine's own
# input bound (cds MAX_WEIGHT_KG); 1 [lb_av] = 0.45359237 kg (terminology.md); creatinine
# 40 mg/dL ≈ 3540 umol/L (÷ 88.4); blood pressures beyond any recorded survivable value.
_INR = {"{INR}": Decimal(20), "{ratio}": Decimal(20), "1": Decimal(20)}
PLAUSIBLE_RANGES: dict[str, dict[str, Decimal]] = {
    "29463-7": {"kg": Decimal(500), "g": Decimal(500_000), "[lb_av]": Decimal(1102)},
    "8302-2": {"cm": Decimal(300), "m": Decimal(3), "[in_i]": Decimal(118)},
    "2160-0": {"mg/dL": Decimal(40)},
    "14682-9": {"umol/L": Decimal(3540)},
    "6301-6": _INR,
    "34714-6": _INR,
    SYSTOLIC: {"mm[Hg]": Decimal(400)},
    DIASTOLIC: {"mm[Hg]": Decimal(300)},
}


@dataclass(frozen=True, kw_only=True)
class Component:
    """One part of a panel's value (blood pressure: systolic 8480-6, diastolic 8462-4)."""

    code: str
    value: Decimal
    unit: str
    display: str | None = None

    def to_json(self) -> dict[str, Any]:
        # The value as exact decimal text: a JSON number would come back as a float.
        data = {"code": self.code, "value": str(self.value), "unit": self.unit}
        return data | ({"display": self.display} if self.display else {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Component:
        return cls(
            code=data["code"],
            value=plain_decimal(Decimal(str(data["value"]))) or Decimal(0),
            unit=data["unit"],
            display=data.get("display"),
        )


@dataclass(frozen=True, kw_only=True)
class ObservationFields:
    """A measurement as the caller gives it: a quantity (``value`` + UCUM ``unit``), a
    ``value_text`` or ``components``. ``effective_at``: when the sample was collected or the
    measurement taken; ``issued_at``: when the result was released."""

    code: str
    category: ObservationCategory
    status: ObservationStatus
    effective_at: datetime
    code_system: str = LOINC
    display: str | None = None
    value: Decimal | None = None
    unit: str | None = None
    value_text: str | None = None
    components: tuple[Component, ...] = ()
    issued_at: datetime | None = None
    encounter_id: str | None = None

    def measurement(self) -> tuple[Any, ...]:
        return (self.value, self.unit, self.value_text, self.components)


def normalise_observation(values: ObservationFields) -> ObservationFields:
    return replace(
        values,
        effective_at=aware_utc(values.effective_at, "effective_at"),
        issued_at=aware_utc(values.issued_at, "issued_at") if values.issued_at else None,
        value=plain_decimal(values.value),
        unit=normalise_unit(values.unit),
        components=tuple(
            replace(c, value=plain_decimal(c.value) or c.value, unit=normalise_unit(c.unit) or "")
            for c in values.components
        ),
    )


def observation_problems(values: ObservationFields, now: datetime) -> list[FieldError]:
    """Everything wrong with an observation (empty when it may be stored)."""
    errors: list[FieldError] = []
    if values.status not in OBSERVATION_TRANSITIONS:
        errors.append(FieldError(("status",), "not an Observation status", "enum"))
    if values.category not in get_args(ObservationCategory):
        errors.append(FieldError(("category",), "not an observation category", "enum"))
    problem = code_problem(values.code_system, values.code)
    if problem is not None:
        errors.append(problem)
    if values.effective_at > now + CLOCK_SKEW:
        errors.append(FieldError(("effective_at",), "may not be in the future", "future"))
    if values.issued_at is not None:
        if values.issued_at < values.effective_at:
            errors.append(
                FieldError(("issued_at",), "may not be before effective_at", "before_effective")
            )
        elif values.issued_at > now + CLOCK_SKEW:
            errors.append(FieldError(("issued_at",), "may not be in the future", "future"))
    return errors + _value_problems(values)


def _value_problems(values: ObservationFields) -> list[FieldError]:
    present = {
        "value": values.value is not None,
        "value_text": values.value_text is not None,
        "components": bool(values.components),
    }
    forms = [name for name, given in present.items() if given]
    too_large = magnitude_problem(values.value, ("value",), MEASUREMENT_INTEGER_DIGITS)
    if too_large is not None:
        return [too_large]
    if len(forms) > 1:
        return [FieldError((forms[1],), f"give only one of {', '.join(forms)}", "value_form")]
    if values.unit is not None and values.value is None:
        return [FieldError(("unit",), "a unit belongs to a quantity value", "value_form")]
    if values.value is not None and values.unit is None:
        return [FieldError(("unit",), "a quantity value needs its UCUM unit", "missing")]
    is_panel = values.code_system == LOINC and values.code == BP_PANEL
    if is_panel and (values.value is not None or values.value_text is not None):
        return [FieldError((forms[0],), "a blood pressure panel's value is its components")]
    if not forms and values.status not in VALUE_OPTIONAL:
        field = "components" if is_panel else "value"
        return [FieldError((field,), f"a {values.status} observation needs a value", "missing")]
    errors: list[FieldError] = []
    if values.value is not None and values.unit is not None and values.code_system == LOINC:
        errors += _quantity_problems(values.code, values.value, values.unit, ())
    return errors + _component_problems(values.components, panel=is_panel)


def _quantity_problems(
    code: str, value: Decimal, unit: str, loc: tuple[str | int, ...]
) -> list[FieldError]:
    ranges = PLAUSIBLE_RANGES.get(code)
    if ranges is None:
        return []
    if unit not in ranges:
        return [FieldError((*loc, "unit"), f"one of {sorted(ranges)} for this code", "unit")]
    if not Decimal(0) < value <= ranges[unit]:
        limit = f"above 0 and at most {ranges[unit]} {unit}"
        return [FieldError((*loc, "value"), f"must be {limit}", "range")]
    return []


def _component_problems(components: Sequence[Component], *, panel: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    by_code: dict[str, Component] = {}
    for index, component in enumerate(components):
        loc: tuple[str | int, ...] = ("components", index)
        too_large = magnitude_problem(component.value, (*loc, "value"), MEASUREMENT_INTEGER_DIGITS)
        if too_large is not None:
            errors.append(too_large)
            continue
        if not is_loinc_code(component.code):
            errors.append(FieldError((*loc, "code"), "not a valid LOINC code", "code_invalid"))
        elif component.code in by_code:
            errors.append(FieldError((*loc, "code"), "appears twice", "duplicate"))
        by_code[component.code] = component
        errors += _quantity_problems(component.code, component.value, component.unit, loc)
    if panel and components:
        missing = [code for code in (SYSTOLIC, DIASTOLIC) if code not in by_code]
        if missing:
            errors.append(FieldError(("components",), f"the panel needs {missing}", "missing"))
        elif not errors and by_code[SYSTOLIC].value <= by_code[DIASTOLIC].value:
            errors.append(FieldError(("components",), "systolic must exceed diastolic", "range"))
    return errors


def next_status(current: ObservationFields, updated: ObservationFields, explicit: bool) -> Any:
    remeasured = updated.measurement() != current.measurement()
    status: str = updated.status
    if remeasured and current.status in RELEASED:
        if not explicit:
            status = "amended"
        elif status not in ("amended", "corrected"):
            raise InvalidTransition("a released result given a new value is amended or corrected")
    if status != current.status and status not in OBSERVATION_TRANSITIONS[current.status]:
        raise InvalidTransition(f"an observation cannot go from {current.status} to {status}")
    ended = status == current.status and status in ("cancelled", "entered-in-error")
    if ended and updated != current:
        raise InvalidTransition(f"an observation that is {status} cannot be changed")
    return status
