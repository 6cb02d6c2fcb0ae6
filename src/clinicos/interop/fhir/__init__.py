"""FHIR R4 (validated with the R4B models of ``fhir.resources``, identical for the resources
we serve): mappings, search parameters, bundles and the CapabilityStatement."""
