"""Consent: decisions recorded per patient and purpose (append-only history), the current
state per purpose, ``require_consent`` reading the latest decision at once, and the errors a
caller meets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance import ConsentRequired, require_consent
from clinicos.governance.models import AuditEvent, ConsentRecord
from clinicos.platform.db.models import OutboxMessage
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import SignedIn, actor_of


def url(patient_id: str) -> str:
    return f"/api/v1/patients/{patient_id}/consents"


def decision(purpose: str, decision: str, **extra: Any) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "decision": decision,
        "method": "paper",
        "policy_version": "privacy-2026-01",
        **extra,
    }


async def check(container: Container, who: SignedIn, patient_id: str, purpose: str) -> bool:
    """Whether ``require_consent`` lets ``purpose`` through, in a unit of work of its own."""
    actor = actor_of(who)
    async with container.uow(actor.organization_id) as uow:
        try:
            await require_consent(uow, actor, patient_id, purpose)
        except ConsentRequired:
            return False
    return True


async def test_grant_then_revoke_research_is_reflected_at_once_and_kept_as_history(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "consent-flow", "clinician", "agent")
    clinician = staff["clinician"]
    patient_id = (await create_patient(client, clinician))["id"]

    before = await check(container, clinician, patient_id, "research")
    granted = await client.post(
        url(patient_id), json=decision("research", "granted"), headers=clinician.headers
    )
    while_granted = await check(container, clinician, patient_id, "research")
    revoked = await client.post(
        url(patient_id),
        json=decision("research", "revoked", method="verbal"),
        headers=staff["agent"].headers,
    )
    after = await check(container, clinician, patient_id, "research")
    overview = await client.get(url(patient_id), headers=clinician.headers)

    assert (before, while_granted, after) == (False, True, False)
    assert granted.status_code == 201, granted.text
    assert revoked.status_code == 201, revoked.text
    body = overview.json()
    current = {s["purpose"]: s for s in body["current"]}
    assert current["research"]["allowed"] is False
    assert current["research"]["decision"] == "revoked"
    assert current["treatment"] == {
        "purpose": "treatment",
        "allowed": True,
        "decision": None,
        "latest": None,
    }
    assert current["messaging:whatsapp"]["allowed"] is False
    assert [(h["purpose"], h["decision"]) for h in body["history"]] == [
        ("research", "revoked"),
        ("research", "granted"),
    ]
    assert body["history"][0]["recorded_by"] == staff["agent"].member.user_id


async def test_treatment_holds_until_the_patient_objects(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "consent-treat", "clinician")
    clinician = staff["clinician"]
    patient_id = (await create_patient(client, clinician))["id"]

    implied = await check(container, clinician, patient_id, "treatment")
    denied = await client.post(
        url(patient_id), json=decision("treatment", "denied"), headers=clinician.headers
    )

    assert implied is True
    assert denied.status_code == 201
    assert await check(container, clinician, patient_id, "treatment") is False
    actor = actor_of(clinician)
    async with container.uow(actor.organization_id) as uow:
        with pytest.raises(ConsentRequired) as refused:
            await require_consent(uow, actor, patient_id, "treatment")
    assert refused.value.status == 409
    assert patient_id not in str(refused.value.detail)


async def test_each_decision_writes_one_row_one_audit_entry_and_one_event(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "consent-audit", "nurse")
    nurse = staff["nurse"]
    patient_id = (await create_patient(client, nurse))["id"]
    org = nurse.member.organization_id

    await client.post(
        url(patient_id), json=decision("ai_assistance", "granted"), headers=nurse.headers
    )
    await client.get(url(patient_id), headers=nurse.headers)

    async with owner_engine.connect() as conn:
        consents = (
            await conn.execute(select(ConsentRecord).where(ConsentRecord.organization_id == org))
        ).all()
        audits = (
            await conn.execute(
                select(AuditEvent.action, AuditEvent.target_id).where(
                    AuditEvent.organization_id == org, AuditEvent.action.like("consent.%")
                )
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage.payload).where(
                    OutboxMessage.organization_id == org,
                    OutboxMessage.event_type == "governance.ConsentRecorded",
                )
            )
        ).all()
    assert len(consents) == 1
    assert sorted(audits) == [("consent.granted", patient_id), ("consent.read", patient_id)]
    assert len(events) == 1
    assert events[0].payload["purpose"] == "ai_assistance"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (decision("marketing", "granted"), "purpose"),
        (decision("research", "maybe"), "decision"),
        (decision("research", "granted", method="telepathy"), "method"),
        (decision("research", "granted", policy_version=""), "policy_version"),
        (decision("research", "granted", given_at="2026-01-01T10:00:00"), "given_at"),
        (decision("research", "granted", given_at="2999-01-01T10:00:00Z"), "given_at"),
        (decision("research", "granted", given_at="2020-01-01T10:00:00Z"), "given_at"),
        ({**decision("research", "granted"), "patient_name": "x"}, "patient_name"),
    ],
    ids=["purpose", "decision", "method", "policy", "naive", "future", "too-old", "extra"],
)
async def test_invalid_decision_is_a_422_naming_the_field_and_stores_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    body: dict[str, Any],
    field: str,
) -> None:
    staff = await clinic(container, client, "consent-bad", "clinician")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]

    response = await client.post(url(patient_id), json=body, headers=staff["clinician"].headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"].split(".")[-1] == field for e in response.json()["errors"])
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM consent_record"))).scalar() == 0


async def test_revoking_what_was_never_granted_is_a_409_and_an_unknown_patient_a_404(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "consent-409", "clinician")
    clinician = staff["clinician"]
    patient_id = (await create_patient(client, clinician))["id"]

    nothing_to_revoke = await client.post(
        url(patient_id), json=decision("messaging:sms", "revoked"), headers=clinician.headers
    )
    unknown = await client.post(
        url("00000000-0000-4000-8000-000000000000"),
        json=decision("research", "granted"),
        headers=clinician.headers,
    )

    assert nothing_to_revoke.status_code == 409
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"


async def test_backdated_paper_consent_keeps_when_it_was_given(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "consent-paper", "clinician")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    signed = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)

    response = await client.post(
        url(patient_id),
        json=decision("research", "granted", given_at=signed.isoformat()),
        headers=staff["clinician"].headers,
    )

    assert response.status_code == 201
    stored = response.json()
    assert datetime.fromisoformat(stored["given_at"]) == signed
    assert datetime.fromisoformat(stored["recorded_at"]) > signed


@pytest.mark.parametrize(
    ("role", "method", "status"),
    [
        ("billing", "get", 403),
        ("researcher", "get", 403),
        ("admin", "get", 403),
        ("auditor", "get", 200),
        ("auditor", "post", 403),
        ("pharmacist", "post", 403),
        ("agent", "post", 201),
    ],
)
async def test_consent_permissions_per_role(
    container: Container, client: AsyncClient, role: str, method: str, status: int
) -> None:
    staff = await clinic(container, client, f"consent-perm-{role}-{method}", "clinician", role)
    patient_id = (await create_patient(client, staff["clinician"]))["id"]

    if method == "get":
        response = await client.get(url(patient_id), headers=staff[role].headers)
    else:
        response = await client.post(
            url(patient_id), json=decision("research", "granted"), headers=staff[role].headers
        )

    assert response.status_code == status, response.text


async def test_the_app_role_cannot_rewrite_or_delete_consent_history(
    container: Container, client: AsyncClient
) -> None:
    if not container.settings.effective_database_url.startswith("postgres"):
        pytest.skip("row-level security and table grants are PostgreSQL features")
    staff = await clinic(container, client, "consent-pg", "clinician")
    patient_id = (await create_patient(client, staff["clinician"]))["id"]
    await client.post(
        url(patient_id), json=decision("research", "granted"), headers=staff["clinician"].headers
    )
    org = staff["clinician"].member.organization_id

    for statement in (
        "UPDATE consent_record SET decision = 'denied'",
        "DELETE FROM consent_record",
    ):
        async with container.uow(org) as uow:
            with pytest.raises(DBAPIError):
                await uow.session.execute(text(statement))
