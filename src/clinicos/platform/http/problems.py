"""Render every error as an RFC 9457 ``application/problem+json`` body, in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from clinicos.kernel.errors import (
    BadRequest,
    DomainError,
    FieldError,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from clinicos.platform.observability.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://clinicos.dev/problems/"

log = get_logger("clinicos.http")

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("authentication_required", "Authentication required"),
    403: ("permission_denied", "Permission denied"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    500: ("internal_error", "Internal error"),
    503: ("service_unavailable", "Service unavailable"),
}


def request_id_of(scope: MutableMapping[str, Any]) -> str | None:
    state = scope.get("state") or {}
    return state.get("request_id") if isinstance(state, dict) else None


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


ProblemRenderer = Callable[[dict[str, Any], dict[str, str] | None], Response]
"""Renders a problem body in another error format (e.g. FHIR's OperationOutcome)."""


def register_problem_renderer(app: FastAPI, path_prefix: str, renderer: ProblemRenderer) -> None:
    """Errors of requests under ``path_prefix`` are rendered by ``renderer`` instead of as
    ``application/problem+json`` — same status, code and detail, another envelope."""
    renderers: list[tuple[str, ProblemRenderer]] = getattr(app.state, "problem_renderers", [])
    renderers.append((path_prefix.rstrip("/"), renderer))
    app.state.problem_renderers = renderers


def _renderer_for(scope: MutableMapping[str, Any] | None) -> ProblemRenderer | None:
    if scope is None or scope.get("app") is None:
        return None
    path = str(scope.get("path", ""))
    for prefix, renderer in getattr(scope["app"].state, "problem_renderers", []):
        if path == prefix or path.startswith(prefix + "/"):
            return renderer
    return None


def problem_response(
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    scope: MutableMapping[str, Any] | None = None,
) -> Response:
    """The error response: ``application/problem+json``, or the format registered for the
    request's path (``scope``) with :func:`register_problem_renderer`."""
    renderer = _renderer_for(scope)
    if renderer is not None:
        return renderer(body, headers)
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        status_code=int(body["status"]),
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _instance(request: Request) -> str | None:
    # The route template, not the raw path: raw paths may carry identifiers.
    route = request.scope.get("route")
    return getattr(route, "path", None)


def _field_errors(errors: tuple[FieldError, ...]) -> list[dict[str, Any]]:
    return [
        {"field": e.field, "loc": list(e.loc), "message": e.message, "type": e.type} for e in errors
    ]


def domain_error_response(request: Request, exc: DomainError) -> Response:
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, ValidationFailed):
        errors = _field_errors(exc.errors)
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        if exc.limit is not None:  # unknown when raised without a budget (legacy callers)
            headers["X-RateLimit-Limit"] = str(exc.limit)
        headers["X-RateLimit-Remaining"] = str(exc.remaining)
        headers["X-RateLimit-Reset"] = str(exc.reset_at)
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = "5"
    body = problem_body(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=_instance(request),
        request_id=request_id_of(request.scope),
        errors=errors,
        extra=exc.data or None,
    )
    return problem_response(body, headers=headers, scope=request.scope)


def _validation_response(request: Request, exc: RequestValidationError) -> Response:
    raw = list(exc.errors())
    json_errors = [e for e in raw if e.get("type") == "json_invalid"]
    if json_errors:
        # Malformed JSON is a 400: the body could not be parsed at all. Report where.
        first = json_errors[0]
        loc = list(first.get("loc", ()))
        position = loc[1] if len(loc) > 1 else None
        ctx = first.get("ctx") or {}
        detail = f"request body is not valid JSON at position {position}"
        if ctx.get("error"):
            detail += f": {ctx['error']}"
        return domain_error_response(
            request, BadRequest(detail, code="malformed_json", data={"position": position})
        )
    field_errors = tuple(
        FieldError(
            loc=tuple(e.get("loc", ())),
            message=str(e.get("msg", "invalid value")),
            type=str(e.get("type", "value_error")),
        )
        for e in raw
    )
    names = ", ".join(sorted({fe.field for fe in field_errors}))
    return domain_error_response(
        request, ValidationFailed(f"invalid fields: {names}", errors=field_errors)
    )


