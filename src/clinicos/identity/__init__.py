"""Identity: organizations (tenants), users, memberships and roles, sign-in, MFA, sessions.

Other contexts import from here only: the route dependencies and the permission names."""

from clinicos.identity.dependencies import (
    PERMISSION_ATTR,
    Authorized,
    authenticated,
    public,
    require,
    require_unit_of_work,
)
from clinicos.identity.errors import (
    AlreadyExists,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidToken,
    OrganizationRequired,
)
from clinicos.identity.permissions import Permission, Role
from clinicos.identity.services.actors import member_actor
from clinicos.identity.services.mfa_enrollment import (
    Enrollment,
    begin_enrollment,
    confirm_enrollment,
    reset_mfa,
)
from clinicos.identity.services.organizations import (
    OrganizationProfile,
    organization_ids,
    organization_profile,
)
from clinicos.identity.services.retention import purge_ended_sessions, purge_spent_account_tokens
from clinicos.identity.services.sessions import (
    ENROLL_SCOPE,
    MfaChallenge,
    OrganizationChoice,
    TokenPair,
    authenticate,
    complete_mfa,
    login,
    logout,
    organizations_of,
    refresh,
    switch_organization,
)
from clinicos.identity.services.users import (
    create_user,
    disable_user,
    grant_roles,
    list_members,
    require_member,
    revoke_role,
    roles_in,
    unlock_user,
)

__all__ = [
    "ENROLL_SCOPE",
    "PERMISSION_ATTR",
    "AlreadyExists",
    "Authorized",
    "Enrollment",
    "InvalidCredentials",
    "InvalidMfaCode",
    "InvalidToken",
    "MfaChallenge",
    "OrganizationChoice",
    "OrganizationProfile",
    "OrganizationRequired",
    "Permission",
    "Role",
    "TokenPair",
    "authenticate",
    "authenticated",
    "begin_enrollment",
    "complete_mfa",
    "confirm_enrollment",
    "create_user",
    "disable_user",
    "grant_roles",
    "list_members",
    "login",
    "logout",
    "member_actor",
    "organization_ids",
    "organization_profile",
    "organizations_of",
    "public",
    "purge_ended_sessions",
    "purge_spent_account_tokens",
    "refresh",
    "require",
    "require_member",
    "require_unit_of_work",
    "reset_mfa",
    "revoke_role",
    "roles_in",
    "switch_organization",
    "unlock_user",
]
