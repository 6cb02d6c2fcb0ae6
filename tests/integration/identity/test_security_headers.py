"""Security headers on API responses (tokens, PHI: never cached) and on operational routes."""

from __future__ import annotations

import httpx
import pytest

from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    StartApp,
    bearer,
    login,
    seed_clinic,
    sign_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app
harness = identity_fixtures.harness


def assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp


def assert_not_cached(response: httpx.Response) -> None:
    assert "no-store" in response.headers["Cache-Control"]


async def test_login_response_carries_security_headers_and_no_store(harness: Harness) -> None:
    # Arrange
    user = (await seed_clinic(harness.container))["clinician"]
    # Act
    response = await login(harness.client, user.email, PASSWORD)
    # Assert
    assert response.status_code == 200
    assert_common_headers(response)
    assert_not_cached(response)


async def test_me_response_carries_security_headers_and_no_store(harness: Harness) -> None:
    # Arrange
    user = (await seed_clinic(harness.container))["clinician"]
    tokens = await sign_in(harness.client, user)
    # Act
    response = await harness.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    # Assert
    assert response.status_code == 200
    assert_common_headers(response)
    assert_not_cached(response)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", f"{API}/auth/login", {"email": "x@elalto.example"}, id="422"),
        pytest.param(
            "POST", f"{API}/auth/login", {"email": "x@y.example", "password": "p"}, id="401"
        ),
        pytest.param("GET", f"{API}/me", None, id="401-no-token"),
        pytest.param("GET", f"{API}/no-such-route", None, id="404"),
    ],
)
async def test_api_error_responses_carry_security_headers_and_no_store(
    harness: Harness, method: str, path: str, body: dict[str, str] | None
) -> None:
    # Act
    response = await harness.client.request(method, path, json=body)
    # Assert
    assert response.status_code >= 400
    assert_common_headers(response)
    assert_not_cached(response)


async def test_health_carries_a_csp_with_frame_ancestors_none(harness: Harness) -> None:
    # Act
    response = await harness.client.get("/health")
    # Assert
    assert response.status_code == 200
    assert_common_headers(response)


async def test_hsts_is_absent_when_not_behind_tls(harness: Harness) -> None:
    # Act
    response = await harness.client.get("/health")
    # Assert
    assert "Strict-Transport-Security" not in response.headers


async def test_hsts_is_sent_when_behind_tls(start_app: StartApp) -> None:
    # Arrange
    app = await start_app(http={"behind_tls": True})
    # Act
    response = await app.client.get("/health")
    # Assert
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
