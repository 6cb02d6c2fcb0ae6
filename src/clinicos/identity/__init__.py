"""Identity: organizations (tenants), users, memberships and roles, sign-in, MFA, sessions.

Other contexts import from here only: the route dependencies and the permission names."""

from clinicos.identity.dependencies import authenticated, public, require
from clinicos.identity.permissions import Permission, Role
from clinicos.identity.services.actors import member_actor

__all__ = ["Permission", "Role", "authenticated", "member_actor", "public", "require"]
