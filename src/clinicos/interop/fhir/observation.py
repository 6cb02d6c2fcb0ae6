"""FHIR ``Observation`` ↔ the record's observation.

``status``, the first ``category`` coding of the observation-category system, ``code`` (its
LOINC coding, else its first coding), ``effective[x]`` (dateTime, instant, or a period's start:
when the sample was collected — what freshness rules use), ``issued``, and one value form:
``valueQuantity`` (value + UCUM code or unit), ``valueString`` / ``valueCodeableConcept`` (as
text) or ``component`` quantities (blood pressure). Other elements (performer, interpretation,
referenceRange, notes …) are not stored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhir.resources.R4B.observation import Observation as FhirObservation

from clinicos.interop.fhir.base import (
    Resolver,
    concept,
    fhir_decimal,
    fhir_instant,
    instant,
    meta,
    optional_reference,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.entry_resource import EntryResource, EntryUseCases
from clinicos.interop.fhir.outcome import invalid
from clinicos.records import (
    LOINC,
    Component,
    ObservationFields,
    add_observation,
    get_observation,
    list_observations,
    record_observation,
    update_observation,
)

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
# Where each record field came from, for errors the record's rules report.
PATHS = {
    "status": "Observation.status",
    "category": "Observation.category",
    "code": "Observation.code",
    "code_system": "Observation.code",
    "display": "Observation.code",
    "effective_at": "Observation.effectiveDateTime",
    "issued_at": "Observation.issued",
    "value": "Observation.valueQuantity.value",
    "unit": "Observation.valueQuantity.code",
    "value_text": "Observation.valueString",
    "components": "Observation.component",
    "encounter_id": "Observation.encounter",
}


def _quantity(value: Decimal, unit: str) -> dict[str, Any]:
    return {"value": fhir_decimal(value), "unit": unit, "system": UCUM, "code": unit}


def to_fhir(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": row.id,
        "meta": meta(row.version, row.updated_at),
        "status": row.status,
        "category": [concept(CATEGORY_SYSTEM, row.category)],
        "code": concept(row.code_system, row.code, row.display),
        "subject": {"reference": f"Patient/{row.patient_id}"},
        "effectiveDateTime": fhir_instant(row.effective_at),
    }
    if row.display:
        resource["code"]["text"] = row.display
    if row.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    if row.issued_at is not None:
        resource["issued"] = fhir_instant(row.issued_at)
    if row.value is not None and row.unit is not None:
        resource["valueQuantity"] = _quantity(row.value, row.unit)
    elif row.value_text is not None:
        resource["valueString"] = row.value_text
    components = [Component.from_json(c) for c in row.components or ()]
    if components:
        resource["component"] = [
            {
                "code": concept(LOINC, c.code, c.display),
                "valueQuantity": _quantity(c.value, c.unit),
            }
            for c in components
        ]
    return resource


def _code(observation: FhirObservation) -> tuple[str, str, str | None]:
    """``(system, code, display)``: the LOINC coding if there is one, else the first."""
    chosen = None
    # Required elements may still arrive as null (fhir.resources lets an explicit null through).
    concept = observation.code
    for coding in (concept.coding if concept else None) or []:
        if coding.code and (chosen is None or (coding.system == LOINC and chosen.system != LOINC)):
            chosen = coding
    if chosen is None:
        raise invalid("Observation.code.coding", "a coded observation (LOINC) is required")
    display = chosen.display or (concept.text if concept else None)
    return chosen.system or "", str(chosen.code), display and display[:200]


def _category(observation: FhirObservation) -> str:
    for category in observation.category or []:
        for coding in category.coding or []:
            if coding.system == CATEGORY_SYSTEM and coding.code:
                return str(coding.code)
    raise invalid(
        "Observation.category",
        f"a category of {CATEGORY_SYSTEM} is required (vital-signs, laboratory …)",
    )


def _effective(observation: FhirObservation) -> Any:
    if observation.effectiveDateTime is not None:
        return instant(observation.effectiveDateTime, "Observation.effectiveDateTime")
    if observation.effectiveInstant is not None:
        return instant(observation.effectiveInstant, "Observation.effectiveInstant")
    if observation.effectivePeriod is not None and observation.effectivePeriod.start is not None:
        return instant(observation.effectivePeriod.start, "Observation.effectivePeriod.start")
    raise invalid(
        "Observation.effectiveDateTime", "when the sample was collected or measured is required"
    )


def _quantity_of(quantity: Any, path: str) -> tuple[Decimal, str]:
    if quantity.value is None:
        raise invalid(f"{path}.value", "a quantity needs a value")
    unit = quantity.code or quantity.unit
    if not unit:
        raise invalid(f"{path}.code", "a quantity needs a UCUM unit")
    return Decimal(str(quantity.value)), str(unit)


def _concept_text(value: Any) -> str | None:
    if value.text:
        return str(value.text)
    for coding in value.coding or []:
        if coding.display or coding.code:
            return str(coding.display or coding.code)
    return None


def from_fhir(data: Any, resolver: Resolver | None = None) -> tuple[str, ObservationFields]:
    """``(patient id, fields)`` of a FHIR Observation; 422 naming the element otherwise."""
    observation = validate_model(FhirObservation, "Observation", data)
    patient_id = reference_id(
        observation.subject.reference if observation.subject else None,
        "Patient",
        "Observation.subject",
        resolver,
    )
    system, code, display = _code(observation)
    value = unit = value_text = None
    if observation.valueQuantity is not None:
        value, unit = _quantity_of(observation.valueQuantity, "Observation.valueQuantity")
    elif observation.valueString is not None:
        value_text = observation.valueString[:200]
    elif observation.valueCodeableConcept is not None:
        text = _concept_text(observation.valueCodeableConcept)
        value_text = text and text[:200]
    elif observation.valueInteger is not None:
        value, unit = Decimal(observation.valueInteger), "1"
    components = []
    for index, component in enumerate(observation.component or []):
        path = f"Observation.component[{index}]"
        codings = (component.code.coding if component.code else None) or []
        component_code = next((c for c in codings if c.code), None)
        if component_code is None or component.valueQuantity is None:
            raise invalid(path, "a component needs a coded quantity")
        component_value, component_unit = _quantity_of(
            component.valueQuantity, f"{path}.valueQuantity"
        )
        components.append(
            Component(
                code=str(component_code.code),
                value=component_value,
                unit=component_unit,
                display=component_code.display and component_code.display[:200],
            )
        )
    encounter_id = optional_reference(
        observation.encounter, "Encounter", "Observation.encounter", resolver
    )
    return patient_id, ObservationFields(
        code=code,
        code_system=system,
        display=display,
        category=_category(observation),  # type: ignore[arg-type]
        status=observation.status,  # type: ignore[arg-type]
        effective_at=_effective(observation),
        issued_at=instant(observation.issued, "Observation.issued") if observation.issued else None,
        value=value,
        unit=unit,
        value_text=value_text,
        components=tuple(components),
        encounter_id=encounter_id,
    )


OBSERVATION = EntryResource(
    name="Observation",
    kind="observation",
    subject="subject",
    search_parameters=("patient", "subject", "code", "date", "status"),
    to_fhir=to_fhir,
    from_fhir=from_fhir,
    paths=PATHS,
    use_cases=EntryUseCases(
        get=get_observation,
        list=list_observations,
        record=record_observation,
        update=update_observation,
        add=add_observation,
        id_arg="observation_id",
        criteria_arg="search",
    ),
)
