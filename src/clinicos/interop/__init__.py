"""Interoperability: the FHIR R4 facade over the record (read, search, create, update,
transaction/batch bundles, ``$everything``) and bulk import of Synthea-shaped bundles."""
