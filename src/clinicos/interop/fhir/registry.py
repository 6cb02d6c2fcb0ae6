"""The resource types the facade serves, by FHIR name (what routes, bundles and the
CapabilityStatement are built from)."""

from __future__ import annotations

from clinicos.interop.fhir.base import ResourceType
from clinicos.interop.fhir.encounter import EncounterResource
from clinicos.interop.fhir.patient import PatientResource

RESOURCE_TYPES: dict[str, ResourceType] = {
    handler.name: handler for handler in (PatientResource(), EncounterResource())
}
