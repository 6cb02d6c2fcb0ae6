"""The OpenAPI document tells the truth about errors.

FastAPI documents each route's success response and a 422 in its own validation format; every
error of ours is an ``application/problem+json`` document (RFC 9457) — or, under a path whose
errors another format renders (FHIR's ``OperationOutcome``), that format. This adds the error
responses to every operation: the 4xx/5xx a client may meet, with the media type and schema it
will actually receive, so generated clients and contract tests (schemathesis) see them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
    "additionalProperties": True,
}

# The statuses any operation may answer besides its own: bad input, authentication,
# permission, absence, method, conflict, size, media type, validation, rate limit, and the
# server-side ones that are not bugs (database unavailable, schema not current).
_ERROR_STATUSES = {
    "400": "Malformed request",
    "401": "Not signed in, or the token is not valid",
    "403": "Not allowed for your role",
    "404": "No such resource in your organization",
    "405": "Method not allowed on this path (see the Allow header)",
    "409": "Conflict with the resource's current state",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "422": "Validation failed; `errors` names each field",
    "429": "Rate limit exceeded (see Retry-After)",
    "500": "Unexpected error (quote the request id)",
    "503": "Temporarily unavailable (database or schema); retry",
}


def _error_content(path: str, formats: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    for prefix, (media_type, schema) in formats.items():
        if path == prefix or path.startswith(prefix + "/"):
            return {media_type: {"schema": schema}}
    return {"application/problem+json": {"schema": PROBLEM_SCHEMA}}


def document_errors(
    schema: dict[str, Any], formats: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Add (or replace FastAPI's 422 with) our error responses on every operation."""
    for path, item in schema.get("paths", {}).items():
        content = _error_content(path, formats)
        media_type = next(iter(content))
        for method, operation in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            responses = operation.setdefault("responses", {})
            if media_type != "application/problem+json":
                # Under such a path (FHIR) successes are that format too, not plain JSON.
                for status, response in responses.items():
                    body = response.get("content", {})
                    if status.startswith("2") and "application/json" in body:
                        body[media_type] = body.pop("application/json")
            for status, description in _ERROR_STATUSES.items():
                documented = responses.get(status)
                if documented is None or status == "422":
                    responses[status] = {"description": description, "content": content}
    return schema


def install_error_documentation(
    app: FastAPI, formats: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> None:
    formats = formats or {"/fhir": ("application/fhir+json", OPERATION_OUTCOME_SCHEMA)}

    generate = app.openapi  # FastAPI's own generator (caches its result on the app)
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not documented or documented[0] is not schema:
            documented[:] = [document_errors(schema, formats)]
        return schema

    setattr(app, "openapi", openapi)  # noqa: B010  # FastAPI's documented override point
