"""Regression (found by the API fuzzer, tests/fuzz): an admin disabling their own account
locked themself out, and could leave a clinic without any admin. It is refused."""

from __future__ import annotations

from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.support.tenancy_fixtures import tenant


async def test_an_admin_cannot_disable_their_own_account(
    container: Container, client: AsyncClient
) -> None:
    admin = await tenant(container, client, "solo-clinic")
    me = await client.get("/api/v1/me", headers=admin.headers)
    user_id = me.json()["user"]["id"]

    response = await client.post(f"/api/v1/users/{user_id}/disable", headers=admin.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "cannot_disable_self"
    still = await client.get("/api/v1/me", headers=admin.headers)
    assert still.status_code == 200
