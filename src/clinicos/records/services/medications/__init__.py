"""The medication list (FHIR ``MedicationStatement``) and prescriptions (``MedicationRequest``):
record, read, list, update; a prescription's lifecycle draft → active → completed | cancelled.

Issuing passes through one hook, :class:`PrescriptionCheck`: the seam where decision support
examines the order (and may refuse it) inside the issuing transaction. ``add_prescription`` /
``add_medication_statement`` work inside a caller's unit of work (imports)."""

from clinicos.records.services.medications.prescriptions import (
    PRESCRIPTION_TRANSITIONS,
    PrescriptionCheck,
    PrescriptionFields,
    PrescriptionNotEditable,
    PrescriptionRefused,
    PrescriptionStatus,
    add_prescription,
    allow_every_prescription,
    cancel_prescription,
    complete_prescription,
    create_prescription,
    get_prescription,
    issue_prescription,
    list_prescriptions,
    restate_prescription,
    update_prescription,
)
from clinicos.records.services.medications.statements import (
    MEDICATION_CODE_SYSTEMS,
    MedicationFields,
    StatementFields,
    StatementStatus,
    add_medication_statement,
    get_medication,
    list_medications,
    record_medication,
    update_medication,
)

__all__ = [
    "MEDICATION_CODE_SYSTEMS",
    "PRESCRIPTION_TRANSITIONS",
    "MedicationFields",
    "PrescriptionCheck",
    "PrescriptionFields",
    "PrescriptionNotEditable",
    "PrescriptionRefused",
    "PrescriptionStatus",
    "StatementFields",
    "StatementStatus",
    "add_medication_statement",
    "add_prescription",
    "allow_every_prescription",
    "cancel_prescription",
    "complete_prescription",
    "create_prescription",
    "get_medication",
    "get_prescription",
    "issue_prescription",
    "list_medications",
    "list_prescriptions",
    "record_medication",
    "restate_prescription",
    "update_medication",
    "update_prescription",
]
