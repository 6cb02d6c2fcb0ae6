"""Governance's domain events (ids and codes only)."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ConsentRecorded(DomainEvent):
    """A patient's consent decision for one purpose was recorded (messaging, research exports
    and the assistant react: a revocation stops what was queued)."""

    event_type = "governance.ConsentRecorded"
    consent_id: str
    patient_id: str
    purpose: str
    decision: str


@dataclass(frozen=True, kw_only=True)
class FeatureFlagChanged(DomainEvent):
    """An administrator turned a feature flag on or off for the organization."""

    event_type = "governance.FeatureFlagChanged"
    key: str
    enabled: bool
    changed_by: str


@dataclass(frozen=True, kw_only=True)
class DataSubjectRequestReceived(DomainEvent):
    """A patient's data-subject request (access, correction, portability, erasure) was taken."""

    event_type = "governance.DataSubjectRequestReceived"
    request_id: str
    patient_id: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class DataSubjectRequestClosed(DomainEvent):
    """A data-subject request ended: ``status`` completed, rejected or refused; ``outcome_code``
    says why (``accepted``, ``legal_hold``, ``legal_retention`` …)."""

    event_type = "governance.DataSubjectRequestClosed"
    request_id: str
    patient_id: str
    kind: str
    status: str
    outcome_code: str | None


@dataclass(frozen=True, kw_only=True)
class LegalHoldPlaced(DomainEvent):
    """An administrator placed a legal hold on a patient's data (erasure is refused)."""

    event_type = "governance.LegalHoldPlaced"
    hold_id: str
    patient_id: str
    reason_code: str


@dataclass(frozen=True, kw_only=True)
class LegalHoldLifted(DomainEvent):
    """An administrator lifted a legal hold."""

    event_type = "governance.LegalHoldLifted"
    hold_id: str
    patient_id: str
    reason_code: str
