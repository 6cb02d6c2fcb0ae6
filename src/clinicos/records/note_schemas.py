"""The record's JSON API contract for encounters and clinical notes (Pydantic).

Strict like the patient schemas: unknown fields are refused, every string is bounded, and an
invalid value is named by its field in the 422 — never echoed (reasons and note text are PHI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from clinicos.records.schemas import StrictModel
from clinicos.records.services.encounters import MAX_REASON
from clinicos.records.services.notes import MAX_TEXT

EncounterStatus = Literal["planned", "in-progress", "finished", "cancelled", "entered-in-error"]
EncounterClass = Literal["AMB", "EMER", "IMP", "VR", "HH"]
NoteKind = Literal["progress", "admission", "discharge", "consult", "nursing"]
NoteStatus = Literal["draft", "final", "entered-in-error"]

EntryId = Annotated[str, StringConstraints(min_length=1, max_length=36)]
TypeCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]
TypeDisplay = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ReasonText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON)
]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain text, not only blanks")
    return text


# Not stripped: a final note's hash covers the text exactly as written.
NoteText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)
]


def _present(value: object, info: ValidationInfo) -> object:
    """A PATCH may leave a required field out, but not clear it."""
    if value is None:
        raise ValueError(f"{info.field_name} may not be null")
    return value


# -- encounters ---------------------------------------------------------------------------------


class EncounterCreate(StrictModel):
    status: EncounterStatus
    class_code: EncounterClass = Field(description="v3 ActCode: AMB, EMER, IMP, VR or HH")
    type_code: TypeCode | None = Field(default=None, description="e.g. a SNOMED CT code")
    type_display: TypeDisplay | None = None
    reason_text: ReasonText | None = Field(default=None, description="Free text; PHI")
    period_start: AwareDatetime
    period_end: AwareDatetime | None = None

    @field_validator("period_end")
    @classmethod
    def _end_not_before_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("period_start")
        if end is not None and start is not None and end < start:
            raise ValueError("must not be before period_start")
        return end


class EncounterUpdate(StrictModel):
    """Partial update: only the fields present change; ``null`` clears an optional field.
    ``version`` (optional) must equal the current version, else 409."""

    version: int | None = Field(default=None, ge=1)
    status: EncounterStatus | None = None
    class_code: EncounterClass | None = None
    type_code: TypeCode | None = None
    type_display: TypeDisplay | None = None
    reason_text: ReasonText | None = None
    period_start: AwareDatetime | None = None
    period_end: AwareDatetime | None = None

    @field_validator("status", "class_code", "period_start")
    @classmethod
    def _required(cls, value: object, info: ValidationInfo) -> object:
        return _present(value, info)


class EncounterRead(BaseModel):
    id: str
    patient_id: str
    status: EncounterStatus
    class_code: EncounterClass
    type_code: str | None
    type_display: str | None
    reason_text: str | None
    period_start: datetime
    period_end: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class EncounterPageRead(BaseModel):
    patient_id: str
    items: list[EncounterRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


# -- notes --------------------------------------------------------------------------------------


class NoteCreate(StrictModel):
    kind: NoteKind
    text: NoteText = Field(description=f"1 to {MAX_TEXT} characters; PHI")
    encounter_id: EntryId | None = Field(default=None, description="An encounter of this patient")


class NoteUpdate(StrictModel):
    """Edit a draft: only the fields present change; ``encounter_id: null`` detaches it.
    ``version`` (optional) must equal the current version, else 409."""

    version: int | None = Field(default=None, ge=1)
    kind: NoteKind | None = None
    text: NoteText | None = None
    encounter_id: EntryId | None = None

    @field_validator("kind", "text")
    @classmethod
    def _required(cls, value: object, info: ValidationInfo) -> object:
        return _present(value, info)


class NoteVersion(StrictModel):
    """Optional body of finalize and discard: the version the client read, else 409."""

    version: int | None = Field(default=None, ge=1)


class AddendumCreate(StrictModel):
    text: NoteText
    kind: NoteKind | None = Field(default=None, description="Defaults to the amended note's")


class NoteRead(BaseModel):
    id: str
    patient_id: str
    encounter_id: str | None
    amends_note_id: str | None = Field(description="The final note this addendum amends")
    kind: NoteKind
    status: NoteStatus
    text: str
    author_id: str
    content_sha256: str | None = Field(description="SHA-256 (hex) of the UTF-8 text, once final")
    finalized_by: str | None
    finalized_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    addenda: list[str] = Field(description="Ids of the addenda to this note, oldest first")


class NotePageRead(BaseModel):
    patient_id: str
    items: list[NoteRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )
