"""Tenants for identity tests: organizations and members made through the real services, and
signed-in callers made through the real HTTP sign-in.

Organizations are created with ``mfa_required_for_admin=False`` unless asked otherwise, so an
admin's sign-in yields a full access token instead of an MFA-enrolment-only one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from starlette.routing import BaseRoute

from clinicos.bootstrap import Container
from clinicos.governance.models import AuditEvent
from clinicos.identity.permissions import permissions_for
from clinicos.identity.services.organizations import create_organization
from clinicos.identity.services.users import create_user
from clinicos.kernel.actor import Actor, SystemActor

# Long, not on the common-password list, not derived from any test email.
PASSWORD = "Quartz-Lantern-Orchid-7291"
NEW_PASSWORD = "Maple-Harbor-Cinder-5583"
GENERIC_TOKEN_DETAIL = "the token is invalid, expired or revoked"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance", "request_id", "errors"}


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    password: str
    organization_id: str
    organization_slug: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class SignedIn:
    member: Member
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_organization(
    container: Container,
    slug: str,
    *,
    name: str | None = None,
    mfa_required_for_admin: bool = False,
) -> str:
    """Create an organization through the service; return its id."""
    async with container.uow() as uow:
        org = await create_organization(
            uow=uow,
            actor=SystemActor("test"),
            slug=slug,
            name=name or slug.replace("-", " ").title(),
            country="BO",
            locale="es",
            currency="BOB",
            timezone="America/La_Paz",
            mfa_required_for_admin=mfa_required_for_admin,
        )
        await uow.commit()
        return org.id


async def new_member(
    container: Container,
    *,
    organization_id: str,
    organization_slug: str,
    email: str,
    roles: Iterable[str],
    password: str = PASSWORD,
) -> Member:
    """Create a user with roles in one organization through the service."""
    role_list = tuple(roles)
    async with container.uow() as uow:
        user = await create_user(
            uow=uow,
            runtime=container.identity,
            actor=SystemActor("test"),
            organization_id=organization_id,
            email=email,
            display_name=email.split("@", 1)[0],
            roles=list(role_list),
            password=password,
        )
        await uow.commit()
        return Member(
            user_id=user.id,
            email=user.email,
            password=password,
            organization_id=organization_id,
            organization_slug=organization_slug,
            roles=role_list,
        )


async def login(client: AsyncClient, email: str, password: str, **extra: Any) -> Response:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}
    )


async def sign_in(client: AsyncClient, member: Member, password: str | None = None) -> SignedIn:
    """Sign in through the API; fails the test unless a full (no MFA, unscoped) token comes back."""
    response = await login(client, member.email, password or member.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "access_token" in body and body.get("scope") is None, body
    return SignedIn(
        member=member, access_token=body["access_token"], refresh_token=body["refresh_token"]
    )


async def tenant(
    container: Container,
    client: AsyncClient,
    slug: str,
    *,
    roles: Iterable[str] = ("admin",),
    email: str | None = None,
) -> SignedIn:
    """A fresh organization with one member (an admin by default), signed in."""
    org_id = await new_organization(container, slug)
    member = await new_member(
        container,
        organization_id=org_id,
        organization_slug=slug,
        email=email or f"{'-'.join(roles)}@{slug}.example.com",
        roles=roles,
    )
    return await sign_in(client, member)


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def assert_invalid_token(response: Response) -> None:
    """401 invalid_token, with the one generic detail: never the reason it was refused."""
    body = assert_problem(response, 401, "invalid_token")
    assert body["detail"] == GENERIC_TOKEN_DETAIL
    assert set(body) <= PROBLEM_KEYS, f"unexpected problem fields: {set(body) - PROBLEM_KEYS}"


async def audit_count(owner_engine: Any, organization_id: str) -> int:
    """Audit rows of one organization, counted as the owner (row-level security bypassed)."""
    async with owner_engine.connect() as conn:
        counted = await conn.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.organization_id == organization_id)
        )
        return int(counted.scalar_one())


def flatten_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, with included routers flattened (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from flatten_routes(nested.routes)
        else:
            yield route


def routes_with_object_id(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every API route whose path takes a parameter. The console's
    pages (cookie sessions, not bearer tokens) prove their other-clinic 404s in their own tests
    (tests/integration/console/, tests/e2e/)."""
    return {
        (method, route.path)
        for route in flatten_routes(app.routes)
        if isinstance(route, APIRoute)
        and "{" in route.path
        and not route.path.startswith("/console/")
        for method in route.methods or ()
        if method != "HEAD"
    }


def actor_of(who: SignedIn) -> Actor:
    """The Actor a signed-in member's requests act as, for calling use cases directly."""
    roles = frozenset(who.member.roles)
    return Actor(
        user_id=who.member.user_id,
        organization_id=who.member.organization_id,
        roles=roles,
        permissions=frozenset(p.value for p in permissions_for(roles)),
    )
