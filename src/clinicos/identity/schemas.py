"""Identity's API contract (Pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinicos.identity.permissions import Role
from clinicos.platform.http.strict import StrictBody


class StrictModel(StrictBody):
    # Unknown fields are rejected, so a client-supplied organization_id can't slip in unnoticed.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class LoginRequest(StrictModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=256)
    organization: str | None = Field(default=None, max_length=63)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    organization: str
    scope: str | None = Field(
        default=None, description="`mfa_enroll`: the token may only be used to enrol MFA."
    )


class MfaRequiredResponse(BaseModel):
    mfa_required: Literal[True] = True
    mfa_token: str


class MfaRequest(StrictModel):
    mfa_token: str = Field(min_length=10, max_length=4096)
    code: str = Field(min_length=6, max_length=32)


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=10, max_length=512)


class MfaEnrollmentResponse(BaseModel):
    secret: str
    provisioning_uri: str


class MfaCodeRequest(StrictModel):
    code: str = Field(min_length=6, max_length=32)


class RecoveryCodesResponse(BaseModel):
    recovery_codes: list[str]


class PasswordChangeRequest(StrictModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordResetRequest(StrictModel):
    email: str = Field(min_length=3, max_length=320)


class PasswordResetConfirm(StrictModel):
    token: str = Field(min_length=10, max_length=512)
    new_password: str = Field(min_length=1, max_length=256)


class TokenConfirm(StrictModel):
    token: str = Field(min_length=10, max_length=512)


class AcceptedResponse(BaseModel):
    status: Literal["accepted"] = "accepted"


class OrganizationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    slug: str
    name: str
    country: str
    locale: str
    currency: str
    timezone: str
    mfa_required_for_admin: bool


class UserRead(BaseModel):
    id: str
    email: str
    display_name: str
    status: str
    roles: list[str]
    mfa_enabled: bool
    email_verified: bool
    locked: bool
    created_at: datetime


class MeRead(BaseModel):
    user: UserRead
    organization: OrganizationRead
    permissions: list[str]


class UserCreate(StrictModel):
    email: str = Field(min_length=3, max_length=320)
    display_name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    password: str | None = Field(default=None, min_length=1, max_length=256)


class UserList(BaseModel):
    items: list[UserRead]
