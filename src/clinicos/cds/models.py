"""Decision-support tables: recorded evaluations (governance records, no PHI), the
installation's rule-pack catalogue, each organization's active pack, overrides and
attestations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinicos.platform.db.base import Base, UTCDateTime
from clinicos.platform.phi import ENCRYPTED_COLUMN


class CdsEvaluation(Base):
    """What was checked, by whom, and what the engine said: codes, keys and a hash only.

    The patient facts are PHI and are not stored; ``input_hash`` (sha256 of the canonical
    inputs) proves which inputs produced the outcome when they are presented again.
    Append-only for the app role on PostgreSQL, and tenant-scoped by row-level security.
    ``organization_id`` and ``evaluated_by`` refer to identity's rows by id, ``patient_id`` to
    records' patient (record mode and the prescribing gate; None when the facts came inline)
    — ids only, no foreign key across contexts (ARCHITECTURE.md). ``prescription_id`` and
    ``prescription_version`` name the draft the prescribing gate checked, at the version it had
    then: an override of this evaluation unlocks issuing that draft only while it is unedited
    (``clinicos.cds.prescribing``). None outside the gate.

    ``dose_mg``, ``frequency`` and ``order_fingerprint`` complete the order (migration 0011;
    null on older rows): an attestation is scoped to the order its evaluation checked.
    ``outcome`` is the outcome the decision used: the engine's, or — when valid attestations
    covered every ATTEST reason (record mode, the prescribing gate) — the one computed from the
    other reasons; ``attestation_ids`` names the attestations used (null when none).
    """

    __tablename__ = "cds_evaluation"
    __table_args__ = (
        Index("ix_cds_evaluation_organization_id_evaluated_at", "organization_id", "evaluated_at"),
        Index("ix_cds_evaluation_organization_id_patient_id", "organization_id", "patient_id"),
        Index(
            "ix_cds_evaluation_organization_id_prescription_id",
            "organization_id",
            "prescription_id",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    evaluated_by: Mapped[str] = mapped_column(String(36))
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    drug: Mapped[str] = mapped_column(String(32))
    indication: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    # Unbounded NUMERIC: Cockcroft-Gault has no upper bound when SCr is tiny.
    crcl_ml_min: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True))
    reason_keys: Mapped[list[str]] = mapped_column(JSON)
    rule_pack_id: Mapped[str] = mapped_column(String(64))
    rule_pack_version: Mapped[str] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(36), default=None)
    prescription_id: Mapped[str | None] = mapped_column(String(36), default=None)
    prescription_version: Mapped[int | None] = mapped_column(Integer, default=None)
    dose_mg: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True), default=None)
    frequency: Mapped[str | None] = mapped_column(String(8), default=None)
    order_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    attestation_ids: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class CdsRulePack(Base):
    """One packaged rule pack version known to this installation, and its clinical approval.

    Installation-level (no tenant). ``content_sha256`` is the hash of the packaged file as last
    registered; ``approved_sha256`` the hash the reviewer approved. An approval counts only
    while both equal the hash of the file shipped now, so an edited file loses its approval.
    """

    __tablename__ = "cds_rule_pack"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    content_sha256: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reviewer: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_sha256: Mapped[str | None] = mapped_column(String(64))


class CdsPackActivation(Base):
    """The rule pack an organization evaluates with, and its optional stricter local overlay.

    One row per organization (re-activation replaces it; the audit trail keeps the history).
    ``effective_version`` is what evaluations report: the base version, or
    ``<base>+local.<first 8 hex of overlay_sha256>`` with an overlay. Tenant-scoped by
    row-level security on PostgreSQL.
    """

    __tablename__ = "cds_pack_activation"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pack_id: Mapped[str] = mapped_column(String(64))
    pack_version: Mapped[str] = mapped_column(String(64))
    effective_version: Mapped[str] = mapped_column(String(64))
    overlay: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    overlay_sha256: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_by: Mapped[str] = mapped_column(String(64))


class CdsOverride(Base):
    """A clinician's reasoned decision to proceed past a BLOCK or WARN evaluation.

    One per evaluation. ``status`` is ``approved`` or ``pending_cosign`` (a BLOCK awaiting a
    pharmacist's second sign-off). ``comment`` is free text and may hold PHI: it is stored
    here only, never logged, audited or put in an event. Tenant-scoped by row-level security
    on PostgreSQL; the app role may co-sign (update) but never delete one.
    """

    __tablename__ = "cds_override"
    __table_args__ = (UniqueConstraint("evaluation_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    evaluation_id: Mapped[str] = mapped_column(String(36), ForeignKey("cds_evaluation.id"))
    reason_code: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cosigned_by: Mapped[str | None] = mapped_column(String(36))
    cosigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CdsAttestation(Base):
    """A clinician's reasoned statement that missing or stale data (serum creatinine, weight)
    is acceptable for ONE patient and ONE order, until ``expires_at`` (issue 5 point 4).

    Scoped by ``patient_id`` and ``order_fingerprint`` (drug, dose, frequency and indication,
    ``clinicos.cds.engine.order_fingerprint``); the order's parts are kept readable beside it.
    ``facts`` lists the attested facts. ``reason`` is free text that may hold PHI: sealed with
    the PHI keyring (table ``cds_attestation``, column ``reason``, the row id), never logged,
    audited, emitted or returned. Tenant-scoped by row-level security on PostgreSQL; the app
    role may insert and read, never change or delete one (governance records).
    """

    __tablename__ = "cds_attestation"
    __table_args__ = (
        Index(
            "ix_cds_attestation_scope",
            "organization_id",
            "patient_id",
            "order_fingerprint",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    patient_id: Mapped[str] = mapped_column(String(36))
    evaluation_id: Mapped[str] = mapped_column(String(36), ForeignKey("cds_evaluation.id"))
    drug: Mapped[str] = mapped_column(String(32))
    dose_mg: Mapped[Decimal] = mapped_column(Numeric(asdecimal=True))
    frequency: Mapped[str] = mapped_column(String(8))
    indication: Mapped[str] = mapped_column(String(32))
    order_fingerprint: Mapped[str] = mapped_column(String(64))
    facts: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    attested_by: Mapped[str] = mapped_column(String(36))
    attested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
