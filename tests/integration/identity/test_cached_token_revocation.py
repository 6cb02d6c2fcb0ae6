"""The signature check of an access token is cached per process (VerifiedTokenCache), but a
revoked session, a disabled user and an expired token are still refused on the very next
request — with the token's signature already in the cache."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import identity_fixtures
from tests.support.identity_fixtures import API, Harness, StartApp, bearer, seed_clinic, sign_in

start_app = identity_fixtures.start_app


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute"})


async def me_status(app: Harness, access_token: str) -> int:
    response = await app.client.get(f"{API}/me", headers=bearer(access_token))
    return response.status_code


async def test_a_logged_out_session_is_refused_although_its_token_is_cached(app: Harness) -> None:
    # Arrange: two requests, so the second one is served from the cache
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    assert await me_status(app, tokens["access_token"]) == 200
    assert await me_status(app, tokens["access_token"]) == 200
    cache = app.container.identity.verified_tokens
    assert len(cache) >= 1
    # Act
    response = await app.client.post(f"{API}/auth/logout", headers=bearer(tokens["access_token"]))
    # Assert
    assert response.status_code == 204
    assert await me_status(app, tokens["access_token"]) == 401


async def test_a_disabled_user_is_refused_although_their_token_is_cached(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    admin = await sign_in(app.client, users["admin"])
    clinician = await sign_in(app.client, users["clinician"])
    assert await me_status(app, clinician["access_token"]) == 200
    # Act
    response = await app.client.post(
        f"{API}/users/{users['clinician'].id}/disable", headers=bearer(admin["access_token"])
    )
    # Assert
    assert response.status_code == 200, response.text
    assert await me_status(app, clinician["access_token"]) == 401


async def test_an_expired_token_is_refused_although_it_is_cached(app: Harness) -> None:
    # Arrange: the session outlives the access token
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    assert await me_status(app, tokens["access_token"]) == 200
    # Act: the clock moves to the token's expiry
    app.clock.advance(timedelta(seconds=tokens["expires_in"]))
    # Assert
    assert await me_status(app, tokens["access_token"]) == 401
