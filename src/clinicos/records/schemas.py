"""The record's JSON API contract for patients (Pydantic). Clinical entries: clinical_schemas.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from clinicos.platform.http.strict import StrictBody
from clinicos.records.services.contact_rules import PHONE_MAX, PHONE_MIN, PHONE_PATTERN

Sex = Literal["male", "female", "other", "unknown"]
# Short free-text fields; PHI, so never echoed in errors (the problem names the field only).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Mrn = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]
NationalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Phone = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=PHONE_MIN, max_length=PHONE_MAX, pattern=PHONE_PATTERN
    ),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
AddressLine = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Place = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class StrictModel(StrictBody):
    # Unknown fields are refused, so a client-supplied organization_id can't slip in unnoticed.
    model_config = ConfigDict(extra="forbid")


class AddressBody(StrictModel):
    lines: list[AddressLine] = Field(default_factory=list, max_length=4)
    city: Place | None = None
    district: Place | None = None
    state: Place | None = None
    postal_code: Annotated[str, StringConstraints(max_length=16)] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2"
    )


class PatientCreate(StrictModel):
    mrn: Mrn = Field(description="Medical record number, unique in the organization")
    family_name: Name
    given_name: Name | None = None
    birth_date: date | None = None
    sex: Sex
    national_id: NationalId | None = Field(default=None, description="CI (BO) / CPF (BR) …")
    phone: Phone | None = None
    email: EmailStr | None = Field(default=None, max_length=254)
    address: AddressBody | None = None
    preferred_language: Language | None = Field(default=None, description="BCP 47, e.g. es")
    active: bool = True


class PatientUpdate(StrictModel):
    """Partial update: only the fields present change; ``null`` clears an optional field.
    ``version`` (optional) must equal the current version, else 409."""

    version: int | None = Field(default=None, ge=1)
    mrn: Mrn | None = None
    family_name: Name | None = None
    given_name: Name | None = None
    birth_date: date | None = None
    sex: Sex | None = None
    national_id: NationalId | None = None
    phone: Phone | None = None
    email: EmailStr | None = Field(default=None, max_length=254)
    address: AddressBody | None = None
    preferred_language: Language | None = None
    active: bool | None = None


class PatientRead(BaseModel):
    id: str
    mrn: str
    family_name: str
    given_name: str | None
    birth_date: date | None
    sex: Sex
    national_id: str | None
    phone: str | None
    email: str | None
    address: AddressBody | None
    preferred_language: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class PatientPageRead(BaseModel):
    items: list[PatientRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class PatientSearchBody(StrictModel):
    """Exact-match criteria; every given one must match. None given lists every patient."""

    mrn: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=201)] | None = Field(
        default=None, description="Full name: given then family, case/space-insensitive"
    )
    family_name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    national_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    phone: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)] | None = None
    active: bool | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
