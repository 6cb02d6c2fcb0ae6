"""Governance tables: the hash-chained audit trail and the head of each chain, patients' consent
decisions, and feature flags per organization."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from clinicos.platform.db.base import Base, UTCDateTime
from clinicos.platform.phi import ENCRYPTED_COLUMN


class AuditEvent(Base):
    """One security event or PHI access: ids and codes only, never PHI values.

    Append-only: ``organization_id`` refers to identity's organization by id (no foreign key,
    so governance does not depend on identity's tables and audit rows outlive what they name).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("chain_key", "seq"),
        # An organization's rows sit in its own chain; installation rows in "installation".
        CheckConstraint(
            "(organization_id IS NULL AND chain_key = 'installation') "
            "OR chain_key = organization_id",
            name="chain_key_matches_organization",
        ),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index("ix_audit_event_organization_id_occurred_at", "organization_id", "occurred_at"),
        Index("ix_audit_event_actor_id", "actor_id"),
        Index("ix_audit_event_action", "action"),
        Index("ix_audit_event_target_type_target_id", "target_type", "target_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str | None] = mapped_column(String(36))
    chain_key: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(100))
    target_id: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """Where each chain ends: the append lock, and the witness that detects a cut-off tail."""

    __tablename__ = "audit_chain_head"

    chain_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRecord(Base):
    """One consent decision of a patient for one purpose (FHIR ``Consent``-compatible).

    Append-only: a change of mind is a new row (``revoked``, ``denied``, ``granted`` again), so
    the history is the table; the current state of a purpose is its newest row. The patient is
    records' patient, by id (no foreign key across contexts). ``method`` is how the patient
    expressed it; ``policy_version`` which text of the consent policy they were shown."""

    __tablename__ = "consent_record"
    __table_args__ = (
        Index(
            "ix_consent_record_org_patient_purpose_recorded_at",
            "organization_id",
            "patient_id",
            "purpose",
            "recorded_at",
        ),
        CheckConstraint("decision IN ('granted', 'denied', 'revoked')", name="decision_known"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    patient_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(36))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the patient gave or withdrew it (a paper form signed yesterday); ≤ recorded_at.
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeatureFlag(Base):
    """An organization's setting of one feature flag; a flag without a row has its default."""

    __tablename__ = "feature_flag"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KpiEvent(Base):
    """One decision-support governance event as the KPIs count it (a projection of cds events).

    Filled by the outbox handler from ``cds.EvaluationRecorded``, ``cds.OverrideRecorded``,
    ``cds.OverrideCosigned`` and ``cds.AttestationRecorded`` — the events written with each
    decision's audit entry — so every figure is a count of real events. ``event_id`` is the
    outbox event's id (a redelivered event is not counted twice). Codes and ids only, never
    patient facts. ``slot`` is ``occurred_at`` in whole quarter hours since the Unix epoch: the
    KPI query groups by it and maps slots to days/weeks/months of the organization's timezone
    (every current UTC offset is a multiple of 15 minutes).

    ``kind``: ``evaluation``, ``override``, ``cosign``, ``attestation``. ``outcome`` is the
    evaluation's outcome (for an override, the overridden evaluation's). ``approved`` marks the
    event that made an override approved (an override that needed no co-sign, or the co-sign):
    for a BLOCK, the block's resolution.
    """

    __tablename__ = "governance_kpi_event"
    __table_args__ = (
        Index("ix_governance_kpi_event_org_occurred_at", "organization_id", "occurred_at"),
        Index("ix_governance_kpi_event_org_evaluation_id", "organization_id", "evaluation_id"),
        Index("ix_governance_kpi_event_org_block_at", "organization_id", "block_at"),
        CheckConstraint(
            "kind IN ('evaluation', 'override', 'cosign', 'attestation')", name="kind_known"
        ),
    )

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    slot: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    evaluation_id: Mapped[str] = mapped_column(String(36))
    outcome: Mapped[str | None] = mapped_column(String(16))
    drug: Mapped[str | None] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    rule_keys: Mapped[list[str] | None] = mapped_column(JSON)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    # On the event that resolved a BLOCK (an approval): when the block was evaluated, and how
    # many seconds later it was resolved; filled in whichever of the two is projected last.
    block_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    resolution_seconds: Mapped[float | None] = mapped_column(Float, default=None)


class KpiDaily(Base):
    """Daily rollup of :class:`KpiEvent`, maintained by the same handler in the same transaction.

    One counter per organization, local day (in the organization's ``timezone`` when the event
    was counted), ``metric`` and ``key``: ``count`` with ``<kind>:<outcome>``, and for
    overrides ``override_reason``, ``override_drug`` and ``override_rule``. The KPI query reads
    whole local days from here and only partial days from the events, so it stays fast as
    events grow (benchmarked at 1,000,000 events).
    """

    __tablename__ = "governance_kpi_daily"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# -- data-subject requests and legal holds (LGPD Art. 18, GDPR Art. 15-20) ----------------------


class DataSubjectRequest(Base):
    """One request of a patient to exercise a data-subject right: ``access`` (a report of
    everything held), ``correction`` (of one demographics field or clinical entry),
    ``portability`` (a machine-readable export) or ``erasure`` (of what the law lets us erase).

    ``status``: received → in_progress → completed | rejected (a correction turned down) |
    refused (an erasure blocked by a legal hold or a legal retention). ``deadline_at`` is
    ``received_at`` + 15 days (LGPD Art. 19 II). The patient is records' patient, by id.
    A correction's proposed value, the patient's reason and the decision's note are free text
    about the patient: encrypted at rest like the record's own PHI. ``categories`` (erasure)
    and ``result`` hold codes and counts only. Every step is a ``DataSubjectRequestStep`` row."""

    __tablename__ = "data_subject_request"
    __table_args__ = (
        Index(
            "ix_data_subject_request_org_status_deadline",
            "organization_id",
            "status",
            "deadline_at",
        ),
        Index(
            "ix_data_subject_request_org_patient_received",
            "organization_id",
            "patient_id",
            "received_at",
        ),
        CheckConstraint(
            "kind IN ('access', 'correction', 'portability', 'erasure')", name="kind_known"
        ),
        CheckConstraint(
            "status IN ('received', 'in_progress', 'completed', 'rejected', 'refused')",
            name="status_known",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    patient_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    received_by: Mapped[str] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handled_by: Mapped[str | None] = mapped_column(String(36))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome_code: Mapped[str | None] = mapped_column(String(64))
    correction_target: Mapped[str | None] = mapped_column(String(32))
    correction_entry_id: Mapped[str | None] = mapped_column(String(36))
    correction_field: Mapped[str | None] = mapped_column(String(32))
    proposed_value: Mapped[str | None] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    request_reason: Mapped[str | None] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    decision_note: Mapped[str | None] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    categories: Mapped[list[str] | None] = mapped_column(JSON)
    result: Mapped[dict[str, object] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class DataSubjectRequestStep(Base):
    """One step in a request's history (append-only): who did what, when, and the status it
    left the request in. ``note_code`` is a code (``legal_hold``, ``accepted`` …), never text."""

    __tablename__ = "data_subject_request_step"
    __table_args__ = (UniqueConstraint("request_id", "seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("data_subject_request.id"))
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    note_code: Mapped[str | None] = mapped_column(String(64))


class LegalHold(Base):
    """A legal hold on one patient's data, placed and lifted by an administrator with a reason
    code (and a case reference, an id — never free text): while any hold of the patient is not
    lifted, erasure is refused. Lifting sets ``lifted_*``; the row stays as the history."""

    __tablename__ = "legal_hold"
    __table_args__ = (Index("ix_legal_hold_org_patient", "organization_id", "patient_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    patient_id: Mapped[str] = mapped_column(String(36))
    reason_code: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(100))
    placed_by: Mapped[str] = mapped_column(String(36))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(36))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lift_reason_code: Mapped[str | None] = mapped_column(String(32))


class AuditChainAnchor(Base):
    """Where a chain starts after retention purged its oldest rows: the last purged row's seq
    and hash. Verification starts from here; written only by the purge (on PostgreSQL by the
    ``governance_purge_audit`` function, never by the app role directly)."""

    __tablename__ = "audit_chain_anchor"

    chain_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    purged_through_seq: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))
    purged_rows: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RetentionRun(Base):
    """One organization's part of one retention run: what it purged per category, and the
    cutoffs it used. ``running`` until it ends; a run that failed says so (``error`` is a code,
    never data) and the next run carries on — deletion is by cutoff, so nothing is purged
    twice and nothing already purged is counted again."""

    __tablename__ = "retention_run"
    __table_args__ = (
        Index("ix_retention_run_organization_id_started_at", "organization_id", "started_at"),
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status_known"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[str] = mapped_column(String(16))
    purged: Mapped[dict[str, int]] = mapped_column(JSON)
    cutoffs: Mapped[dict[str, str]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(200), default=None)
