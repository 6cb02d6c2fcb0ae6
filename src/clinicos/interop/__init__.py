"""Interoperability: the FHIR R4 facade over the record (read, search, create, update,
transaction/batch bundles, ``$everything``) and bulk import of Synthea-shaped bundles.

Other contexts import from here only: ``subject_bundle`` (a patient's data as one FHIR
``collection`` Bundle, for data-subject requests)."""

from clinicos.interop.subject_bundle import subject_bundle

__all__ = ["subject_bundle"]
