"""Access-token negative suite over HTTP (GET /api/v1/me), on SQLite and PostgreSQL.

Every forged or stale token must be answered 401 ``invalid_token`` with one generic detail, so
the response never says *why* (algorithm, key id, audience, ...). Validly signed variants are
forged with the installation's real signing key, loaded the way the app loads it; a control
test proves that an unchanged re-signed token is accepted, so each 401 is caused by the one
change the test makes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx import AsyncClient

from clinicos.bootstrap import Container
from clinicos.identity.keyring import load_codec, rotate
from clinicos.identity.tokens import ALGORITHM, TokenCodec, public_key_text
from clinicos.kernel.clock import FixedClock
from tests.support.tenancy_fixtures import (
    NEW_PASSWORD,
    SignedIn,
    assert_invalid_token,
    bearer,
    new_member,
    new_organization,
    sign_in,
)

ME = "/api/v1/me"
Claims = dict[str, Any]


# -- helpers -------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def claims_of(token: str) -> Claims:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def hs256(claims: Claims, secret: bytes, kid: str) -> str:
    """HMAC-signed by hand: PyJWT refuses key material that looks asymmetric, an attacker won't."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def load_real_codec(container: Container) -> TokenCodec:
    async with container.sessions() as session:
        return await load_codec(
            session,
            container.identity.signing_box,
            container.settings.identity,
            container.clock.now(),
        )


def resign(codec: TokenCodec, claims: Claims, kid: str | None = None) -> str:
    """Sign ``claims`` with the installation's real active key (under ``kid`` if given)."""
    key = codec.keys[codec.active_kid].private_key
    assert key is not None
    return jwt.encode(
        claims, key, algorithm=ALGORITHM, headers={"kid": codec.active_kid if kid is None else kid}
    )


@pytest.fixture
async def caller(container: Container, client: AsyncClient) -> SignedIn:
    """A clinician of an organization that does not require MFA, signed in through the API."""
    org_id = await new_organization(container, "jwt-clinic")
    member = await new_member(
        container,
        organization_id=org_id,
        organization_slug="jwt-clinic",
        email="clinician@jwt-clinic.example.com",
        roles=["clinician"],
    )
    return await sign_in(client, member)


@pytest.fixture
async def codec(container: Container, caller: SignedIn) -> TokenCodec:
    return await load_real_codec(container)


# -- control -------------------------------------------------------------------------------------


async def test_me_when_genuine_or_faithfully_resigned_token_returns_200(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec
) -> None:
    # Arrange
    claims = claims_of(caller.access_token)
    resigned = resign(codec, claims, kid_of(caller.access_token))

    # Act
    genuine = await client.get(ME, headers=caller.headers)
    forged_copy = await client.get(ME, headers=bearer(resigned))

    # Assert
    assert genuine.status_code == 200, genuine.text
    assert forged_copy.status_code == 200, forged_copy.text
    assert forged_copy.json()["user"]["id"] == caller.member.user_id


# -- algorithm pinning ---------------------------------------------------------------------------


async def test_me_when_alg_none_unsigned_token_returns_401(
    client: AsyncClient, caller: SignedIn
) -> None:
    claims = claims_of(caller.access_token)
    header = {"alg": "none", "typ": "JWT", "kid": kid_of(caller.access_token)}
    for unsigned in (
        f"{segment(header)}.{segment(claims)}.",
        f"{segment({**header, 'alg': 'None'})}.{segment(claims)}.",
        # The original signature kept, only the header's algorithm switched off.
        f"{segment(header)}.{segment(claims)}.{caller.access_token.rsplit('.', 1)[1]}",
    ):
        assert_invalid_token(await client.get(ME, headers=bearer(unsigned)))


