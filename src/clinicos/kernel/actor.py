"""Who is acting: the signed-in user in one organization, with the permissions of their roles."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.errors import PermissionDenied


@dataclass(frozen=True)
class Actor:
    """``actor_type`` is how the audit trail names the kind of actor: ``user`` (a signed-in
    person, the default) or ``service`` (a registered external system acting with its own
    credentials, e.g. a CDS Hooks client, whose id is then ``user_id``)."""

    user_id: str
    organization_id: str
    roles: frozenset[str]
    permissions: frozenset[str]
    session_id: str | None = None
    request_id: str | None = None
    actor_type: str = "user"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise PermissionDenied(f"this action needs the '{permission}' permission")


@dataclass(frozen=True)
class SystemActor:
    """The platform itself (CLI bootstrap, scheduled jobs): attributable, but not a user."""

    name: str
    organization_id: str | None = None
    request_id: str | None = None
