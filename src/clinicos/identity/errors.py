"""Identity's domain errors (codes are part of the API contract)."""

from __future__ import annotations

from clinicos.kernel.errors import AuthenticationRequired, Conflict, ValidationFailed


class InvalidCredentials(AuthenticationRequired):
    """Wrong password, unknown email, locked or disabled account: one answer for all, so the
    response never tells which (no user enumeration)."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("email or password is incorrect, or the account cannot sign in")


class InvalidToken(AuthenticationRequired):
    code = "invalid_token"

    def __init__(self, detail: str = "the token is invalid, expired or revoked") -> None:
        super().__init__(detail)


class InvalidMfaCode(AuthenticationRequired):
    code = "invalid_mfa_code"

    def __init__(self) -> None:
        super().__init__("the code is wrong, expired or already used")


class OrganizationRequired(ValidationFailed):
    code = "organization_required"


class AlreadyExists(Conflict):
    code = "already_exists"
