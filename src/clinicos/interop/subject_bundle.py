"""A patient's data as one FHIR R4 ``collection`` Bundle, for data-subject requests (access
report and portability export): the same resource mappings the facade serves (and
``Patient/$everything`` returns), plus final notes as ``DocumentReference``, consent decisions as
``Consent`` and, for the access report, who accessed the record as ``AuditEvent``.

Pure mapping over what the caller already read in its unit of work (records' ``SubjectRecord``,
governance's consent history and audit entries): no database, no audit — the caller audits the
disclosure."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from clinicos.governance import ConsentView
from clinicos.interop.fhir import (
    allergy,
    condition,
    consent,
    encounter,
    medication_request,
    medication_statement,
    observation,
    patient,
)
from clinicos.interop.fhir.base import fhir_instant, meta
from clinicos.records import SubjectRecord

REQUEST_SYSTEM = "https://clinicos.dev/fhir/sid/data-request"
USER_SYSTEM = "https://clinicos.dev/fhir/sid/user"
ACTION_SYSTEM = "https://clinicos.dev/fhir/CodeSystem/audit-action"
PURPOSE_SYSTEM = "https://clinicos.dev/fhir/CodeSystem/audit-purpose"
# DICOM audit event type 110110 "Patient Record": an access to a patient's record.
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
# AuditEvent.outcome (R4): 0 success, 4 minor failure (our "denied"), 8 serious failure.
_OUTCOMES = {"success": "0", "denied": "4", "failure": "8"}
_ACTIONS = {
    "create": "C",
    "read": "R",
    "list": "R",
    "search": "R",
    "subject_read": "R",
    "update": "U",
}


class AccessEntry(Protocol):
    """One audit-trail row about the patient (governance's ``AuditEvent`` fits)."""

    id: str
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    purpose: str | None
    outcome: str


def note_to_fhir(note: Any) -> dict[str, Any]:
    """A final clinical note as an R4 ``DocumentReference`` (US Core's shape for notes): the
    text as a plain-text attachment; an addendum ``appends`` the note it amends."""
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": note.id,
        "meta": meta(note.version, note.updated_at),
        "status": "current",
        "docStatus": "final",
        "type": {"text": note.kind},
        "subject": {"reference": f"Patient/{note.patient_id}"},
        "author": [{"identifier": {"system": USER_SYSTEM, "value": note.author_id}}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(note.text.encode("utf-8")).decode("ascii"),
                }
            }
        ],
    }
    if note.finalized_at is not None:
        resource["date"] = fhir_instant(note.finalized_at)
    if note.amends_note_id:
        resource["relatesTo"] = [
            {"code": "appends", "target": {"reference": f"DocumentReference/{note.amends_note_id}"}}
        ]
    if note.encounter_id:
        resource["context"] = {"encounter": [{"reference": f"Encounter/{note.encounter_id}"}]}
    return resource


def access_to_fhir(entry: AccessEntry, patient_id: str) -> dict[str, Any]:
    """One audit-trail row about the patient as an R4 ``AuditEvent``: who (the member's or
    system's id, never a name), what (our action code), when, why, with what outcome."""
    verb = entry.action.rpartition(".")[2]
    who: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": entry.actor_id}}
    if entry.actor_id is None:
        who = {"display": entry.actor_type}
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": entry.id,
        "type": {"system": DICOM, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": ACTION_SYSTEM, "code": entry.action}],
        "action": _ACTIONS.get(verb, "E"),
        "recorded": fhir_instant(entry.occurred_at),
        "outcome": _OUTCOMES.get(entry.outcome, "8"),
        "agent": [
            {
                "type": {"text": entry.actor_type},
                "who": who,
                "requestor": entry.actor_type in ("user", "service"),
            }
        ],
        "source": {"observer": {"display": "clinicos"}},
        "entity": [{"what": {"reference": f"Patient/{patient_id}"}}],
    }
    if entry.purpose:
        purpose = {"system": PURPOSE_SYSTEM, "code": entry.purpose}
        resource["purposeOfEvent"] = [{"coding": [purpose]}]
    return resource


def _consents(history: Sequence[ConsentView]) -> list[dict[str, Any]]:
    """Newest first in ``history``: the first decision per purpose is in force, the rest are
    replaced (status ``inactive``), as the facade's ``Consent`` search says."""
    current: set[str] = set()
    resources = []
    for view in history:
        resources.append(consent.to_fhir(view, replaced=view.purpose in current))
        current.add(view.purpose)
    return resources


def record_resources(record: SubjectRecord) -> list[dict[str, Any]]:
    """Every resource of the patient's record, Patient first."""
    resources = [patient.to_fhir(record.patient)]
    resources += [encounter.to_fhir(e) for e in record.encounters]
    resources += [note_to_fhir(n) for n in record.notes]
    resources += [observation.to_fhir(r) for r in record.observations]
    resources += [condition.to_fhir(r) for r in record.conditions]
    resources += [allergy.to_fhir(r) for r in record.allergies]
    resources += [medication_statement.to_fhir(r) for r in record.medications]
    resources += [medication_request.to_fhir(r) for r in record.prescriptions]
    return resources


def subject_bundle(
    record: SubjectRecord,
    *,
    consents: Sequence[ConsentView],
    accesses: Iterable[AccessEntry] = (),
    base_url: str,
    request_id: str,
    generated_at: datetime,
) -> dict[str, Any]:
    """A ``collection`` Bundle of the patient's record, consent decisions and (access report)
    the accesses to it; ``identifier`` names the data-subject request it answers."""
    resources = record_resources(record) + _consents(consents)
    resources += [access_to_fhir(a, record.patient.id) for a in accesses]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "identifier": {"system": REQUEST_SYSTEM, "value": request_id},
        "type": "collection",
        "timestamp": fhir_instant(generated_at),
        "entry": [
            {"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }
