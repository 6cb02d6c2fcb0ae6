"""The record's domain events: ids, resource types and field names only, never PHI."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class PatientRegistered(DomainEvent):
    event_type = "records.PatientRegistered"
    patient_id: str


@dataclass(frozen=True, kw_only=True)
class PatientUpdated(DomainEvent):
    """``fields`` names what changed (``phone``, ``address`` …), never the values."""

    event_type = "records.PatientUpdated"
    patient_id: str
    fields: list[str]


@dataclass(frozen=True, kw_only=True)
class EntryRecorded(DomainEvent):
    """A clinical entry of a patient was created or changed.

    ``resource_type`` is the FHIR name (``Observation``, ``Condition`` …); ``change`` is
    ``created``, ``updated`` or the new status (``final``, ``active``, ``cancelled`` …)."""

    event_type = "records.EntryRecorded"
    patient_id: str
    resource_type: str
    resource_id: str
    change: str
