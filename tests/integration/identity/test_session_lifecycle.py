"""Sessions over the real API: refresh rotation with reuse detection, logout, and revocation
when the password changes or the user is disabled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    NEW_PASSWORD,
    PASSWORD,
    Harness,
    StartApp,
    audit_events,
    bearer,
    login,
    seed_clinic,
    sign_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute"})


async def refresh(app: Harness, token: str) -> httpx.Response:
    return await app.client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def me_status(app: Harness, tokens: dict[str, Any]) -> int:
    response = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    return response.status_code


async def test_refresh_rotates_the_refresh_token_and_answers_like_login(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    first = await sign_in(app.client, user)
    # Act
    response = await refresh(app, first["refresh_token"])
    # Assert
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["token_type"] == "bearer"
    assert second["expires_in"] == 900
    assert second["organization"] == "el-alto"
    assert await me_status(app, second) == 200
    third = await refresh(app, second["refresh_token"])  # the new one rotates in turn
    assert third.status_code == 200


async def test_refresh_reused_token_fails_and_revokes_the_whole_family(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    first = await sign_in(app.client, user)
    second = (await refresh(app, first["refresh_token"])).json()
    assert await me_status(app, second) == 200
    # Act: the first refresh token presented again (it leaked)
    reused = await refresh(app, first["refresh_token"])
    # Assert
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_token"
    newest = await refresh(app, second["refresh_token"])
    assert newest.status_code == 401
    assert await me_status(app, second) == 401
    assert await me_status(app, first) == 401
    [event] = await audit_events(
        app.container, organization_id=user.organization_id, action="auth.refresh_reuse"
    )
    assert event.actor_id == user.id


async def test_refresh_reuse_leaves_the_users_other_sessions_alone(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    leaked = await sign_in(app.client, user)
    other_device = await sign_in(app.client, user)
    await refresh(app, leaked["refresh_token"])
    # Act
    await refresh(app, leaked["refresh_token"])
    # Assert
    assert await me_status(app, other_device) == 200
    assert (await refresh(app, other_device["refresh_token"])).status_code == 200


async def test_refresh_unknown_token_is_401(app: Harness) -> None:
    # Act
    response = await refresh(app, "x" * 43)
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_refresh_after_the_refresh_token_lifetime_is_401(start_app: StartApp) -> None:
    # Arrange
    app = await start_app(identity={"refresh_token_ttl_seconds": 3600})
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    # Act
    app.clock.advance(timedelta(seconds=3600))
    response = await refresh(app, tokens["refresh_token"])
    # Assert
    assert response.status_code == 401


async def test_access_token_after_its_lifetime_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    app.clock.advance(timedelta(seconds=899))
    assert await me_status(app, tokens) == 200
    # Act
    app.clock.advance(timedelta(seconds=1))
    status = await me_status(app, tokens)
    # Assert
    assert status == 401


async def test_logout_revokes_the_access_and_refresh_tokens(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    other_device = await sign_in(app.client, user)
    # Act
    response = await app.client.post(f"{API}/auth/logout", headers=bearer(tokens["access_token"]))
    # Assert
    assert response.status_code == 204
    assert await me_status(app, tokens) == 401
    assert (await refresh(app, tokens["refresh_token"])).status_code == 401
    assert await me_status(app, other_device) == 200  # only this session ends


async def test_logout_without_a_token_is_401(app: Harness) -> None:
    # Act
    response = await app.client.post(f"{API}/auth/logout")
    # Assert
    assert response.status_code == 401


async def test_password_change_revokes_every_session_of_the_user(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    current = await sign_in(app.client, user)
    other_device = await sign_in(app.client, user)
    # Act
    response = await app.client.post(
        f"{API}/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(current["access_token"]),
    )
    # Assert
    assert response.status_code == 204, response.text
    assert await me_status(app, current) == 401
    assert await me_status(app, other_device) == 401
    assert (await refresh(app, other_device["refresh_token"])).status_code == 401
    assert (await login(app.client, user.email, PASSWORD)).status_code == 401
    assert (await login(app.client, user.email, NEW_PASSWORD)).status_code == 200


async def test_password_change_with_a_wrong_current_password_is_422_and_keeps_sessions(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    # Act
    response = await app.client.post(
        f"{API}/auth/password",
        json={"current_password": "Not-The-Password-9", "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["current_password"]
    assert await me_status(app, tokens) == 200
    assert (await login(app.client, user.email, PASSWORD)).status_code == 200


async def test_disable_user_makes_their_access_token_fail_at_once(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    admin = await sign_in(app.client, users["admin"])
    clinician = await sign_in(app.client, users["clinician"])
    assert await me_status(app, clinician) == 200
    # Act
    response = await app.client.post(
        f"{API}/users/{users['clinician'].id}/disable", headers=bearer(admin["access_token"])
    )
    # Assert
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disabled"
    assert await me_status(app, clinician) == 401
    assert (await refresh(app, clinician["refresh_token"])).status_code == 401
    assert (await login(app.client, users["clinician"].email, PASSWORD)).status_code == 401
    assert await me_status(app, admin) == 200
