"""Decision support's domain events (ids, codes and reason keys only, never patient facts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class EvaluationRecorded(DomainEvent):
    """One order check was run and recorded (issue 5 point 7: a governance event).

    ``drug`` and ``indication`` are the order's codes; ``input_hash`` identifies the inputs
    without carrying them. ``patient_id`` is the record the facts were read from (record mode,
    the prescribing gate): an id, never a fact; None in inline mode, where the facts were given
    inline and name no patient. The prescribing gate also names the draft it checked
    (``prescription_id`` at ``prescription_version``) and, when an earlier override let the
    order through, that override (``override_id``); None elsewhere. ``attestation_ids``: the
    attestations that vouched for missing or stale data (record mode, the gate); then
    ``outcome`` is the one computed past ATTEST. None when none was used.
    """

    event_type = "cds.EvaluationRecorded"
    evaluation_id: str
    evaluated_by: str
    drug: str
    indication: str
    outcome: str
    reason_keys: list[str]
    rule_pack_id: str
    rule_pack_version: str
    input_hash: str
    patient_id: str | None = None
    prescription_id: str | None = None
    prescription_version: int | None = None
    override_id: str | None = None
    attestation_ids: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class AttestationRecorded(DomainEvent):
    """A clinician attested that missing or stale data is acceptable for one patient's order
    (issue 5 point 4: a governance event). ``facts`` are the attested facts
    (``serum_creatinine``, ``weight``); ``order_fingerprint`` scopes it to the order. The
    free-text reason is never carried (it may hold PHI)."""

    event_type = "cds.AttestationRecorded"
    attestation_id: str
    evaluation_id: str
    patient_id: str
    attested_by: str
    drug: str
    indication: str
    order_fingerprint: str
    facts: list[str]
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class OverrideRecorded(DomainEvent):
    """A clinician overrode a BLOCK or WARN evaluation with a reason code (issue 5 point 7).

    ``status`` is ``approved`` or ``pending_cosign``; ``outcome`` the overridden evaluation's.
    The free-text comment is never carried (it may hold PHI). ``drug`` is the overridden order's
    drug and ``reason_keys`` the overridden evaluation's reasons that raised its outcome (INFO
    left out), for the KPIs' overrides by drug and by rule; None on events stored before they
    were added.
    """

    event_type = "cds.OverrideRecorded"
    override_id: str
    evaluation_id: str
    created_by: str
    reason_code: str
    status: str
    outcome: str
    drug: str | None = None
    reason_keys: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class OverrideCosigned(DomainEvent):
    """A pharmacist gave a pending BLOCK override its second sign-off; it is now approved."""

    event_type = "cds.OverrideCosigned"
    override_id: str
    evaluation_id: str
    created_by: str
    cosigned_by: str
    reason_code: str
    status: str
    outcome: str
    drug: str | None = None
    reason_keys: list[str] | None = None
