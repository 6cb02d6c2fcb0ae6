"""Helpers for the override tests: signed-in staff, evaluations of the worked cases, overrides."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.cds.models import CdsOverride
from clinicos.governance import AuditEvent
from clinicos.platform.db.models import OutboxMessage
from tests.integration.cds.api_cases import EVALUATE, load_cases, request_body
from tests.support.tenancy_fixtures import SignedIn

OVERRIDES = "/api/v1/cds/overrides"
REASONS = "/api/v1/cds/override-reasons"
# One worked case per outcome (shared/clinical/doac-examples.json).
BLOCK_CASE, WARN_CASE, PASS_CASE, ATTEST_CASE = "G-006", "G-018", "G-017", "G-037"
# Free text that stands for PHI: it must never leave the cds_override row.
SECRET_COMMENT = "Pt Jane Roe MRN-4471 says she bled last week"


async def evaluated(client: AsyncClient, who: SignedIn, case_id: str) -> dict[str, Any]:
    """Evaluate a worked case as ``who``; the evaluation response body."""
    response = await client.post(
        EVALUATE, json=request_body(load_cases()[case_id]), headers=who.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def override(
    client: AsyncClient,
    who: SignedIn,
    evaluation_id: str,
    reason_code: str = "benefit_outweighs_risk",
    comment: str | None = None,
) -> Response:
    body: dict[str, Any] = {"evaluation_id": evaluation_id, "reason_code": reason_code}
    if comment is not None:
        body["comment"] = comment
    return await client.post(OVERRIDES, json=body, headers=who.headers)


async def cosign(client: AsyncClient, who: SignedIn, override_id: str) -> Response:
    return await client.post(f"{OVERRIDES}/{override_id}/cosign", headers=who.headers)


async def override_rows(owner_engine: AsyncEngine, organization_id: str) -> list[Any]:
    async with owner_engine.connect() as conn:
        result = await conn.execute(
            select(CdsOverride).where(CdsOverride.organization_id == organization_id)
        )
        return list(result.all())


async def governance_rows(owner_engine: AsyncEngine, organization_id: str) -> dict[str, list[Any]]:
    """The override audit rows and outbox messages of one organization, read as the owner."""
    async with owner_engine.connect() as conn:
        audits = (
            await conn.execute(
                select(AuditEvent)
                .where(
                    AuditEvent.organization_id == organization_id,
                    AuditEvent.action.in_(["cds.override", "cds.override_cosign"]),
                )
                .order_by(AuditEvent.seq)
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage).where(
                    OutboxMessage.organization_id == organization_id,
                    OutboxMessage.event_type.in_(["cds.OverrideRecorded", "cds.OverrideCosigned"]),
                )
            )
        ).all()
    return {"audit": list(audits), "event": list(events)}
