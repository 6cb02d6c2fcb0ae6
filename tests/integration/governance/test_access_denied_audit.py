"""A refused permission is written to the organization's audit trail as a security event."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select

from clinicos.bootstrap import Container
from clinicos.governance import AuditEvent
from clinicos.identity.services.organizations import create_organization
from clinicos.identity.services.users import create_user
from clinicos.kernel.actor import SystemActor

PASSWORD = "a long enough passphrase 42"


async def test_forbidden_request_when_permission_missing_is_audited_as_denied(
    container: Container, client: AsyncClient
) -> None:
    async with container.uow() as uow:
        org = await create_organization(
            uow=uow,
            actor=SystemActor("test"),
            slug="denied-org",
            name="Denied",
            country="BO",
            locale="es",
            currency="BOB",
            timezone="America/La_Paz",
            mfa_required_for_admin=False,
        )
        user = await create_user(
            uow=uow,
            runtime=container.identity,
            actor=SystemActor("test"),
            organization_id=org.id,
            email="nurse@denied.example.com",
            display_name="Nurse",
            roles=["nurse"],
            password=PASSWORD,
        )
        await uow.commit()
    login = await client.post(
        "/api/v1/auth/login", json={"email": "nurse@denied.example.com", "password": PASSWORD}
    )
    token = login.json()["access_token"]

    response = await client.get("/api/v1/audit", headers={"authorization": f"Bearer {token}"})

    assert response.status_code == 403
    async with container.uow(org.id) as uow:
        denied = (
            await uow.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.organization_id == org.id, AuditEvent.action == "access.denied"
                )
            )
        ).all()
    assert len(denied) == 1
    assert denied[0].actor_id == user.id
    assert denied[0].outcome == "denied"
    assert denied[0].target_id == "audit:read"
