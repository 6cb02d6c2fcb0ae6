"""Disabling reaches only as far as the admin's own organization."""

from __future__ import annotations

from httpx import AsyncClient

from clinicos.bootstrap import Container
from clinicos.identity.services.users import grant_roles
from clinicos.kernel.actor import SystemActor
from tests.support.tenancy_fixtures import PASSWORD, login, new_member, new_organization, tenant


async def test_disable_when_user_works_only_here_disables_account(
    container: Container, client: AsyncClient
) -> None:
    admin = await tenant(container, client, "solo-clinic")
    nurse = await new_member(
        container,
        organization_id=admin.member.organization_id,
        organization_slug="solo-clinic",
        email="nurse@solo.example.com",
        roles=["nurse"],
    )

    response = await client.post(f"/api/v1/users/{nurse.user_id}/disable", headers=admin.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert (await login(client, nurse.email, PASSWORD)).status_code == 401


async def test_disable_when_user_also_works_elsewhere_removes_only_this_membership(
    container: Container, client: AsyncClient
) -> None:
    admin_b = await tenant(container, client, "clinic-b")
    org_a = await new_organization(container, "clinic-a")
    shared = await new_member(
        container,
        organization_id=org_a,
        organization_slug="clinic-a",
        email="shared@example.com",
        roles=["clinician"],
    )
    async with container.uow() as uow:
        await grant_roles(
            uow=uow,
            actor=SystemActor("test"),
            organization_id=admin_b.member.organization_id,
            email=shared.email,
            roles=["clinician"],
        )
        await uow.commit()
    in_a = (await login(client, shared.email, PASSWORD, organization="clinic-a")).json()
    in_b = (await login(client, shared.email, PASSWORD, organization="clinic-b")).json()

    response = await client.post(f"/api/v1/users/{shared.user_id}/disable", headers=admin_b.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "active" and response.json()["roles"] == []
    me_b = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {in_b['access_token']}"}
    )
    assert me_b.status_code == 401  # B's session ended with the membership
    me_a = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {in_a['access_token']}"}
    )
    assert me_a.status_code == 200  # A's work goes on
    assert (
        await client.get(f"/api/v1/users/{shared.user_id}", headers=admin_b.headers)
    ).status_code == 404
    again = await login(client, shared.email, PASSWORD)
    assert again.status_code == 200 and again.json()["organization"] == "clinic-a"
