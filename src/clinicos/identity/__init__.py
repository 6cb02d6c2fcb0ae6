"""Identity: organizations (tenants), users, memberships and roles, sign-in, MFA, sessions.

Other contexts import from here only: the route dependencies and the permission names."""

from clinicos.identity.dependencies import authenticated, public, require
from clinicos.identity.permissions import Permission, Role
from clinicos.identity.services.actors import member_actor
from clinicos.identity.services.organizations import (
    OrganizationProfile,
    organization_ids,
    organization_profile,
)
from clinicos.identity.services.retention import purge_ended_sessions, purge_spent_account_tokens

__all__ = [
    "OrganizationProfile",
    "Permission",
    "Role",
    "authenticated",
    "member_actor",
    "organization_ids",
    "organization_profile",
    "public",
    "purge_ended_sessions",
    "purge_spent_account_tokens",
    "require",
]
