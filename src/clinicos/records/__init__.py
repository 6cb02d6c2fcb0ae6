"""The clinical record: patients, encounters, notes, observations, conditions, allergies,
the medication list and prescriptions, with identifying fields encrypted at rest.

This module is the record's public face: other contexts (interop, cds, governance, console)
import from here only."""

from clinicos.records.errors import (
    DuplicateMrn,
    InvalidTransition,
    NoteNotEditable,
    PatientNotFound,
    RecordNotFound,
    VersionConflict,
)
from clinicos.records.services.encounters import (
    EncounterFields,
    EncounterView,
    add_encounter,
    get_encounter,
    list_encounters,
    record_encounter,
    update_encounter,
)
from clinicos.records.services.lookup import patient_of_entry
from clinicos.records.services.patients import (
    Address,
    InvalidCursor,
    PatientFields,
    PatientPage,
    PatientSearch,
    PatientView,
    add_patient,
    get_patient,
    register_patient,
    search_patients,
    update_patient,
)

__all__ = [
    "Address",
    "DuplicateMrn",
    "EncounterFields",
    "EncounterView",
    "InvalidCursor",
    "InvalidTransition",
    "NoteNotEditable",
    "PatientFields",
    "PatientNotFound",
    "PatientPage",
    "PatientSearch",
    "PatientView",
    "RecordNotFound",
    "VersionConflict",
    "add_encounter",
    "add_patient",
    "get_encounter",
    "get_patient",
    "list_encounters",
    "patient_of_entry",
    "record_encounter",
    "register_patient",
    "search_patients",
    "update_encounter",
    "update_patient",
]
