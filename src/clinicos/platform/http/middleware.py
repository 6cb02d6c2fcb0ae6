"""Pure ASGI middleware: request id, access log, metrics, tracing, last-resort 500, body limit,
schema gate. Pure ASGI (not BaseHTTPMiddleware) so streaming and contextvars behave."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinicos.kernel.errors import PayloadTooLarge
from clinicos.kernel.ids import new_id
from clinicos.platform.db.schema import SchemaGate
from clinicos.platform.http.problems import problem_body, problem_response, request_id_of
from clinicos.platform.observability.logging import get_logger
from clinicos.platform.observability.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS
from clinicos.platform.observability.tracing import Tracing

log = get_logger("clinicos.http")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"  # metric/log label for requests no route matched


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Just inside the security headers: one request id per request (accepted from
    ``X-Request-ID`` when well formed), one access-log line and metric sample labelled by route
    template, and a generic problem body for anything that escaped the exception handlers."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope["method"]
        status_holder = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        HTTP_IN_FLIGHT.inc()
        started = time.perf_counter()
        # Only a configured tracer reads them (trace context propagation).
        headers = (
            {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            if self.tracing.enabled
            else {}
        )
        try:
            with self.tracing.server_span(method, headers) as span:
                try:
                    await self.app(scope, receive, send_wrapper)
                except Exception as exc:
                    log.error("unhandled_exception", exc_info=exc, route=route_template(scope))
                    if not status_holder["started"]:
                        body = problem_body(
                            status=500,
                            code="internal_error",
                            title="Internal error",
                            detail="an unexpected error occurred; quote the request id to support",
                            instance=getattr(scope.get("route"), "path", None),
                            request_id=request_id,
                        )
                        await problem_response(body, scope=scope)(scope, receive, send_wrapper)
                finally:
                    route = route_template(scope)
                    Tracing.finish(span, route=route, method=method, status=status_holder["status"])
        finally:
            elapsed = time.perf_counter() - started
            HTTP_IN_FLIGHT.dec()
            route = route_template(scope)
            status = int(status_holder["status"])
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            HTTP_LATENCY.labels(method=method, route=route).observe(elapsed)
            log.info(
                "http_request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit: at once from Content-Length, or while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False
            if too_large:
                await self._reject(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, so FastAPI's body parsing re-raises it instead of
                    # turning it into "error parsing the body" (400).
                    raise StarletteHTTPException(413, detail=self._detail())
            return message

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"request body exceeds the limit of {self.max_bytes} bytes"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = problem_body(
            status=413,
            code=PayloadTooLarge.code,
            title=PayloadTooLarge.title,
            detail=self._detail(),
            instance=None,
            request_id=request_id_of(scope),
        )
        await problem_response(body, headers={"Connection": "close"}, scope=scope)(
            scope, receive, send
        )


OPERATIONAL_PATHS = frozenset({"/health", "/ready", "/metrics"})


class SchemaGateMiddleware:
    """While the schema is behind the code, answer 503 to everything but the operational routes."""

    def __init__(self, app: ASGIApp, *, gate: SchemaGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL_PATHS:
            await self.app(scope, receive, send)
            return
        await self.gate.recheck_if_behind()
        if not self.gate.blocks_requests:
            await self.app(scope, receive, send)
            return
        body = problem_body(
            status=503,
            code="schema_not_current",
            title="Database schema is not current",
            detail="the database schema is behind this release; run `clinicos db upgrade`",
            instance=None,
            request_id=request_id_of(scope),
        )
        await problem_response(body, headers={"Retry-After": "30"}, scope=scope)(
            scope, receive, send
        )


def install_middleware(
    app: Any, *, tracing: Tracing, max_body_bytes: int, schema_gate: SchemaGate, hsts: bool
) -> None:
    # Starlette wraps in reverse order of addition: the last added is the outermost.
    app.add_middleware(SchemaGateMiddleware, gate=schema_gate)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware, tracing=tracing)
    # Outermost, so even the last-resort 500 from RequestContextMiddleware carries the headers.
    app.add_middleware(SecurityHeadersMiddleware, hsts=hsts)


_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's interactive docs load their script and styles from a CDN.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


_EXTRA_HEADERS_KEY = "clinicos_response_headers"


def add_response_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Ask for headers on this request's response, whichever layer ends up producing it."""
    pending = scope.setdefault("state", {}).setdefault(_EXTRA_HEADERS_KEY, {})
    pending.update({k.lower(): v for k, v in headers.items()})


class SecurityHeadersMiddleware:
    """Headers on every response. API responses may carry PHI or tokens, so none is cached."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"content-security-policy", (_DOCS_CSP if path in _DOCS_PATHS else _API_CSP).encode()),
        ]
        if path.startswith("/api/") or path == "/metrics":
            extra += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
        if self.hsts:
            # RFC 6797; only meaningful (and only sent) when clients reach us over TLS.
            extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in extra if k not in present]
                requested = scope.get("state", {}).get(_EXTRA_HEADERS_KEY, {})
                headers += [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in requested.items()
                    if k.encode("latin-1") not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