@pytest.mark.parametrize("secret_form", ["raw_bytes", "base64_text", "pem"])
async def test_me_when_hs256_signed_with_public_key_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec, secret_form: str
) -> None:
    # Arrange: algorithm confusion, the public key (public knowledge) used as an HMAC secret.
    kid = kid_of(caller.access_token)
    public = codec.keys[kid].public_key
    secrets = {
        "raw_bytes": public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        "base64_text": public_key_text(public).encode("ascii"),
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    token = hs256(claims_of(caller.access_token), secrets[secret_form], kid)

    # Act
    response = await client.get(ME, headers=bearer(token))

    # Assert
    assert_invalid_token(response)


async def test_me_when_rs256_signed_with_fresh_rsa_key_returns_401(
    client: AsyncClient, caller: SignedIn
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims_of(caller.access_token),
        rsa_key,
        algorithm="RS256",
        headers={"kid": kid_of(caller.access_token)},
    )

    assert_invalid_token(await client.get(ME, headers=bearer(token)))


# -- claims, validly signed with the real key ----------------------------------------------------


def _set(**changes: Any) -> Callable[[Claims, int], Claims]:
    return lambda claims, _now: {**claims, **changes}


def _drop(name: str) -> Callable[[Claims, int], Claims]:
    return lambda claims, _now: {k: v for k, v in claims.items() if k != name}


CLAIM_CASES: dict[str, Callable[[Claims, int], Claims]] = {
    # The MFA step token's audience: a half-finished sign-in must not pass as an access token.
    "aud_mfa_step": lambda c, _n: {**c, "aud": f"{c['aud']}:mfa"},
    "aud_other_service": _set(aud="some-other-api"),
    "aud_list_without_ours": _set(aud=["some-other-api"]),
    "iss_other": _set(iss="https://evil.example.com"),
    "expired": lambda c, n: {**c, "iat": n - 1000, "nbf": n - 1000, "exp": n - 10},
    "nbf_in_future": lambda c, n: {**c, "nbf": n + 600, "exp": n + 1200},
    "missing_sid": _drop("sid"),
    "missing_jti": _drop("jti"),
    "missing_org": _drop("org"),
    "missing_sub": _drop("sub"),
    "missing_exp": _drop("exp"),
    "missing_aud": _drop("aud"),
    "missing_iss": _drop("iss"),
    "missing_roles": _drop("roles"),
    "roles_not_a_list": _set(roles="admin"),
    # Right key, but the claims no longer match the server-side session.
    "sid_unknown": _set(sid="00000000-0000-0000-0000-000000000000"),
    "sub_other_user": _set(sub="00000000-0000-0000-0000-000000000001"),
    "org_other_organization": _set(org="00000000-0000-0000-0000-000000000002"),
}


@pytest.mark.parametrize("case", sorted(CLAIM_CASES))
async def test_me_when_validly_signed_claims_are_wrong_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec, case: str
) -> None:
    # Arrange
    forged_claims = CLAIM_CASES[case](claims_of(caller.access_token), int(time.time()))
    token = resign(codec, forged_claims, kid_of(caller.access_token))

    # Act
    response = await client.get(ME, headers=bearer(token))

    # Assert
    assert_invalid_token(response)


async def test_me_when_validly_signed_nbf_not_a_number_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec
) -> None:
    token = resign(codec, {**claims_of(caller.access_token), "nbf": "soon"})

    assert_invalid_token(await client.get(ME, headers=bearer(token)))


# -- keys and signatures -------------------------------------------------------------------------


async def test_me_when_kid_unknown_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec
) -> None:
    claims = claims_of(caller.access_token)
    for kid in ("ffffffffffffffff", "", "../../signing_key"):
        assert_invalid_token(await client.get(ME, headers=bearer(resign(codec, claims, kid))))
    # No kid header at all.
    key = codec.keys[codec.active_kid].private_key
    assert key is not None
    headless = jwt.encode(claims, key, algorithm=ALGORITHM)
    assert_invalid_token(await client.get(ME, headers=bearer(headless)))


@pytest.mark.parametrize(
    "change",
    [
        {"roles": ["admin"]},
        {"exp": 4102444800},  # 2100-01-01: a longer life
        {"sub": "00000000-0000-0000-0000-000000000001"},
    ],
    ids=["roles_escalated", "exp_extended", "sub_swapped"],
)
async def test_me_when_payload_tampered_signature_kept_returns_401(
    client: AsyncClient, caller: SignedIn, change: dict[str, Any]
) -> None:
    # Arrange
    header, _, signature = caller.access_token.split(".")
    payload = {**claims_of(caller.access_token), **change}
    tampered = f"{header}.{segment(payload)}.{signature}"

    # Act
    response = await client.get(ME, headers=bearer(tampered))

    # Assert
    assert_invalid_token(response)


