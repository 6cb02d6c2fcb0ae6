"""Acting as a named member outside a request (operations CLI: imports, demo seeding), so the
audit trail names the person who ran the command, with exactly the permissions of their roles."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from clinicos.identity.models import USER_ACTIVE, UserAccount
from clinicos.identity.permissions import permissions_for
from clinicos.identity.services.organizations import require_organization_by_slug
from clinicos.identity.services.users import normalize_email, roles_in
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import NotFound
from clinicos.platform.db.uow import SqlUnitOfWork


async def member_actor(
    uows: Callable[[str | None], SqlUnitOfWork], *, organization_slug: str, email: str
) -> Actor:
    """The active member ``email`` of ``organization_slug`` as an Actor; NotFound otherwise."""
    async with uows(None) as uow:
        organization = await require_organization_by_slug(uow, organization_slug)
        await uow.scope_to(organization.id)
        user = await uow.session.scalar(
            select(UserAccount).where(UserAccount.email == normalize_email(email))
        )
        roles = (
            await roles_in(uow, user.id, organization.id)
            if user is not None and user.status == USER_ACTIVE
            else frozenset()
        )
    if user is None or not roles:
        raise NotFound("no active member with this email in this organization")
    return Actor(
        user_id=user.id,
        organization_id=organization.id,
        roles=roles,
        permissions=frozenset(p.value for p in permissions_for(roles)),
    )
