"""TOTP MFA over the real API: enrolment, the sign-in step, one use per code, recovery codes,
failures counting toward lockout, expiry of the step, session revocation, mandatory MFA for
admins."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    StartApp,
    audit_events,
    bearer,
    enroll_mfa,
    login,
    seed_clinic,
    sign_in,
    totp_code,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app

STEP = timedelta(seconds=30)


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute"})


async def mfa_challenge(app: Harness, email: str) -> str:
    response = await login(app.client, email, PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"mfa_required": True, "mfa_token": body["mfa_token"]}
    return str(body["mfa_token"])


async def complete(app: Harness, mfa_token: str, code: str) -> httpx.Response:
    return await app.client.post(f"{API}/auth/mfa", json={"mfa_token": mfa_token, "code": code})


async def test_mfa_enroll_returns_a_secret_and_its_provisioning_uri(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    # Act
    response = await app.client.post(
        f"{API}/auth/mfa/enroll", headers=bearer(tokens["access_token"])
    )
    # Assert
    assert response.status_code == 200, response.text
    body = response.json()
    uri = urlparse(body["provisioning_uri"])
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["clinicos"]
    assert user.email in uri.path.replace("%40", "@")
    me = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.json()["user"]["mfa_enabled"] is False  # not on until confirmed


async def test_mfa_confirm_with_a_valid_code_returns_ten_recovery_codes(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    # Act
    secret, codes = await enroll_mfa(app, tokens["access_token"])
    # Assert
    assert len(codes) == 10
    assert len(set(codes)) == 10
    me = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.json()["user"]["mfa_enabled"] is True
    assert secret not in me.text


async def test_mfa_confirm_with_a_wrong_code_is_401_and_leaves_mfa_off(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    secret = (
        await app.client.post(f"{API}/auth/mfa/enroll", headers=bearer(tokens["access_token"]))
    ).json()["secret"]
    wrong = totp_code(secret, app.clock.now() + 10 * STEP)
    # Act
    response = await app.client.post(
        f"{API}/auth/mfa/confirm", json={"code": wrong}, headers=bearer(tokens["access_token"])
    )
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_mfa_code"
    assert (await sign_in(app.client, user))["access_token"]  # still no MFA step


async def test_login_with_mfa_on_answers_an_mfa_challenge_without_tokens(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    # Act
    response = await login(app.client, user.email, PASSWORD)
    # Assert
    assert response.status_code == 200
    body = response.json()
    assert body["mfa_required"] is True
    assert body["mfa_token"]
    assert "access_token" not in body
    assert "refresh_token" not in body


async def test_mfa_step_with_a_valid_code_returns_tokens(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    app.clock.advance(STEP)  # the enrolment code is spent; the next step's code is fresh
    mfa_token = await mfa_challenge(app, user.email)
    # Act
    response = await complete(app, mfa_token, app.totp(secret))
    # Assert
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["organization"] == "el-alto"
    me = await app.client.get(f"{API}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_mfa_step_same_code_used_again_within_its_step_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    app.clock.advance(STEP)
    code = app.totp(secret)
    assert (await complete(app, await mfa_challenge(app, user.email), code)).status_code == 200
    app.clock.advance(timedelta(seconds=5))  # still the same 30 s step
    assert app.totp(secret) == code
    # Act
    response = await complete(app, await mfa_challenge(app, user.email), code)
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_mfa_code"


async def test_mfa_step_code_used_at_enrolment_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    # Act: same moment, so the same code the confirmation spent
    response = await complete(app, await mfa_challenge(app, user.email), app.totp(secret))
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_mfa_code"


async def test_mfa_step_recovery_code_works_once(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    _, recovery = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    # Act
    first = await complete(app, await mfa_challenge(app, user.email), recovery[3])
    second = await complete(app, await mfa_challenge(app, user.email), recovery[3])
    # Assert
    assert first.status_code == 200, first.text
    assert "access_token" in first.json()
    assert second.status_code == 401
    assert second.json()["code"] == "invalid_mfa_code"
    other = await complete(app, await mfa_challenge(app, user.email), recovery[4].lower())
    assert other.status_code == 200  # the others still work, in any case


async def test_mfa_step_wrong_codes_count_toward_lockout(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    app.clock.advance(STEP)
    mfa_token = await mfa_challenge(app, user.email)
    wrong = totp_code(secret, app.clock.now() + 10 * STEP)
    # Act
    answers = [await complete(app, mfa_token, wrong) for _ in range(5)]
    # Assert
    assert [r.status_code for r in answers] == [401] * 5
    assert {r.json()["code"] for r in answers} == {"invalid_mfa_code"}
    locked = await login(app.client, user.email, PASSWORD)
    assert locked.status_code == 401
    assert locked.json()["code"] == "invalid_credentials"
    right_code = await complete(app, mfa_token, app.totp(secret))
    assert right_code.status_code == 401  # the open step is refused too while locked
    assert await audit_events(app.container, action="auth.account_locked")


async def test_mfa_step_wrong_codes_across_two_sign_ins_still_lock(app: Harness) -> None:
    # Arrange: 4 wrong codes, a fresh sign-in with the (known) password, then a 5th wrong code
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    wrong = totp_code(secret, app.clock.now() + 10 * STEP)
    first = await mfa_challenge(app, user.email)
    for _ in range(4):
        assert (await complete(app, first, wrong)).status_code == 401
    second = await mfa_challenge(app, user.email)
    assert (await complete(app, second, wrong)).status_code == 401
    # Act
    response = await login(app.client, user.email, PASSWORD)
    # Assert: five second-factor failures in a row lock the account
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


async def test_mfa_step_after_the_mfa_token_expired_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    mfa_token = await mfa_challenge(app, user.email)
    # Act: default mfa_token_ttl_seconds is 300
    app.clock.advance(timedelta(seconds=300))
    response = await complete(app, mfa_token, app.totp(secret))
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_mfa_step_just_before_the_mfa_token_expires_succeeds(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    mfa_token = await mfa_challenge(app, user.email)
    # Act
    app.clock.advance(timedelta(seconds=299))
    response = await complete(app, mfa_token, app.totp(secret))
    # Assert
    assert response.status_code == 200, response.text


async def test_mfa_token_is_not_an_access_token(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await enroll_mfa(app, (await sign_in(app.client, user))["access_token"])
    mfa_token = await mfa_challenge(app, user.email)
    # Act
    response = await app.client.get(f"{API}/me", headers=bearer(mfa_token))
    # Assert
    assert response.status_code == 401


async def test_mfa_enabling_revokes_the_users_other_sessions(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    enrolling = await sign_in(app.client, user)
    other = await sign_in(app.client, user)
    assert (
        await app.client.get(f"{API}/me", headers=bearer(other["access_token"]))
    ).status_code == 200
    # Act
    await enroll_mfa(app, enrolling["access_token"])
    # Assert
    me_other = await app.client.get(f"{API}/me", headers=bearer(other["access_token"]))
    assert me_other.status_code == 401
    refreshed = await app.client.post(
        f"{API}/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert refreshed.status_code == 401
    me_self = await app.client.get(f"{API}/me", headers=bearer(enrolling["access_token"]))
    assert me_self.status_code == 200


async def test_mfa_disable_with_a_valid_code_turns_the_mfa_step_off(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    secret, _ = await enroll_mfa(app, tokens["access_token"])
    app.clock.advance(STEP)
    # Act
    response = await app.client.post(
        f"{API}/auth/mfa/disable",
        json={"code": app.totp(secret)},
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert response.status_code == 204, response.text
    assert "access_token" in (await sign_in(app.client, user))


async def test_mfa_disable_with_a_wrong_code_is_401_and_keeps_mfa_on(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    secret, _ = await enroll_mfa(app, tokens["access_token"])
    # Act: the code spent at enrolment
    response = await app.client.post(
        f"{API}/auth/mfa/disable",
        json={"code": app.totp(secret)},
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_mfa_code"
    assert (await login(app.client, user.email, PASSWORD)).json()["mfa_required"] is True


async def test_mandatory_mfa_admin_login_gets_an_enrol_only_token(start_app: StartApp) -> None:
    # Arrange
    app = await start_app()
    admin = (await seed_clinic(app.container, mfa_required_for_admin=True))["admin"]
    # Act
    body = await sign_in(app.client, admin)
    # Assert
    assert body["scope"] == "mfa_enroll"
    users = await app.client.get(f"{API}/users", headers=bearer(body["access_token"]))
    assert users.status_code == 403
    assert users.json()["code"] == "mfa_enrollment_required"
    me = await app.client.get(f"{API}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 403
    enroll = await app.client.post(f"{API}/auth/mfa/enroll", headers=bearer(body["access_token"]))
    assert enroll.status_code == 200, enroll.text
    assert enroll.json()["secret"]


async def test_mandatory_mfa_admin_after_enrolment_signs_in_with_full_access(
    start_app: StartApp,
) -> None:
    # Arrange
    app = await start_app()
    admin = (await seed_clinic(app.container, mfa_required_for_admin=True))["admin"]
    secret, _ = await enroll_mfa(app, (await sign_in(app.client, admin))["access_token"])
    app.clock.advance(STEP)
    # Act
    response = await complete(app, await mfa_challenge(app, admin.email), app.totp(secret))
    # Assert
    assert response.status_code == 200, response.text
    assert response.json()["scope"] is None
    users = await app.client.get(f"{API}/users", headers=bearer(response.json()["access_token"]))
    assert users.status_code == 200


async def test_mandatory_mfa_does_not_apply_to_a_clinician(start_app: StartApp) -> None:
    # Arrange
    app = await start_app()
    clinician = (await seed_clinic(app.container, mfa_required_for_admin=True))["clinician"]
    # Act
    body = await sign_in(app.client, clinician)
    # Assert
    assert body["scope"] is None
    me = await app.client.get(f"{API}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_mandatory_mfa_off_for_the_organization_admin_gets_full_access(
    app: Harness,
) -> None:
    # Arrange
    admin = (await seed_clinic(app.container, mfa_required_for_admin=False))["admin"]
    # Act
    body = await sign_in(app.client, admin)
    # Assert
    assert body["scope"] is None
    users = await app.client.get(f"{API}/users", headers=bearer(body["access_token"]))
    assert users.status_code == 200
