"""FastAPI dependencies: who is calling, and the permission each route declares.

Every route must depend on exactly one of ``public``, ``authenticated`` (any signed-in user,
acting on themself) or ``require(permission)``; tests/architecture checks all routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response

from clinicos.identity.errors import InvalidToken
from clinicos.identity.permissions import Permission
from clinicos.identity.services.audit import audit_by_actor
from clinicos.identity.services.sessions import ENROLL_SCOPE, authenticate
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import PermissionDenied
from clinicos.platform.http.problems import request_id_of
from clinicos.platform.http.ratelimit import enforce

PERMISSION_ATTR = "clinicos_permission"
PUBLIC = "public"
AUTHENTICATED = "authenticated"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required")
    return token.strip()


# Reads and writes are budgeted per user; the method says which (assistant routes pass "ai").
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _actor(
    request: Request, response: Response, *, allow_enroll_scope: bool, category: str | None = None
) -> Actor:
    container = request.app.state.container
    actor, scope = await authenticate(
        uows=container.uow,
        runtime=container.identity,
        access_token=_bearer(request),
        request_id=request_id_of(request.scope),
    )
    if scope == ENROLL_SCOPE and not allow_enroll_scope:
        raise PermissionDenied(
            "multi-factor authentication is mandatory for this account; enrol it first",
            code="mfa_enrollment_required",
        )
    request.state.actor = actor
    budget = category or ("read" if request.method in _SAFE_METHODS else "write")
    await enforce(request, response, budget, f"user:{actor.user_id}")
    return actor


async def _audit_denied(request: Request, actor: Actor, permission: Permission) -> None:
    """A refused permission is a security event: it goes on the audit trail."""
    async with request.app.state.container.uow(actor.organization_id) as uow:
        await audit_by_actor(
            uow,
            actor,
            action="access.denied",
            target_type="permission",
            target_id=permission.value,
            outcome="denied",
            purpose="security",
        )
        await uow.commit()


def _mark(func: Callable[..., Awaitable[Any]], permission: str) -> Callable[..., Awaitable[Any]]:
    setattr(func, PERMISSION_ATTR, permission)
    return func


async def public() -> None:
    """Marks a route anyone may call (sign-in, health)."""


_mark(public, PUBLIC)


async def authenticated(request: Request, response: Response) -> Actor:
    return await _actor(request, response, allow_enroll_scope=False)


_mark(authenticated, AUTHENTICATED)


async def enrolling(request: Request, response: Response) -> Actor:
    """Signed in, possibly with a token that may only enrol MFA (admins before their first MFA)."""
    return await _actor(request, response, allow_enroll_scope=True)


_mark(enrolling, AUTHENTICATED)


def require(
    permission: Permission, *, rate_category: str | None = None
) -> Callable[[Request, Response], Awaitable[Actor]]:
    """Dependency: the signed-in actor, if their roles grant ``permission`` (default deny).
    Also spends one unit of the actor's rate budget (by method, or ``rate_category``)."""

    async def dependency(request: Request, response: Response) -> Actor:
        actor = await _actor(request, response, allow_enroll_scope=False, category=rate_category)
        if not actor.can(permission.value):
            await _audit_denied(request, actor, permission)
        actor.require(permission.value)
        return actor

    dependency.__name__ = f"require_{permission.name}"
    return _mark(dependency, permission.value)
