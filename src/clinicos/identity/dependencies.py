"""FastAPI dependencies: who is calling, and the permission each route declares.

Every route must depend on exactly one of ``public``, ``authenticated`` (any signed-in user,
acting on themself) or ``require(permission)``; tests/architecture checks all routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from clinicos.identity.errors import InvalidToken
from clinicos.identity.permissions import Permission
from clinicos.identity.services.audit import audit_by_actor
from clinicos.identity.services.sessions import (
    ENROLL_SCOPE,
    authenticate,
    session_actor,
    verified_access_claims,
)
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import PermissionDenied
from clinicos.platform.db.uow import SqlUnitOfWork
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
    await _admit(request, response, actor, scope, allow_enroll_scope, category)
    return actor


async def _admit(
    request: Request,
    response: Response,
    actor: Actor,
    scope: str | None,
    allow_enroll_scope: bool,
    category: str | None,
) -> None:
    """After the session check: the token's scope, then one unit of the user's rate budget."""
    if scope == ENROLL_SCOPE and not allow_enroll_scope:
        raise PermissionDenied(
            "multi-factor authentication is mandatory for this account; enrol it first",
            code="mfa_enrollment_required",
        )
    request.state.actor = actor
    budget = category or ("read" if request.method in _SAFE_METHODS else "write")
    await enforce(request, response, budget, f"user:{actor.user_id}")


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


@dataclass(frozen=True)
class Authorized:
    """What ``require_unit_of_work`` hands a route: the actor, and the open unit of work
    (scoped to the actor's organization) in which their session was just checked."""

    actor: Actor
    uow: SqlUnitOfWork


def require_unit_of_work(
    permission: Permission, *, rate_category: str | None = None
) -> Callable[[Request, Response], AsyncIterator[Authorized]]:
    """Dependency: as ``require(permission)``, but the session check runs in a unit of work
    that the route then uses for its own work, so a request opens one transaction instead of
    two (on SQLite the authentication's own transaction took the write lock, BEGIN IMMEDIATE,
    just to read the session). Use with ``Depends(..., scope="function")``: the unit of work
    closes (rolling back whatever was not committed) when the route returns or raises.

    The guarantees are those of ``require``: the signature, then the session, user status and
    roles read fresh on every request (logout and role changes act on the next request), the
    enrol-only scope refused, one unit of the user's rate budget spent, and a refused
    permission audited (in a unit of work of its own, after this one has closed)."""

    async def dependency(request: Request, response: Response) -> AsyncIterator[Authorized]:
        container = request.app.state.container
        runtime = container.identity
        claims = await verified_access_claims(runtime, _bearer(request))
        # Scoped to the organization the (signed) token names; the session read below must
        # agree with it, or the token is refused.
        async with container.uow(claims.organization_id) as uow:
            actor = await session_actor(
                uow, runtime, claims, request_id=request_id_of(request.scope)
            )
            await _admit(request, response, actor, claims.scope, False, rate_category)
            if actor.can(permission.value):
                yield Authorized(actor=actor, uow=uow)
                return
        # Refused: audited in its own unit of work once this one is closed (on SQLite the
        # pool holds one connection, which this unit of work had).
        await _audit_denied(request, actor, permission)
        actor.require(permission.value)

    dependency.__name__ = f"require_{permission.name}_in_unit_of_work"
    setattr(dependency, PERMISSION_ATTR, permission.value)
    return dependency
