"""Checks that keep PHI out of the audit trail: every field is a short id or a code."""

from __future__ import annotations

import re

from clinicos.governance.errors import InvalidAuditValue

# "service": an external system acting with its own registered credentials (a CDS Hooks client),
# named by its id — neither a person ("user") nor the platform itself ("system").
ACTOR_TYPES = frozenset({"user", "service", "system", "anonymous"})
OUTCOMES = frozenset({"success", "denied", "failure"})
INSTALLATION_CHAIN = "installation"

# Codes are lower-case dotted names ("auth.login", "patient.read"): no spaces, no capitals,
# so a name, a note or a diagnosis cannot pass as one.
_CODE = re.compile(r"^[a-z0-9_.:-]{1,100}$")
# Ids are opaque tokens (UUIDs, request ids, "scheduler:outbox.purge"): no whitespace and no
# "@", so free text and e-mail addresses are refused.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_ORGANIZATION_ID_MAX = 36


def require_code(field: str, value: str) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise InvalidAuditValue(f"audit field '{field}' must be a code matching {_CODE.pattern}")
    return value


def optional_code(field: str, value: str | None) -> str | None:
    return None if value is None else require_code(field, value)


def optional_identifier(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise InvalidAuditValue(
            f"audit field '{field}' must be an id matching {_IDENTIFIER.pattern}"
        )
    return value


def organization_identifier(value: str | None) -> str | None:
    """An organization id, or None for installation-level events."""
    optional_identifier("organization_id", value)
    if value is not None and (len(value) > _ORGANIZATION_ID_MAX or value == INSTALLATION_CHAIN):
        # "installation" is the key of the installation chain; an org must never share it.
        raise InvalidAuditValue("audit field 'organization_id' is not an organization id")
    return value


def require_member(field: str, value: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise InvalidAuditValue(f"audit field '{field}' must be one of {sorted(allowed)}")
    return value
