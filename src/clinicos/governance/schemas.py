"""Governance's API contract: the audit trail, consent, feature flags."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from clinicos.platform.http.strict import StrictBody


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
    purged_through_seq: int = Field(
        default=0,
        description="Rows up to this seq were purged under the retention policy; the check "
        "starts from the anchor they left.",
    )


# -- consent ---------------------------------------------------------------------------------

PurposeField = Literal[
    "treatment",
    "research",
    "messaging:whatsapp",
    "messaging:sms",
    "messaging:email",
    "ai_assistance",
]


class ConsentCreate(StrictBody):
    """One decision of the patient, as recorded by the member in front of them."""

    model_config = ConfigDict(extra="forbid")

    purpose: PurposeField
    decision: Literal["granted", "denied", "revoked"]
    method: Literal["paper", "verbal", "whatsapp_opt_in", "portal"]
    policy_version: str = Field(min_length=1, max_length=64)
    given_at: AwareDatetime | None = None


class ConsentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    purpose: str
    decision: str
    method: str
    policy_version: str
    recorded_by: str
    recorded_at: datetime
    given_at: datetime


class ConsentStateRead(BaseModel):
    purpose: str
    allowed: bool
    decision: str | None
    latest: ConsentRead | None


class ConsentOverview(BaseModel):
    patient_id: str
    current: list[ConsentStateRead]
    history: list[ConsentRead]


# -- feature flags -----------------------------------------------------------------------------


class FlagRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    enabled: bool
    default: bool
    description: str
    updated_by: str | None
    updated_at: datetime | None


class FlagUpdate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class KpiBucketRead(BaseModel):
    """One day, ISO week (from Monday) or calendar month of the organization's timezone."""

    start: str = Field(description="The bucket's first local date (YYYY-MM-DD).")
    evaluations: int
    blocks: int
    warnings: int
    attest_required: int
    attestations: int
    overrides: int


class KpiRead(BaseModel):
    """Decision-support KPIs counted from governance events.

    Definitions: docs/contexts/governance.md (KPIs)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    timezone: str
    granularity: Literal["day", "week", "month"]
    evaluations: int
    blocks: int
    warnings: int
    attest_required: int
    attestations: int
    overrides: int
    override_rate: float | None = Field(description="overrides ÷ (blocks + warnings)")
    overrides_by_reason: dict[str, int]
    overrides_by_drug: dict[str, int]
    by_rule: dict[str, int] = Field(description="overrides per reason key they overrode")
    blocks_resolved: int
    median_block_resolution_seconds: float | None
    series: list[KpiBucketRead]


class RetentionRunRead(BaseModel):
    """What one retention run purged for this organization (counts per category)."""

    id: str
    started_at: datetime
    finished_at: datetime | None
    status: Literal["running", "completed", "failed"]
    purged: dict[str, int]
    cutoffs: dict[str, str] = Field(description="Per category: rows older than this were due.")
    error: str | None
