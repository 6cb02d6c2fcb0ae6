"""Organization (clinic) use cases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from clinicos.identity.errors import AlreadyExists
from clinicos.identity.events import OrganizationCreated
from clinicos.identity.models import Organization
from clinicos.identity.services.audit import audit_by_actor
from clinicos.kernel.actor import Actor, SystemActor
from clinicos.kernel.errors import FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Markets we serve today (our product scope, not a technical limit): Bolivia, Brazil, and USD.
SUPPORTED_CURRENCIES = frozenset({"BOB", "BRL", "USD"})
SUPPORTED_LOCALES = frozenset({"es", "pt", "en"})
COUNTRY = re.compile(r"^[A-Z]{2}$")


def _check_fields(
    *, slug: str, name: str, country: str, locale: str, currency: str, timezone: str
) -> None:
    errors: list[FieldError] = []
    if not SLUG.match(slug):
        errors.append(FieldError(("slug",), "lowercase letters, digits and hyphens, 1-63"))
    if not 1 <= len(name.strip()) <= 200:
        errors.append(FieldError(("name",), "1 to 200 characters"))
    if not COUNTRY.match(country):
        errors.append(FieldError(("country",), "ISO 3166-1 alpha-2 code, e.g. BO"))
    if locale not in SUPPORTED_LOCALES:
        errors.append(FieldError(("locale",), f"one of {sorted(SUPPORTED_LOCALES)}"))
    if currency not in SUPPORTED_CURRENCIES:
        errors.append(FieldError(("currency",), f"one of {sorted(SUPPORTED_CURRENCIES)}"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError(("timezone",), "an IANA time zone, e.g. America/La_Paz"))
    if errors:
        raise ValidationFailed("invalid organization fields", errors=errors)


async def create_organization(
    *,
    uow: SqlUnitOfWork,
    actor: Actor | SystemActor,
    slug: str,
    name: str,
    country: str,
    locale: str,
    currency: str,
    timezone: str,
    mfa_required_for_admin: bool = True,
) -> Organization:
    _check_fields(
        slug=slug, name=name, country=country, locale=locale, currency=currency, timezone=timezone
    )
    existing = await uow.session.scalar(select(Organization.id).where(Organization.slug == slug))
    if existing is not None:
        raise AlreadyExists("an organization with this slug exists")
    org = Organization(
        id=new_id(),
        slug=slug,
        name=name.strip(),
        country=country,
        locale=locale,
        currency=currency,
        timezone=timezone,
        mfa_required_for_admin=mfa_required_for_admin,
        created_at=uow.clock.now(),
    )
    uow.session.add(org)
    await uow.session.flush()
    await audit_by_actor(
        uow,
        actor,
        action="organization.create",
        target_type="organization",
        target_id=org.id,
        organization_id=org.id,
    )
    uow.record(OrganizationCreated(organization_id=org.id, slug=slug))
    return org


async def require_organization_by_slug(uow: SqlUnitOfWork, slug: str) -> Organization:
    org = await uow.session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise NotFound("no such organization")
    return org


async def require_organization(uow: SqlUnitOfWork, organization_id: str) -> Organization:
    org = await uow.session.get(Organization, organization_id)
    if org is None:
        raise NotFound("no such organization")
    return org


@dataclass(frozen=True)
class OrganizationProfile:
    """What other contexts may read of an organization: how it counts days and money."""

    id: str
    locale: str
    timezone: str
    currency: str
    country: str
    name: str = ""
    slug: str = ""


async def organization_profile(uow: SqlUnitOfWork, organization_id: str) -> OrganizationProfile:
    """The organization's locale, timezone, currency and country (404 when unknown)."""
    org = await require_organization(uow, organization_id)
    return OrganizationProfile(
        id=org.id,
        locale=org.locale,
        timezone=org.timezone,
        currency=org.currency,
        country=org.country,
        name=org.name,
        slug=org.slug,
    )


async def organization_ids(uow: SqlUnitOfWork) -> list[str]:
    """Every organization's id, oldest first (installation jobs walk the tenants with it)."""
    return list(
        await uow.session.scalars(select(Organization.id).order_by(Organization.created_at))
    )
