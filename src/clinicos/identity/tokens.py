"""Access tokens: short-lived EdDSA-signed JWTs with versioned signing keys (kid), pinned algorithm.

Only Ed25519 (``EdDSA``) is accepted: ``none``, HMAC and RSA tokens are refused before any key is
looked at, so algorithm-confusion attacks (RFC 8725 §2.1, §3.1) have nothing to work with.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
_LAST_TIMESTAMP = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())
REQUIRED_CLAIMS = ("iss", "aud", "sub", "org", "roles", "jti", "sid", "iat", "exp")


class TokenInvalid(Exception):
    """Any reason a token is refused; the reason stays internal, clients see one generic 401."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey | None  # None for retired keys kept only to verify
    public_key: Ed25519PublicKey


def new_signing_key(kid: str | None = None) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    return SigningKey(
        kid=kid or secrets.token_hex(8), private_key=private, public_key=private.public_key()
    )


def private_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def private_key_from_bytes(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    organization_id: str
    roles: tuple[str, ...]
    jti: str
    session_id: str
    expires_at: datetime
    scope: str | None = None


class TokenCodec:
    """Issues and verifies access tokens against a set of signing keys (one active)."""

    def __init__(
        self, *, issuer: str, audience: str, keys: Mapping[str, SigningKey], active_kid: str
    ):
        if active_kid not in keys or keys[active_kid].private_key is None:
            raise ValueError("the active signing key must have its private half")
        self.issuer = issuer
        self.audience = audience
        self.keys = dict(keys)
        self.active_kid = active_kid

    def issue(
        self,
        *,
        user_id: str,
        organization_id: str,
        roles: tuple[str, ...],
        session_id: str,
        now: datetime,
        ttl: timedelta,
        audience: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Return (token, jti)."""
        jti = secrets.token_hex(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": user_id,
            "org": organization_id,
            "roles": list(roles),
            "jti": jti,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            **(extra or {}),
        }
        key = self.keys[self.active_kid].private_key
        assert key is not None
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": self.active_kid})
        return token, jti

    def decode(self, token: str, *, now: datetime, audience: str | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid("algorithm not allowed")
        key = self.keys.get(str(header.get("kid", "")))
        if key is None:
            raise TokenInvalid("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=audience or self.audience,
                issuer=self.issuer,
                # Time claims are checked below against the injected clock, not the wall clock.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(type(exc).__name__) from exc
        moment = int(now.timestamp())
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int) or exp <= moment:
            raise TokenInvalid("expired")
        if exp > _LAST_TIMESTAMP:  # not one of ours, and past what a datetime can hold
            raise TokenInvalid("exp out of range")
        nbf = claims.get("nbf", 0)
        if isinstance(nbf, bool) or not isinstance(nbf, int) or nbf > moment:
            raise TokenInvalid("not yet valid")
        return claims

    def verify_access(self, token: str, *, now: datetime) -> AccessClaims:
        claims = self.decode(token, now=now)
        roles = claims["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TokenInvalid("bad roles claim")
        return AccessClaims(
            user_id=str(claims["sub"]),
            organization_id=str(claims["org"]),
            roles=tuple(roles),
            jti=str(claims["jti"]),
            session_id=str(claims["sid"]),
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            scope=str(claims["scope"]) if claims.get("scope") else None,
        )


class VerifiedTokenCache:
    """Access tokens whose signature and claims this process has already checked: token text ->
    claims, bounded (least recently used out), per codec.

    Verifying an EdDSA signature and decoding the claims was about a tenth of an API request's
    CPU, paid again on every request with the same token. A hit still refuses a token whose
    ``exp`` has passed (against the caller's clock, as ``TokenCodec.decode`` does), and an
    entry counts only for the codec that verified it: when the process reloads its signing
    keys (a rotation or retirement elsewhere), every token is verified afresh. What the cache
    does not hold is anything about the session: the caller still checks, on every request,
    that the session is open and the user active and a member (revocation is immediate)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        # token -> (codec, claims, exp, the moment it was verified)
        self._entries: OrderedDict[str, tuple[TokenCodec, AccessClaims, int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def verify(
        self, codec: TokenCodec, token: str, *, now: datetime, check: Callable[[], AccessClaims]
    ) -> AccessClaims:
        """The claims of ``token``: from the cache when ``codec`` verified it before and it has
        not expired at ``now``; else from ``check()`` (which raises TokenInvalid), cached.
        A clock that went back before the verification (``nbf``) also verifies afresh."""
        entry = self._entries.get(token)
        moment = int(now.timestamp())
        if entry is not None:
            cached_codec, claims, exp, verified_at = entry
            if cached_codec is codec and verified_at <= moment < exp:
                self._entries.move_to_end(token)
                return claims
            del self._entries[token]
            if exp <= moment:
                raise TokenInvalid("expired")
        claims = check()
        self._entries[token] = (codec, claims, int(claims.expires_at.timestamp()), moment)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return claims

    def clear(self) -> None:
        self._entries.clear()


def token_hash(token: str) -> str:
    """Opaque tokens (refresh, reset, verification) are stored only as SHA-256 digests."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)
