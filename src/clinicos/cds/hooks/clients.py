"""CDS client registration use cases (``clinicos cds clients add|list|remove``): which EHR may
call the CDS Hooks service for an organization, and with which public keys.

Each change is audited on the organization's chain in the same transaction. The JWKS is
validated at registration (public keys of an allowed algorithm only), so a bad key set is
refused here rather than failing every later call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from clinicos.cds.hooks.auth import ALLOWED_ALGORITHMS
from clinicos.cds.hooks.models import CdsHooksClient, CdsHooksJti
from clinicos.governance import record_audit
from clinicos.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

MAX_KEYS = 20
MAX_ISSUER_CHARS = 500
# Members that only private keys (or symmetric secrets) carry: never stored, never accepted.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
AUDIT_ADD = "cds.hooks.client_add"
AUDIT_REMOVE = "cds.hooks.client_remove"
AUDIT_TARGET = "cds_hooks_client"


class ClientIssuerTaken(Conflict):
    code = "cds_hooks_issuer_taken"
    title = "This issuer is already registered"


@dataclass(frozen=True)
class ClientView:
    """A registered client, as the CLI lists it (key ids, not the keys)."""

    client_id: str
    organization_id: str
    issuer: str
    key_ids: tuple[str, ...]
    created_at: datetime


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid fields: {field}", errors=(FieldError(loc=(field,), message=message),)
    )


def parse_jwks(text: str) -> dict[str, Any]:
    """A JSON Web Key Set of public signing keys (RSA, EC or OKP), each usable by PyJWT with an
    allowed algorithm; 422 naming the key otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        raise _invalid("jwks", "is not valid JSON") from None
    keys = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
        raise _invalid("jwks", f"must be an object with 1-{MAX_KEYS} 'keys'")
    for index, key in enumerate(keys):
        _check_key(key, f"jwks.keys[{index}]")
    return {"keys": keys}


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, Mapping) or key.get("kty") not in _KEY_TYPES:
        raise _invalid(where, "must be an RSA, EC or OKP public key")
    if _PRIVATE_MEMBERS & key.keys():
        raise _invalid(where, "holds private key material: register the public key only")
    if key.get("use") not in (None, "sig"):
        raise _invalid(where, "must be a signing key (use 'sig')")
    algorithm = key.get("alg")
    if algorithm is not None and algorithm not in ALLOWED_ALGORITHMS:
        raise _invalid(where, "alg must be one of " + ", ".join(ALLOWED_ALGORITHMS))
    usable = [algorithm] if algorithm else list(ALLOWED_ALGORITHMS)
    for candidate in usable:
        try:
            jwt.PyJWK(dict(key), algorithm=candidate)
            return
        except jwt.PyJWTError:
            continue
    raise _invalid(where, "is not a valid public key for an allowed algorithm")


def _check_issuer(issuer: str, reserved: str) -> str:
    issuer = issuer.strip()
    if not 0 < len(issuer) <= MAX_ISSUER_CHARS or any(c.isspace() for c in issuer):
        raise _invalid("issuer", f"must be 1-{MAX_ISSUER_CHARS} characters without spaces")
    if issuer == reserved:
        raise _invalid("issuer", "is the issuer of clinicos's own access tokens")
    return issuer


async def _audit(uow: SqlUnitOfWork, organization_id: str, action: str, client_id: str) -> None:
    await record_audit(
        uow,
        organization_id=organization_id,
        actor_type="system",
        actor_id="cli",
        action=action,
        target_type=AUDIT_TARGET,
        target_id=client_id,
        purpose="security",
    )


async def add_client(
    *,
    uows: UnitOfWorkFor,
    organization_id: str,
    issuer: str,
    jwks: Mapping[str, Any],
    reserved_issuer: str,
) -> ClientView:
    """Register a CDS client for an organization. ``reserved_issuer`` is clinicos's own token
    issuer, which routes a call to the user-token check and so cannot name a client."""
    issuer = _check_issuer(issuer, reserved_issuer)
    async with uows(organization_id) as uow:
        row = CdsHooksClient(
            id=new_id(),
            organization_id=organization_id,
            issuer=issuer,
            jwks=dict(jwks),
            created_at=uow.clock.now(),
            created_by="cli",
        )
        uow.session.add(row)
        try:
            await uow.session.flush()
        except IntegrityError:  # issuers are unique in the installation (docs/adr/0015)
            raise ClientIssuerTaken("a CDS client with this issuer is already registered") from None
        await _audit(uow, organization_id, AUDIT_ADD, row.id)
        await uow.commit()
    return _view(row)


async def list_clients(*, uows: UnitOfWorkFor, organization_id: str) -> list[ClientView]:
    async with uows(organization_id) as uow:
        rows = (
            await uow.session.scalars(
                select(CdsHooksClient)
                .where(CdsHooksClient.organization_id == organization_id)
                .order_by(CdsHooksClient.created_at, CdsHooksClient.issuer)
            )
        ).all()
    return [_view(row) for row in rows]


async def remove_client(*, uows: UnitOfWorkFor, organization_id: str, issuer: str) -> ClientView:
    """Unregister a client (its next call is refused); its seen token ids go with it."""
    async with uows(organization_id) as uow:
        row = await uow.session.scalar(
            select(CdsHooksClient).where(
                CdsHooksClient.organization_id == organization_id,
                CdsHooksClient.issuer == issuer.strip(),
            )
        )
        if row is None:
            raise NotFound("no CDS client with this issuer in this organization")
        view = _view(row)
        await uow.session.execute(delete(CdsHooksJti).where(CdsHooksJti.client_id == row.id))
        await uow.session.delete(row)
        await uow.session.flush()
        await _audit(uow, organization_id, AUDIT_REMOVE, row.id)
        await uow.commit()
    return view


def _view(row: CdsHooksClient) -> ClientView:
    kids = tuple(str(k.get("kid", "-")) for k in row.jwks.get("keys", []))
    return ClientView(row.id, row.organization_id, row.issuer, kids, row.created_at)