async def test_me_when_signed_by_other_ed25519_key_with_same_kid_returns_401(
    client: AsyncClient, caller: SignedIn
) -> None:
    impostor = Ed25519PrivateKey.generate()
    token = jwt.encode(
        claims_of(caller.access_token),
        impostor,
        algorithm=ALGORITHM,
        headers={"kid": kid_of(caller.access_token)},
    )

    assert_invalid_token(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer a.b.c", "Bearer ....", "Basic dXNlcjpwYXNz", "Bearer "],
    ids=["garbage", "three_garbage_segments", "dots", "basic_scheme", "empty"],
)
async def test_me_when_authorization_malformed_returns_401(
    client: AsyncClient, caller: SignedIn, authorization: str
) -> None:
    response = await client.get(ME, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


# -- reuse after the session ended ---------------------------------------------------------------


async def test_me_when_token_used_after_logout_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec, container: Container
) -> None:
    # Arrange
    assert (await client.get(ME, headers=caller.headers)).status_code == 200

    # Act
    logout = await client.post("/api/v1/auth/logout", headers=caller.headers)
    after = await client.get(ME, headers=caller.headers)

    # Assert
    assert logout.status_code == 204, logout.text
    # Still signed correctly and inside its lifetime: refused because its session ended.
    codec.verify_access(caller.access_token, now=container.clock.now())
    assert_invalid_token(after)


async def test_me_when_token_used_after_password_change_returns_401(
    client: AsyncClient, caller: SignedIn, codec: TokenCodec, container: Container
) -> None:
    # Arrange: two sessions of the same user.
    other_session = await sign_in(client, caller.member)
    assert (await client.get(ME, headers=other_session.headers)).status_code == 200

    # Act
    changed = await client.post(
        "/api/v1/auth/password",
        headers=caller.headers,
        json={"current_password": caller.member.password, "new_password": NEW_PASSWORD},
    )

    # Assert
    assert changed.status_code == 204, changed.text
    for token in (caller.access_token, other_session.access_token):
        codec.verify_access(token, now=container.clock.now())
        assert_invalid_token(await client.get(ME, headers=bearer(token)))
    fresh = await sign_in(client, caller.member, password=NEW_PASSWORD)
    assert (await client.get(ME, headers=fresh.headers)).status_code == 200


# -- key rotation --------------------------------------------------------------------------------


async def _rotate(container: Container) -> str:
    async with container.uow() as uow:
        kid = await rotate(uow.session, container.identity.signing_box, uow.clock.now())
        await uow.commit()
    container.identity.codecs.invalidate()
    return kid


async def test_me_after_key_rotation_old_token_valid_and_new_tokens_carry_new_kid(
    client: AsyncClient, caller: SignedIn, container: Container
) -> None:
    # Arrange
    old_kid = kid_of(caller.access_token)

    # Act
    new_kid = await _rotate(container)
    old_still = await client.get(ME, headers=caller.headers)
    fresh = await sign_in(client, caller.member)
    fresh_me = await client.get(ME, headers=fresh.headers)

    # Assert
    assert new_kid != old_kid
    assert old_still.status_code == 200, old_still.text
    assert kid_of(fresh.access_token) == new_kid
    assert fresh_me.status_code == 200, fresh_me.text


async def test_me_after_key_rotation_old_token_refused_once_expired(
    client: AsyncClient, caller: SignedIn, container: Container
) -> None:
    # Arrange
    old_kid = kid_of(caller.access_token)
    new_kid = await _rotate(container)
    ttl = container.settings.identity.access_token_ttl_seconds
    later = container.clock.now() + timedelta(seconds=ttl + 61)

    # Act: the verifying side's clock moves past the token's life and the retired key's grace.
    container.identity.clock = FixedClock(later)
    container.identity.codecs.invalidate()
    response = await client.get(ME, headers=caller.headers)
    codec_later = await container.identity.codec()

    # Assert
    assert_invalid_token(response)
    assert old_kid not in codec_later.keys
    assert codec_later.active_kid == new_kid
