"""TokenCodec, pure: issue/verify round trip and every reason a token is refused (no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinicos.identity.tokens import (
    ALGORITHM,
    REQUIRED_CLAIMS,
    SigningKey,
    TokenCodec,
    TokenInvalid,
    new_signing_key,
    public_key_from_text,
    public_key_text,
    token_hash,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)
ISSUER = "clinicos"
AUDIENCE = "clinicos-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


@pytest.fixture
def key() -> SigningKey:
    return new_signing_key("k1")


@pytest.fixture
def codec(key: SigningKey) -> TokenCodec:
    return TokenCodec(issuer=ISSUER, audience=AUDIENCE, keys={key.kid: key}, active_kid=key.kid)


def issue(codec: TokenCodec, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "user_id": "user-1",
        "organization_id": "org-1",
        "roles": ("clinician", "nurse"),
        "session_id": "session-1",
        "now": NOW,
        "ttl": TTL,
    }
    token, _ = codec.issue(**(args | overrides))
    return token


def resign(key: SigningKey, claims: dict[str, Any], kid: str | None = None) -> str:
    assert key.private_key is not None
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": kid or key.kid})


# -- round trip ----------------------------------------------------------------------------------


def test_verify_access_when_token_just_issued_returns_its_claims(codec: TokenCodec) -> None:
    # Arrange
    token, jti = codec.issue(
        user_id="user-1",
        organization_id="org-1",
        roles=("clinician", "nurse"),
        session_id="session-1",
        now=NOW,
        ttl=TTL,
    )

    # Act
    claims = codec.verify_access(token, now=NOW + timedelta(minutes=1))

    # Assert
    assert claims.user_id == "user-1"
    assert claims.organization_id == "org-1"
    assert claims.roles == ("clinician", "nurse")
    assert claims.session_id == "session-1"
    assert claims.jti == jti
    assert claims.expires_at == NOW + TTL
    assert claims.scope is None
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
    assert set(REQUIRED_CLAIMS) <= set(claims_of(token))


def test_issue_when_called_twice_gives_distinct_jti(codec: TokenCodec) -> None:
    first, jti1 = codec.issue(
        user_id="u", organization_id="o", roles=(), session_id="s", now=NOW, ttl=TTL
    )
    second, jti2 = codec.issue(
        user_id="u", organization_id="o", roles=(), session_id="s", now=NOW, ttl=TTL
    )

    assert jti1 != jti2
    assert first != second


def test_verify_access_when_scope_extra_given_returns_scope(codec: TokenCodec) -> None:
    token = issue(codec, extra={"scope": "mfa_enroll"})

    assert codec.verify_access(token, now=NOW).scope == "mfa_enroll"


def test_decode_when_custom_audience_matches_returns_claims(codec: TokenCodec) -> None:
    token = issue(codec, audience=AUDIENCE + ":mfa")

    assert codec.decode(token, now=NOW, audience=AUDIENCE + ":mfa")["aud"] == AUDIENCE + ":mfa"


def test_verify_access_when_signed_by_retired_key_still_verifies(key: SigningKey) -> None:
    # Arrange: k1 retired (public half only), k2 active.
    old_codec = TokenCodec(issuer=ISSUER, audience=AUDIENCE, keys={"k1": key}, active_kid="k1")
    token = issue(old_codec)
    retired = SigningKey(kid="k1", private_key=None, public_key=key.public_key)
    active = new_signing_key("k2")
    codec = TokenCodec(
        issuer=ISSUER, audience=AUDIENCE, keys={"k1": retired, "k2": active}, active_kid="k2"
    )

    # Act
    claims = codec.verify_access(token, now=NOW)
    new_token = issue(codec)

    # Assert
    assert claims.user_id == "user-1"
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"


def test_codec_when_active_key_has_no_private_half_raises_value_error(key: SigningKey) -> None:
    public_only = SigningKey(kid="k1", private_key=None, public_key=key.public_key)

    with pytest.raises(ValueError, match="private half"):
        TokenCodec(issuer=ISSUER, audience=AUDIENCE, keys={"k1": public_only}, active_kid="k1")
    with pytest.raises(ValueError, match="private half"):
        TokenCodec(issuer=ISSUER, audience=AUDIENCE, keys={"k1": key}, active_kid="k9")


def test_public_key_text_when_round_tripped_returns_same_key(key: SigningKey) -> None:
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw

    restored = public_key_from_text(public_key_text(key.public_key))

    assert restored.public_bytes(*raw) == key.public_key.public_bytes(*raw)


def test_token_hash_when_same_input_is_stable_and_not_the_token() -> None:
    assert token_hash("abc") == token_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert token_hash("abc") != token_hash("abd")


# -- rejections: algorithm and signature ---------------------------------------------------------


def test_verify_access_when_alg_none_raises_token_invalid(codec: TokenCodec) -> None:
    claims = claims_of(issue(codec))
    for alg in ("none", "None", "NONE"):
        unsigned = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': 'k1'})}.{segment(claims)}."
        with pytest.raises(TokenInvalid):
            codec.verify_access(unsigned, now=NOW)


@pytest.mark.parametrize("secret_form", ["raw", "base64_text", "pem"])
def test_verify_access_when_hs256_with_public_key_secret_raises_token_invalid(
    codec: TokenCodec, key: SigningKey, secret_form: str
) -> None:
    secret = {
        "raw": key.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        "base64_text": public_key_text(key.public_key).encode("ascii"),
        "pem": key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }[secret_form]
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}."
    signing_input += segment(claims_of(issue(codec)))
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()

    with pytest.raises(TokenInvalid):
        codec.verify_access(f"{signing_input}.{b64url(mac)}", now=NOW)


def test_verify_access_when_rs256_raises_token_invalid(codec: TokenCodec) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_of(issue(codec)), rsa_key, algorithm="RS256", headers={"kid": "k1"})

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


def test_verify_access_when_kid_unknown_or_missing_raises_token_invalid(
    codec: TokenCodec, key: SigningKey
) -> None:
    claims = claims_of(issue(codec))
    assert key.private_key is not None
    for token in (
        resign(key, claims, kid="k2"),
        jwt.encode(claims, key.private_key, algorithm=ALGORITHM),
    ):
        with pytest.raises(TokenInvalid):
            codec.verify_access(token, now=NOW)


def test_verify_access_when_other_key_same_kid_raises_token_invalid(codec: TokenCodec) -> None:
    impostor = Ed25519PrivateKey.generate()
    token = jwt.encode(
        claims_of(issue(codec)), impostor, algorithm=ALGORITHM, headers={"kid": "k1"}
    )

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


def test_verify_access_when_payload_tampered_raises_token_invalid(codec: TokenCodec) -> None:
    header, _, signature = issue(codec).split(".")
    payload = segment({**claims_of(issue(codec)), "roles": ["admin"]})

    with pytest.raises(TokenInvalid):
        codec.verify_access(f"{header}.{payload}.{signature}", now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "e30.e30.e30"])
def test_verify_access_when_malformed_raises_token_invalid(codec: TokenCodec, token: str) -> None:
    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


# -- rejections: claims (validly signed) ---------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "other-api"},
        {"aud": AUDIENCE + ":mfa"},
        {"iss": "other-issuer"},
        {"roles": "admin"},
        {"roles": ["admin", 7]},
    ],
    ids=["aud_other", "aud_mfa_step", "iss_other", "roles_string", "roles_not_strings"],
)
def test_verify_access_when_claim_wrong_raises_token_invalid(
    codec: TokenCodec, key: SigningKey, changes: dict[str, Any]
) -> None:
    token = resign(key, {**claims_of(issue(codec)), **changes})

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_verify_access_when_required_claim_missing_raises_token_invalid(
    codec: TokenCodec, key: SigningKey, claim: str
) -> None:
    claims = claims_of(issue(codec))
    del claims[claim]

    with pytest.raises(TokenInvalid):
        codec.verify_access(resign(key, claims), now=NOW)


def test_verify_access_when_mfa_step_token_used_raises_token_invalid(codec: TokenCodec) -> None:
    token = issue(codec, audience=AUDIENCE + ":mfa")

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(seconds=1), timedelta(days=1)],
    ids=["at_exp", "just_after", "day_after"],
)
def test_verify_access_when_expired_raises_token_invalid(
    codec: TokenCodec, offset: timedelta
) -> None:
    token = issue(codec)

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW + TTL + offset)


def test_verify_access_one_second_before_exp_accepts(codec: TokenCodec) -> None:
    token = issue(codec)

    assert codec.verify_access(token, now=NOW + TTL - timedelta(seconds=1)).user_id == "user-1"


def test_verify_access_when_not_yet_valid_raises_token_invalid(codec: TokenCodec) -> None:
    token = issue(codec, now=NOW + timedelta(minutes=5))

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


@pytest.mark.parametrize("exp", [1.5e12, "4102444800", None], ids=["float", "string", "null"])
def test_verify_access_when_exp_not_an_integer_raises_token_invalid(
    codec: TokenCodec, key: SigningKey, exp: Any
) -> None:
    token = resign(key, {**claims_of(issue(codec)), "exp": exp})

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)


@pytest.mark.parametrize("nbf", ["soon", None], ids=["string", "null"])
def test_verify_access_when_nbf_not_a_number_raises_token_invalid(
    codec: TokenCodec, key: SigningKey, nbf: Any
) -> None:
    token = resign(key, {**claims_of(issue(codec)), "nbf": nbf})

    with pytest.raises(TokenInvalid):
        codec.verify_access(token, now=NOW)
