"""CDS client authentication (CDS Hooks 2.0, "Trusting CDS Clients"): a JWT signed with a key
of the client's registered JWKS, for this endpoint's URL, short-lived, used once.

Asymmetric algorithms only: ``alg: none`` and HMAC are refused before any key is chosen, so a
public key can never be used as an HMAC secret. Keys come only from the JWKS stored at
registration; ``jku``/``x5u`` headers are ignored (fetching a URL a caller names would let any
caller make the server request anything). Details in docs/adr/0015-cds-hooks-client-auth.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError

from clinicos.cds.hooks.models import CdsHooksClient, CdsHooksJti
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import AuthenticationRequired
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

ALLOWED_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384", "EdDSA")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
# CDS Hooks 2.0: exp "SHALL be set to no more than 5 minutes in the future". A minute of
# leeway for clock skew; anything longer-lived is refused, which also bounds the jti table.
MAX_LIFETIME = timedelta(minutes=5)
LEEWAY = timedelta(seconds=60)
MAX_TOKEN_CHARS = 8192
MAX_JTI_CHARS = 200
# The client acts with exactly these permissions (identity.Permission values): evaluate, and
# record the clinician's override decisions it reports through feedback.
CLIENT_ROLE = "cds_client"
CLIENT_PERMISSIONS = frozenset({"cds:evaluate", "cds:override"})


class InvalidClientToken(AuthenticationRequired):
    """A CDS client token was refused (401). The detail says which check failed, never a
    claim's value, so integrators can fix their client without the response echoing input."""

    code = "invalid_client_token"


@dataclass(frozen=True)
class CdsClientIdentity:
    """A verified CDS client call: which client, for which organization, as which token."""

    client_id: str
    organization_id: str
    issuer: str
    subject: str | None
    jti: str


def client_actor(identity: CdsClientIdentity, *, request_id: str | None) -> Actor:
    """The client as the actor of the use cases it calls (docs/contexts/cds-hooks.md, "Who
    acts"): ``user_id`` is the client's id and ``actor_type`` is ``service``, so evaluations,
    overrides and their audit rows name the client as a service, never an invented user; the
    clinician it acts for is kept on the card row."""
    return Actor(
        user_id=identity.client_id,
        organization_id=identity.organization_id,
        roles=frozenset({CLIENT_ROLE}),
        permissions=CLIENT_PERMISSIONS,
        request_id=request_id,
        # The audit trail names it as a service (an external system with its own
        # credentials), not as a person: evaluations, overrides and feedback alike.
        actor_type="service",
    )


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, read without verifying it: only to choose which verifier
    (a clinicos access token or a CDS client's) will then check it properly."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidClientToken("the token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidClientToken("the token is not a signed JWT") from None
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidClientToken(
            "the token's algorithm is not allowed: use one of " + ", ".join(ALLOWED_ALGORITHMS)
        )
    return header


def _keys_for(jwks: Mapping[str, Any], header: Mapping[str, Any]) -> list[jwt.PyJWK]:
    """The registered keys that may have signed this token: the one named by ``kid``, or every
    key usable with the token's algorithm when the header names none."""
    kid = header.get("kid")
    candidates = []
    for data in jwks.get("keys", []):
        if not isinstance(data, Mapping):
            continue
        if kid is not None and data.get("kid") != kid:
            continue
        if data.get("alg") not in (None, header["alg"]) or data.get("use") not in (None, "sig"):
            continue
        try:
            candidates.append(jwt.PyJWK(dict(data), algorithm=header["alg"]))
        except jwt.PyJWTError:
            continue
    return candidates


def verify_client_jwt(
    token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    audiences: Collection[str],
    now: datetime,
) -> dict[str, Any]:
    """The claims of a client token signed by one of ``jwks``'s keys; InvalidClientToken
    naming the failed check otherwise. Pure: no database, no clock but ``now``."""
    header = _header(token)
    keys = _keys_for(jwks, header)
    if not keys:
        raise InvalidClientToken("no registered key of this client matches the token")
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                audience=list(audiences),
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAudienceError:
            raise InvalidClientToken("the token's aud is not this endpoint's URL") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidClientToken(f"the token lacks the '{exc.claim}' claim") from None
        except jwt.PyJWTError:
            raise InvalidClientToken("the token is malformed or not yet valid") from None
    if claims is None:
        raise InvalidClientToken("the token's signature does not verify")
    _check_times(claims, now)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise InvalidClientToken(f"the token's jti must be a string of 1-{MAX_JTI_CHARS} chars")
    return claims


def _check_times(claims: Mapping[str, Any], now: datetime) -> None:
    """exp and iat against our clock (not PyJWT's), so tests and the service agree on "now"."""
    try:
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
        issued = datetime.fromtimestamp(float(claims["iat"]), UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidClientToken("the token's exp and iat must be numeric dates") from None
    if expires + LEEWAY <= now:
        raise InvalidClientToken("the token has expired")
    if issued - LEEWAY > now:
        raise InvalidClientToken("the token was issued in the future")
    if expires - now > MAX_LIFETIME + LEEWAY:
        raise InvalidClientToken("the token lives too long: exp at most 5 minutes ahead")


async def authenticate_client(
    *, uows: UnitOfWorkFor, token: str, audiences: Collection[str], now: datetime
) -> CdsClientIdentity:
    """Verify a CDS client's token and spend its ``jti`` (a second use is a replay).

    The client is found by the token's issuer before the tenant is known; on PostgreSQL the
    ``cds_hooks_client_issuer`` policy shows exactly that issuer's row (migration 0009). The
    ``jti`` is stored until the token expires; expired ones of the client are purged first.
    """
    _header(token)  # refuse none/HMAC before touching the database
    issuer = unverified_issuer(token)
    if issuer is None:
        raise InvalidClientToken("the token has no issuer")
    async with uows(None) as uow:
        await _reveal_issuer(uow, issuer)
        client = await uow.session.scalar(
            select(CdsHooksClient).where(CdsHooksClient.issuer == issuer)
        )
        if client is None:
            raise InvalidClientToken("the token's issuer is not a registered CDS client")
        claims = verify_client_jwt(
            token, jwks=client.jwks, issuer=issuer, audiences=audiences, now=now
        )
        await uow.scope_to(client.organization_id)
        await uow.session.execute(
            delete(CdsHooksJti).where(
                CdsHooksJti.client_id == client.id, CdsHooksJti.expires_at < now
            )
        )
        uow.session.add(
            CdsHooksJti(
                client_id=client.id,
                jti=claims["jti"],
                organization_id=client.organization_id,
                expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC) + LEEWAY,
            )
        )
        try:
            await uow.session.flush()
        except IntegrityError:
            raise InvalidClientToken("the token's jti was already used (replay)") from None
        await uow.commit()
    subject = claims.get("sub")
    return CdsClientIdentity(
        client_id=client.id,
        organization_id=client.organization_id,
        issuer=issuer,
        subject=subject if isinstance(subject, str) else None,
        jti=claims["jti"],
    )


async def _reveal_issuer(uow: SqlUnitOfWork, issuer: str) -> None:
    """PostgreSQL: let this transaction read the client row of ``issuer`` (and only it)."""
    if uow.session.get_bind().dialect.name == "postgresql":
        await uow.session.execute(
            text("SELECT set_config('app.cds_issuer', :issuer, true)"), {"issuer": issuer}
        )
