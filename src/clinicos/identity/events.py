"""Identity's domain events (ids only, never names or emails)."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class OrganizationCreated(DomainEvent):
    event_type = "identity.OrganizationCreated"
    slug: str


@dataclass(frozen=True, kw_only=True)
class UserCreated(DomainEvent):
    event_type = "identity.UserCreated"
    user_id: str
    roles: list[str]


@dataclass(frozen=True, kw_only=True)
class UserDisabled(DomainEvent):
    event_type = "identity.UserDisabled"
    user_id: str


@dataclass(frozen=True, kw_only=True)
class AccountLocked(DomainEvent):
    event_type = "identity.AccountLocked"
    user_id: str
