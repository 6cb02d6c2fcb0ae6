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
    ``intact`` receives what ``create_in_a`` returned.
    """

    create_in_a: Callable[[World], Awaitable[ObjectIds]]
    intact: Callable[[World, Any], Awaitable[None]]
    body: dict[str, Any] | None = None
    caller_role: str | None = None
    id_field: str = "id"


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
