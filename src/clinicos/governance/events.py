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
