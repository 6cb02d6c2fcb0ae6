"""The demo installation `make run` seeds: two clinics and one user per role in each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from clinicos.identity.models import Organization
from clinicos.identity.permissions import Role
from clinicos.identity.runtime import IdentityRuntime
from clinicos.identity.services.organizations import create_organization
from clinicos.identity.services.users import create_user
from clinicos.kernel.actor import SystemActor
from clinicos.platform.db.uow import UnitOfWorkFactory

DEMO_ORGANIZATIONS = (
    # slug, name, country, locale, currency, timezone
    ("el-alto", "El Alto", "BO", "es", "BOB", "America/La_Paz"),
    ("santa-cruz", "Santa Cruz", "BO", "es", "BOB", "America/La_Paz"),
)


@dataclass(frozen=True)
class DemoLogin:
    organization: str
    email: str
    role: str


def demo_logins() -> list[DemoLogin]:
    # example.com is reserved for documentation (RFC 2606): no real mailbox is ever addressed.
    return [
        DemoLogin(organization=slug, email=f"{role.value}@{slug}.example.com", role=role.value)
        for slug, *_ in DEMO_ORGANIZATIONS
        for role in Role
    ]


async def seed_demo(
    *, uows: UnitOfWorkFactory, runtime: IdentityRuntime, password: str
) -> list[DemoLogin] | None:
    """Create the demo clinics and users; None when they already exist (nothing changes)."""
    actor = SystemActor("demo-seed")
    async with uows() as uow:
        if await uow.session.scalar(select(Organization.id).limit(1)) is not None:
            return None
        org_ids: dict[str, str] = {}
        for slug, name, country, locale, currency, tz in DEMO_ORGANIZATIONS:
            org = await create_organization(
                uow=uow,
                actor=actor,
                slug=slug,
                name=name,
                country=country,
                locale=locale,
                currency=currency,
                timezone=tz,
            )
            org_ids[slug] = org.id
        logins = demo_logins()
        for login in logins:
            await create_user(
                uow=uow,
                runtime=runtime,
                actor=actor,
                organization_id=org_ids[login.organization],
                email=login.email,
                display_name=f"Demo {login.role} ({login.organization})",
                roles=[login.role],
                password=password,
            )
        await uow.commit()
    return logins
