"""Errors as FHIR ``OperationOutcome``: the same status, code and detail as our problem+json,
in FHIR's envelope, and FHIR-specific errors with the element path that failed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from clinicos.kernel.errors import BadRequest, DomainError, FieldError, ValidationFailed

FHIR_JSON = "application/fhir+json"
PROBLEM_CODE_SYSTEM = "https://clinicos.dev/problems"

# HTTP status → FHIR IssueType (http://hl7.org/fhir/valueset-issue-type.html).
_ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


class FhirInvalid(ValidationFailed):
    """A resource that does not validate: 422 naming each element path."""

    code = "fhir_invalid"
    title = "The FHIR resource is not valid"


class FhirNotSupported(DomainError):
    """An interaction this server does not offer for a type (Consent is read-only here)."""

    status = 405
    code = "fhir_interaction_not_supported"
    title = "This interaction is not supported for this resource type"


class FhirBadRequest(BadRequest):
    code = "fhir_bad_request"
    title = "The FHIR request is not valid"


def outcome_from_problem(body: dict[str, Any]) -> dict[str, Any]:
    """An ``OperationOutcome`` carrying what a problem body says (no stack, no values)."""
    status = int(body.get("status", 500))
    issue_type = _ISSUE_TYPES.get(status, "exception")
    details = {
        "coding": [{"system": PROBLEM_CODE_SYSTEM, "code": str(body.get("code", "error"))}],
        "text": str(body.get("title", "")),
    }
    errors: Sequence[dict[str, Any]] = body.get("errors") or ()
    issues: list[dict[str, Any]] = []
    for error in errors:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": issue_type if status != 422 else "invalid",
            "details": details,
            "diagnostics": str(error.get("message", "")),
        }
        expression = error.get("field") or ".".join(str(p) for p in error.get("loc", ()))
        if expression:
            issue["expression"] = [expression]
        issues.append(issue)
    if not issues:
        issues.append(
            {
                "severity": "error" if status < 500 else "fatal",
                "code": issue_type,
                "details": details,
                "diagnostics": str(body.get("detail", "")),
            }
        )
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues}
    if body.get("request_id"):
        outcome["id"] = str(body["request_id"])
    return outcome


def element_path(resource_type: str, loc: Iterable[Any]) -> str:
    """A pydantic location as a FHIRPath-like element path: ``Patient.name[0].family``."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("", "__root__"):
            path += f".{part}"
    return path


def invalid_from(resource_type: str, exc: ValidationError) -> FhirInvalid:
    """A fhir.resources validation failure as a 422 naming every failing element; the
    offending values (possibly PHI) are never repeated."""
    errors = tuple(
        FieldError(
            loc=(element_path(resource_type, e.get("loc", ())),),
            message=str(e.get("msg", "invalid value")),
            type=str(e.get("type", "value_error")),
        )
        for e in exc.errors(include_input=False, include_url=False)
    )
    names = ", ".join(sorted({e.field for e in errors}))
    return FhirInvalid(f"invalid {resource_type}: {names}", errors=errors)


def invalid(path: str, message: str) -> FhirInvalid:
    """One failing element, by path (``Patient.identifier``)."""
    return FhirInvalid(f"invalid {path}", errors=(FieldError(loc=(path,), message=message),))


@contextmanager
def element_paths(resource_type: str, paths: Mapping[str, str]) -> Iterator[None]:
    """Translate a record service's 422 (which names the record's fields: ``effective_at``)
    into the FHIR element paths the client sent (``Observation.effectiveDateTime``)."""
    try:
        yield
    except FhirInvalid:
        raise
    except ValidationFailed as exc:
        errors = tuple(
            FieldError(
                loc=(paths.get(str(e.loc[0]) if e.loc else "", resource_type),),
                message=e.message,
                type=e.type,
            )
            for e in exc.errors
        ) or (FieldError(loc=(resource_type,), message=exc.detail or "invalid"),)
        names = ", ".join(sorted({e.field for e in errors}))
        raise FhirInvalid(f"invalid {resource_type}: {names}", errors=errors) from None
