"""The resource types the facade serves, by FHIR name (what routes, bundles and the
CapabilityStatement are built from)."""

from __future__ import annotations

from clinicos.interop.fhir.allergy import ALLERGY_INTOLERANCE
from clinicos.interop.fhir.base import ResourceType
from clinicos.interop.fhir.condition import CONDITION
from clinicos.interop.fhir.consent import ConsentResource
from clinicos.interop.fhir.encounter import EncounterResource
from clinicos.interop.fhir.medication_request import MEDICATION_REQUEST
from clinicos.interop.fhir.medication_statement import MEDICATION_STATEMENT
from clinicos.interop.fhir.observation import OBSERVATION
from clinicos.interop.fhir.patient import PatientResource

RESOURCE_TYPES: dict[str, ResourceType] = {
    handler.name: handler
    for handler in (
        PatientResource(),
        EncounterResource(),
        OBSERVATION,
        CONDITION,
        ALLERGY_INTOLERANCE,
        MEDICATION_REQUEST,
        MEDICATION_STATEMENT,
        ConsentResource(),
    )
}
