"""The API contract of data-subject requests and legal holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clinicos.platform.http.strict import StrictBody

ID = r"^[A-Za-z0-9-]{1,64}$"
CODE = r"^[a-z_]{1,32}$"
# A case reference (court docket, investigation number): an id, never free text about anyone.
REFERENCE = r"^[A-Za-z0-9_.:/-]{1,100}$"

KindField = Literal["access", "correction", "portability", "erasure"]
StatusField = Literal["received", "in_progress", "completed", "rejected", "refused"]
ChannelField = Literal["in_person", "portal", "email", "phone", "paper", "whatsapp"]
CategoryField = Literal["contact", "identification", "clinical", "consent", "audit", "requests"]
LanguageField = Literal["en", "es", "pt"]


class CorrectionCreate(StrictBody):
    """What is wrong and what it should be. ``target``: ``demographics`` or a clinical entry
    kind (``condition``, ``allergy``, ``observation``, ``medication_statement``) with its
    ``entry_id``; ``field`` one the record lets a patient correct; ``proposed_value`` as text
    (a date as YYYY-MM-DD; empty clears an optional field)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=CODE)
    entry_id: str | None = Field(default=None, pattern=ID)
    field: str = Field(pattern=CODE)
    proposed_value: str = Field(max_length=1000)
    reason: str = Field(min_length=1, max_length=1000)


class DataRequestCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    kind: KindField
    channel: ChannelField = "in_person"
    correction: CorrectionCreate | None = None
    # Erasure only: the categories asked for; none means everything we may erase.
    erasure_categories: list[CategoryField] | None = Field(default=None, min_length=1)


class CorrectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    target: str
    entry_id: str | None
    field: str
    proposed_value: str | None
    reason: str | None


class StepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor_id: str
    action: str
    status: str
    note_code: str | None


class DataRequestRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    kind: str
    status: str
    channel: str
    received_by: str
    received_at: datetime
    deadline_at: datetime
    overdue: bool
    handled_by: str | None
    completed_at: datetime | None
    outcome_code: str | None
    correction: CorrectionRead | None
    decision_note: str | None
    erasure_categories: list[str] | None
    result: dict[str, Any] | None
    steps: list[StepRead]


class DataRequestPage(BaseModel):
    items: list[DataRequestRead]
    next_cursor: str | None


class AccessReportCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    # The summary's language; by default the patient's preferred one when we have it, else en.
    language: LanguageField | None = None


class SummaryRead(BaseModel):
    language: str
    media_type: str = "text/markdown"
    text: str


class AccessReportRead(BaseModel):
    request_id: str
    status: str
    bundle: dict[str, Any]
    summary: SummaryRead


class ErasureRead(BaseModel):
    request_id: str
    status: str
    erased: dict[str, list[str]]
    retained: dict[str, str]


class CorrectionDecision(StrictBody):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    note: str | None = Field(default=None, max_length=1000)


class LegalHoldCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    reason_code: Literal[
        "litigation",
        "regulatory_investigation",
        "law_enforcement",
        "insurance_claim",
        "internal_investigation",
    ]
    reference: str | None = Field(default=None, pattern=REFERENCE)


class LegalHoldLift(StrictBody):
    model_config = ConfigDict(extra="forbid")

    reason_code: Literal["resolved", "withdrawn", "entered_in_error"]


class LegalHoldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    active: bool
    reason_code: str
    reference: str | None
    placed_by: str
    placed_at: datetime
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason_code: str | None


class LegalHoldList(BaseModel):
    patient_id: str
    under_hold: bool
    holds: list[LegalHoldRead]
