"""The one error tree. Services raise these; one HTTP handler renders them as RFC 9457 problems.

    DomainError                      500  (base; never raised directly)
    ├── BadRequest                   400  malformed input that is not a field validation problem
    ├── AuthenticationRequired       401
    ├── PermissionDenied             403
    ├── NotFound                     404  also used for other tenants' objects (never 403)
    ├── Conflict                     409  state conflicts, duplicates, stale versions
    ├── PayloadTooLarge              413
    ├── ValidationFailed             422  carries field-level errors
    ├── RateLimited                  429  carries limit, remaining, reset_at, retry_after
    └── ServiceUnavailable           503  database down, schema behind, dependency missing
        └── SchemaNotCurrent         503

Messages (``detail``) are written for the API client and must never contain PHI: say *which*
field or object kind is wrong, never the value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: a location path (``["body", "items", 0, "dose"]``) and why."""

    loc: tuple[str | int, ...]
    message: str
    type: str = "value_error"

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.loc)


class DomainError(Exception):
    """Base of every error a use case may raise on purpose.

    ``code`` is a stable machine-readable identifier (documented, never renamed), ``status``
    the HTTP status the API maps it to, ``title`` a short human summary of the kind of error.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance-level override of the class default
        self.data: dict[str, Any] = dict(data or {})
        super().__init__(self.detail)


class BadRequest(DomainError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class AuthenticationRequired(DomainError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"


class PermissionDenied(DomainError):
    status = 403
    code = "permission_denied"
    title = "Permission denied"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.errors: tuple[FieldError, ...] = tuple(errors)


class RateLimited(DomainError):
    """Over budget: ``limit`` units per window (None when the raiser does not know it), none
    ``remaining``, more at ``reset_at`` (epoch seconds; defaults to now + ``retry_after``)."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int,
        limit: int | None = None,
        remaining: int = 0,
        reset_at: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining
        self.reset_at = reset_at if reset_at is not None else math.ceil(time.time()) + retry_after


class ServiceUnavailable(DomainError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class SchemaNotCurrent(ServiceUnavailable):
    code = "schema_not_current"
    title = "Database schema is not current"
