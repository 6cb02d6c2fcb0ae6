"""Rate-limit headers ride on every limited response, not only on successes and 429s."""

from __future__ import annotations

from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.support.tenancy_fixtures import login, tenant


async def test_failed_sign_in_carries_rate_limit_headers(
    container: Container, client: AsyncClient
) -> None:
    await tenant(container, client, "hdr-clinic")

    response = await login(client, "admin@hdr-clinic.example.com", "wrong password here")

    assert response.status_code == 401
    assert response.headers["x-ratelimit-limit"] == "5"
    assert int(response.headers["x-ratelimit-remaining"]) < 5
    assert "x-ratelimit-reset" in response.headers


async def test_no_content_logout_carries_rate_limit_headers(
    container: Container, client: AsyncClient
) -> None:
    admin = await tenant(container, client, "hdr-clinic-2")

    response = await client.post("/api/v1/auth/logout", headers=admin.headers)

    assert response.status_code == 204
    assert response.headers["x-ratelimit-limit"] == "30"
