"""Feature flags: defaults until an administrator changes them, per organization, audited,
read by services through ``flag_enabled``."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance import FLAGS, flag_enabled
from clinicos.governance.models import AuditEvent
from tests.support.records_fixtures import clinic

WHATSAPP = "governance.consent.whatsapp.enabled"


async def enabled(container: Container, organization_id: str, key: str) -> bool:
    async with container.uow(organization_id) as uow:
        return await flag_enabled(uow, organization_id, key)


async def test_admin_turns_a_flag_on_for_its_organization_only(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    a = await clinic(container, client, "flags-a", "admin")
    b = await clinic(container, client, "flags-b", "admin")
    org_a = a["admin"].member.organization_id
    org_b = b["admin"].member.organization_id

    listed = await client.get("/api/v1/flags", headers=a["admin"].headers)
    changed = await client.put(
        f"/api/v1/flags/{WHATSAPP}", json={"enabled": True}, headers=a["admin"].headers
    )
    again = await client.put(
        f"/api/v1/flags/{WHATSAPP}", json={"enabled": True}, headers=a["admin"].headers
    )

    assert listed.status_code == 200
    assert {f["key"]: f["enabled"] for f in listed.json()} == {
        key: flag.default for key, flag in FLAGS.items()
    }
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is True
    assert changed.json()["updated_by"] == a["admin"].member.user_id
    assert again.status_code == 200
    assert await enabled(container, org_a, WHATSAPP) is True
    assert await enabled(container, org_b, WHATSAPP) is False
    async with owner_engine.connect() as conn:
        audits = (
            await conn.execute(
                select(AuditEvent.action, AuditEvent.target_id).where(
                    AuditEvent.organization_id == org_a, AuditEvent.action.like("flag.%")
                )
            )
        ).all()
    assert audits == [("flag.enable", WHATSAPP)]  # the repeated call changed nothing


async def test_unknown_flag_is_a_422_and_only_admins_change_flags(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "flags-perm", "admin", "clinician")

    unknown = await client.put(
        "/api/v1/flags/governance.consent.whatsap.enabled",
        json={"enabled": True},
        headers=staff["admin"].headers,
    )
    not_admin = await client.put(
        f"/api/v1/flags/{WHATSAPP}", json={"enabled": True}, headers=staff["clinician"].headers
    )
    not_reader = await client.get("/api/v1/flags", headers=staff["clinician"].headers)
    not_a_bool = await client.put(
        f"/api/v1/flags/{WHATSAPP}", json={"enabled": "yes please"}, headers=staff["admin"].headers
    )

    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "key"
    assert not_admin.status_code == 403
    assert not_reader.status_code == 403
    assert not_a_bool.status_code == 422
    assert await enabled(container, staff["admin"].member.organization_id, WHATSAPP) is False