def _http_exception_response(request: Request, exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 500 else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such resource"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"method {request.method} is not allowed here"
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed  # RFC 9110 §15.5.6: every method the path accepts
    body = problem_body(
        status=exc.status_code,
        code=code,
        title=title,
        detail=detail,
        instance=_instance(request),
        request_id=request_id_of(request.scope),
    )
    return problem_response(body, headers=headers, scope=request.scope)


def _allowed_methods(request: Request) -> str | None:
    """Starlette answers 405 with the methods of the first route whose path matched; a path
    served by several routes (GET and POST as two functions) accepts the union of them."""
    methods: set[str] = set()
    template: str | None = None  # the path template of the first route that matched
    for route in _flat_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is Match.NONE:
            continue
        path = getattr(route, "path", None)
        template = template or path
        if path == template:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods)) or None


def _flat_routes(routes: list[Any]) -> list[Any]:
    """Routes in matching order, included routers expanded (FastAPI keeps them nested)."""
    flat: list[Any] = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        flat.extend(_flat_routes(nested.routes) if nested is not None else [route])
    return flat


def _database_unavailable_response(request: Request, exc: Exception) -> Response:
    log.error("database_unavailable", exc_info=exc)
    return domain_error_response(
        request, ServiceUnavailable("the database is not reachable; try again shortly")
    )


def _is_connection_problem(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated


def _is_contention(exc: DBAPIError) -> bool:
    """Lock waits that ran out, deadlocks, serialization failures: retryable, not an outage."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("40"):  # PostgreSQL class 40
        return True
    text = str(exc.orig).lower() if exc.orig is not None else ""
    return type(exc.orig).__module__ == "sqlite3" and ("locked" in text or "busy" in text)


# Conditions of the database itself, not of this request: each answers a 503 naming the
# condition (a read-only database used to fall through to a 500, and a full disk was reported
# as "not reachable", which sends operators to the network instead of the disk). SQLite's
# primary result codes (sqlite3 exposes them as ``sqlite_errorcode``; the low byte is the
# primary code) and PostgreSQL's SQLSTATEs.
_SQLITE_READONLY = 8
_SQLITE_FULL = 13
_PG_READ_ONLY_TRANSACTION = "25006"  # e.g. connected to a hot standby after a failover
_PG_DISK_FULL = "53100"


def _database_condition(exc: DBAPIError) -> ServiceUnavailable | None:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
    primary = sqlite_code & 0xFF if isinstance(sqlite_code, int) else None
    if sqlstate == _PG_READ_ONLY_TRANSACTION or primary == _SQLITE_READONLY:
        return ServiceUnavailable(
            "the database accepts no writes at the moment (read-only); try again later",
            code="database_read_only",
        )
    if sqlstate == _PG_DISK_FULL or primary == _SQLITE_FULL:
        return ServiceUnavailable(
            "the database has no storage space left; try again later", code="database_full"
        )
    return None


async def _dbapi_error_response(request: Request, exc: Exception) -> Response:
    condition = _database_condition(exc) if isinstance(exc, DBAPIError) else None
    if condition is not None:
        # The error's type and code only: the statement and its parameters may hold PHI.
        log.error(
            "database_refused_write",
            code=condition.code,
            error=type(getattr(exc, "orig", None) or exc).__name__,
        )
        return domain_error_response(request, condition)
    if isinstance(exc, DBAPIError) and _is_contention(exc):
        log.warning("database_busy", exc_info=exc)
        return domain_error_response(
            request, ServiceUnavailable("the database is busy; retry shortly", code="database_busy")
        )
    if isinstance(exc, DBAPIError) and _is_connection_problem(exc):
        return _database_unavailable_response(request, exc)
    raise exc


def install_problem_handlers(app: FastAPI) -> None:
    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return domain_error_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(request, exc)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _http_exception_response(request, exc)

    async def on_pool_timeout(request: Request, exc: Exception) -> Response:
        # Every pooled connection stayed busy for pool_timeout: load, not an outage.
        log.warning("database_pool_exhausted", exc_info=exc)
        return domain_error_response(
            request, ServiceUnavailable("the database is busy; retry shortly", code="database_busy")
        )

    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(DBAPIError, _dbapi_error_response)
    app.add_exception_handler(PoolTimeoutError, on_pool_timeout)
