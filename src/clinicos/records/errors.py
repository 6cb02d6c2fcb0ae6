"""The record's domain errors (rendered as problem+json; messages never carry PHI)."""

from __future__ import annotations

from clinicos.kernel.errors import Conflict, NotFound


# Both keep the generic `not_found` code: another tenant's object must answer exactly like one
# that does not exist (the tenant-isolation suite compares code, title and detail).
class PatientNotFound(NotFound):
    title = "Patient not found"


class RecordNotFound(NotFound):
    title = "Record entry not found"


class DuplicateMrn(Conflict):
    code = "patient_mrn_taken"
    title = "Another patient of this organization has this MRN"


class VersionConflict(Conflict):
    code = "version_conflict"
    title = "The record changed since it was read"


class InvalidTransition(Conflict):
    code = "invalid_status_transition"
    title = "This status change is not allowed"


class NoteNotEditable(Conflict):
    code = "note_not_editable"
    title = "A final note is immutable; write an addendum"
