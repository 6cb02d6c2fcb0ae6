"""Shared pieces of the tenant-isolation suite (tests/integration/identity/
test_tenant_isolation.py): the two-tenant world and how each id route is exercised.

Contexts keep their own route cases in their own modules (e.g. tests/integration/records/
isolation_*.py) as ``dict[(method, path), IdRouteCase]``; the suite merges them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from tests.support.tenancy_fixtures import SignedIn

API = "/api/v1"

ObjectIds = str | dict[str, str]
"""What a case creates in A: the object's id, or — for a nested route such as
``/patients/{patient_id}/notes/{note_id}`` — every path parameter by name. The object the
route acts on is the last parameter of the path."""

_PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class World:
    container: Container
    client: AsyncClient
    owner_engine: AsyncEngine
    a: SignedIn  # admin of organization A
    b: SignedIn  # admin of organization B


@dataclass(frozen=True)
class IdRouteCase:
    """How to put an object of this route's kind in A, and how to tell it was left alone.

    ``caller_role``: the route's permission is not an admin's, so each tenant calls it through a
    fresh member with this role instead. ``id_field``: where the response names the object.
    ``intact`` receives what ``create_in_a`` returned. ``created_by_caller``: only the object's
    creator may act on it (a draft note and its author), so ``create_in_a`` gets a World whose
    ``a`` is A's caller, and makes the object as that caller. ``body_for``: a body that
    depends on the ids in the path (FHIR update repeats the id). ``owned``: how to read the
    object's id from the control response when it is not ``body[id_field]`` (a Bundle, say).
    """

    create_in_a: Callable[[World], Awaitable[ObjectIds]]
    intact: Callable[[World, Any], Awaitable[None]]
    body: dict[str, Any] | None = None
    caller_role: str | None = None
    id_field: str = "id"
    created_by_caller: bool = False
    body_for: Callable[[ObjectIds], dict[str, Any]] | None = None
    owned: Callable[[dict[str, Any]], str] | None = None

    def body_with(self, ids: ObjectIds) -> dict[str, Any] | None:
        return self.body_for(ids) if self.body_for is not None else self.body

    def owned_id(self, response_body: dict[str, Any]) -> str:
        if self.owned is not None:
            return self.owned(response_body)
        return str(response_body[self.id_field])


def assert_not_found(response: Any) -> tuple[str, str]:
    """A 404 with the generic ``not_found`` code, as problem+json or (under /fhir) as an
    OperationOutcome; returns what a caller could compare between two 404s."""
    assert response.status_code == 404, response.text
    content_type = response.headers["content-type"]
    body = response.json()
    if content_type.startswith("application/fhir+json"):
        issue = body["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "not_found", body
        return issue["details"]["text"], issue["diagnostics"]
    assert content_type.startswith("application/problem+json"), content_type
    assert body["code"] == "not_found", body
    return body["title"], body["detail"]


def fill(path: str, ids: ObjectIds) -> str:
    """The path with its parameters replaced (a single id fills every parameter)."""
    if isinstance(ids, str):
        return _PARAM.sub(ids, path)
    return _PARAM.sub(lambda m: ids[m.group(1)], path)


def object_id(path: str, ids: ObjectIds) -> str:
    """The id of the object the route acts on: the path's last parameter."""
    if isinstance(ids, str):
        return ids
    return ids[_PARAM.findall(path)[-1]]


def missing_ids(path: str) -> dict[str, str]:
    """Fresh random ids for every parameter: objects that exist nowhere."""
    return {name: str(uuid.uuid4()) for name in _PARAM.findall(path)}


async def member_of(world: World, admin: SignedIn, role: str) -> SignedIn:
    """A signed-in member with ``role`` in the admin's organization."""
    from tests.support.tenancy_fixtures import new_member, sign_in

    slug = admin.member.organization_slug
    member = await new_member(
        world.container,
        organization_id=admin.member.organization_id,
        organization_slug=slug,
        email=f"{role}-{uuid.uuid4().hex[:8]}@{slug}.example.com",
        roles=[role],
    )
    return await sign_in(world.client, member)
