"""Governance's API contract for the audit trail."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    purpose: str | None
    outcome: str
    request_id: str | None
    hash: str


class AuditEventPage(BaseModel):
    items: list[AuditEventRead]
    next_before_seq: int | None


class ChainVerification(BaseModel):
    ok: bool
    rows_checked: int
    first_bad_seq: int | None
    first_bad_id: str | None
    reason: str | None
