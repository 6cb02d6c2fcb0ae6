"""CDS Hooks tables: registered CDS clients (their public keys), the token ids already seen
(replay protection) and the cards the service returned (so feedback can find its evaluation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinicos.platform.db.base import Base, UTCDateTime
from clinicos.platform.phi import ENCRYPTED_COLUMN


class CdsHooksClient(Base):
    """An EHR (CDS client) allowed to call the CDS Hooks service for one organization.

    ``issuer`` is the JWT ``iss`` the client signs with; it is unique in the installation because
    the issuer is how an incoming call finds its organization (docs/adr/0015). ``jwks`` is the
    client's JSON Web Key Set as registered (public keys only; the registration refuses private
    key members). Tenant-scoped by row-level security; on PostgreSQL a second, read-only policy
    lets token verification read exactly the row of the issuer it was given.
    """

    __tablename__ = "cds_hooks_client"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    issuer: Mapped[str] = mapped_column(String(500), unique=True)
    jwks: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))


class CdsHooksJti(Base):
    """A client token id already accepted, kept until the token expires: a second use of the
    same ``jti`` by the same client is a replay (CDS Hooks 2.0, "Trusting CDS Clients").

    The primary key is the uniqueness check, so two concurrent replays cannot both pass on
    SQLite or PostgreSQL. ``client_id`` refers to ``cds_hooks_client`` without a foreign key so
    removing a client never waits on (or cascades into) this short-lived table.
    """

    __tablename__ = "cds_hooks_jti"
    __table_args__ = (Index("ix_cds_hooks_jti_expires_at", "expires_at"),)

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CdsHooksCard(Base):
    """One card returned by the CDS Hooks service: which evaluation and reason it stands for,
    and the feedback the client sent about it (at most once).

    ``evaluation_id`` is None for cards the service raises without running the engine (the
    patient's age or sex, or the order's dose, frequency or indication, could not be read).
    ``client_id`` is the calling client (None for a clinicos user's own call); ``acting_for``
    the client's ``context.userId`` (a practitioner reference, not patient data). The override
    comment is free text that may hold PHI: encrypted, never logged, audited or emitted.
    """

    __tablename__ = "cds_hooks_card"
    __table_args__ = (
        Index("ix_cds_hooks_card_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_cds_hooks_card_evaluation_id", "evaluation_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    evaluation_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("cds_evaluation.id"))
    evaluation_outcome: Mapped[str | None] = mapped_column(String(16))
    reason_key: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[str] = mapped_column(String(64))
    hook_instance: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str | None] = mapped_column(String(36))
    acting_for: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    feedback_outcome: Mapped[str | None] = mapped_column(String(16))
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    override_reason_code: Mapped[str | None] = mapped_column(String(64))
    override_comment: Mapped[str | None] = mapped_column(Text, info=dict(ENCRYPTED_COLUMN))
    override_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("cds_override.id"))
