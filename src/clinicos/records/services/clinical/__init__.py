"""Observations, conditions and allergies: record, read, list, update — each entry checked
against the terminology it is coded in, one audit entry per access to the patient.

``add_observation`` / ``add_condition`` / ``add_allergy`` work inside a caller's unit of work
(FHIR transactions, imports); the other use cases open and commit their own.
``latest_observations`` is the read decision support uses for a patient's newest usable
weight, creatinine, INR … One module per family; this package root is what callers import."""

from clinicos.records.services.clinical.allergies import (
    ALLERGY_CODE_SYSTEMS,
    AllergyCategory,
    AllergyClinicalStatus,
    AllergyFields,
    AllergyVerificationStatus,
    Criticality,
    add_allergy,
    get_allergy,
    list_allergies,
    record_allergy,
    update_allergy,
)
from clinicos.records.services.clinical.conditions import (
    ConditionClinicalStatus,
    ConditionFields,
    ConditionVerificationStatus,
    add_condition,
    get_condition,
    list_conditions,
    record_condition,
    update_condition,
)
from clinicos.records.services.clinical.observation_rules import (
    BP_PANEL,
    DIASTOLIC,
    PLAUSIBLE_RANGES,
    RELEASED,
    SYSTOLIC,
    Component,
    ObservationCategory,
    ObservationFields,
    ObservationStatus,
    observation_problems,
)
from clinicos.records.services.clinical.observations import (
    LatestObservation,
    ObservationFilter,
    add_observation,
    get_observation,
    latest_observations,
    list_observations,
    record_observation,
    update_observation,
)
from clinicos.records.services.terminology import LOINC

__all__ = [
    "ALLERGY_CODE_SYSTEMS",
    "BP_PANEL",
    "DIASTOLIC",
    "LOINC",
    "PLAUSIBLE_RANGES",
    "RELEASED",
    "SYSTOLIC",
    "AllergyCategory",
    "AllergyClinicalStatus",
    "AllergyFields",
    "AllergyVerificationStatus",
    "Component",
    "ConditionClinicalStatus",
    "ConditionFields",
    "ConditionVerificationStatus",
    "Criticality",
    "LatestObservation",
    "ObservationCategory",
    "ObservationFields",
    "ObservationFilter",
    "ObservationStatus",
    "add_allergy",
    "add_condition",
    "add_observation",
    "get_allergy",
    "get_condition",
    "get_observation",
    "latest_observations",
    "list_allergies",
    "list_conditions",
    "list_observations",
    "observation_problems",
    "record_allergy",
    "record_condition",
    "record_observation",
    "update_allergy",
    "update_condition",
    "update_observation",
]
