"""Decision-support tables: one row per recorded evaluation (a governance record, no PHI)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from clinicos.platform.db.base import Base, UTCDateTime


class CdsEvaluation(Base):
    """What was checked, by whom, and what the engine said: codes, keys and a hash only.

    The patient facts are PHI and are not stored; ``input_hash`` (sha256 of the canonical
    inputs) proves which inputs produced the outcome when they are presented again.
    Append-only for the app role on PostgreSQL, and tenant-scoped by row-level security.
    ``organization_id`` and ``evaluated_by`` refer to identity's rows by id (no foreign key).
    """

    __tablename__ = "cds_evaluation"
    __table_args__ = (
        Index("ix_cds_evaluation_organization_id_evaluated_at", "organization_id", "evaluated_at"),
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
