"""Every override and co-sign is a governance record: the row change, its audit entry and its
outbox event commit together or not at all, and the free-text comment (possible PHI) stays in
the cds_override row: never in audit rows, event payloads or logs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds import overrides as cds_overrides
from clinicos.platform.observability.logging import configure_logging
from tests.integration.cds.api_cases import load_cases, signed_in
from tests.integration.cds.override_support import (
    BLOCK_CASE,
    SECRET_COMMENT,
    cosign,
    evaluated,
    governance_rows,
    override,
    override_rows,
)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    yield stream
    configure_logging("INFO", json=True)  # the session's logging, back


async def test_override_and_cosign_write_audit_and_event_without_comment(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    captured_logs: io.StringIO,
) -> None:
    staff = await signed_in(container, client, "gov-override", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    org = clinician.member.organization_id
    evaluation = await evaluated(client, clinician, BLOCK_CASE)
    evaluation_id = evaluation["evaluation_id"]

    created = await override(client, clinician, evaluation_id, "other", comment=SECRET_COMMENT)
    override_id = created.json()["override_id"]
    signed = await cosign(client, pharmacist, override_id)

    assert (created.status_code, signed.status_code) == (201, 200), (created.text, signed.text)
    (row,) = await override_rows(owner_engine, org)
    # Stored encrypted, bound to this row and column; only the keyring opens it.
    assert row.comment is not None and SECRET_COMMENT not in row.comment
    opened = container.phi.decrypt(
        row.comment,
        organization_id=row.organization_id,
        table="cds_override",
        column="comment",
        row_id=row.id,
    )
    assert opened == SECRET_COMMENT
    rows = await governance_rows(owner_engine, org)
    audits = [(a.action, a.target_type, a.target_id, a.purpose, a.actor_id) for a in rows["audit"]]
    clinician_id, pharmacist_id = clinician.member.user_id, pharmacist.member.user_id
    assert audits == [
        ("cds.override", "cds_override", override_id, "treatment", clinician_id),
        ("cds.override_cosign", "cds_override", override_id, "treatment", pharmacist_id),
    ]
    payloads = {e.event_type: e.payload for e in rows["event"]}
    common = {
        "override_id": override_id,
        "evaluation_id": evaluation_id,
        "reason_code": "other",
        # For the KPIs: the order's drug and the reasons that raised the outcome (not INFO).
        "drug": load_cases()[BLOCK_CASE]["order"]["drug"],
        "reason_keys": sorted(r["key"] for r in evaluation["reasons"] if r["severity"] != "INFO"),
    }
    assert payloads["cds.OverrideRecorded"] == {
        **common,
        "created_by": clinician.member.user_id,
        "status": "pending_cosign",
        "outcome": "BLOCK",
    }
    assert payloads["cds.OverrideCosigned"] == {
        **common,
        "created_by": clinician.member.user_id,
        "cosigned_by": pharmacist.member.user_id,
        "status": "approved",
        "outcome": "BLOCK",
    }
    assert SECRET_COMMENT not in created.text + signed.text
    for record in [*rows["audit"], *rows["event"]]:
        assert SECRET_COMMENT not in json.dumps(_plain(record), default=str)
    logs = captured_logs.getvalue()
    assert logs, "nothing was logged: the check below would prove nothing"
    assert "Jane Roe" not in logs and "MRN-4471" not in logs


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def test_override_when_audit_fails_after_insert_leaves_no_override(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clinician = (await signed_in(container, client, "fail-override", "clinician"))["clinician"]
    org = clinician.member.organization_id
    evaluation_id = (await evaluated(client, clinician, BLOCK_CASE))["evaluation_id"]

    async def failing_audit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(cds_overrides, "record_audit", failing_audit)
    response = await override(client, clinician, evaluation_id, comment=SECRET_COMMENT)

    assert response.status_code == 500
    assert SECRET_COMMENT not in response.text
    assert await override_rows(owner_engine, org) == []
    rows = await governance_rows(owner_engine, org)
    assert (rows["audit"], rows["event"]) == ([], [])
    monkeypatch.undo()
    retried = await override(client, clinician, evaluation_id)
    assert retried.status_code == 201, retried.text


async def test_cosign_when_audit_fails_leaves_override_pending(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff = await signed_in(container, client, "fail-cosign", "clinician", "pharmacist")
    org = staff["clinician"].member.organization_id
    evaluation_id = (await evaluated(client, staff["clinician"], BLOCK_CASE))["evaluation_id"]
    override_id = (await override(client, staff["clinician"], evaluation_id)).json()["override_id"]

    async def failing_audit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(cds_overrides, "record_audit", failing_audit)
    response = await cosign(client, staff["pharmacist"], override_id)

    assert response.status_code == 500
    (row,) = await override_rows(owner_engine, org)
    assert (row.status, row.cosigned_by, row.cosigned_at) == ("pending_cosign", None, None)
    rows = await governance_rows(owner_engine, org)
    assert [a.action for a in rows["audit"]] == ["cds.override"]
    assert [e.event_type for e in rows["event"]] == ["cds.OverrideRecorded"]


async def test_block_override_when_cosign_not_required_by_policy_is_approved(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "nocosign-org", "clinician"))["clinician"]
    evaluation_id = (await evaluated(client, clinician, BLOCK_CASE))["evaluation_id"]
    container.settings.cds.block_override_needs_cosign = False
    try:
        response = await override(client, clinician, evaluation_id)
    finally:
        container.settings.cds.block_override_needs_cosign = True

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "approved"


async def test_override_rows_as_app_role_are_tenant_scoped_and_never_deleted(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and grants are PostgreSQL features")
    clinician = (await signed_in(container, client, "rls-override", "clinician"))["clinician"]
    org = clinician.member.organization_id
    evaluation_id = (await evaluated(client, clinician, BLOCK_CASE))["evaluation_id"]
    assert (await override(client, clinician, evaluation_id)).status_code == 201

    async with container.engine.connect() as conn:
        unscoped = (await conn.execute(text("SELECT count(*) FROM cds_override"))).scalar_one()
        await conn.execute(text("SELECT set_config('app.organization_id', :o, false)"), {"o": org})
        scoped = (await conn.execute(text("SELECT count(*) FROM cds_override"))).scalar_one()
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(text("DELETE FROM cds_override"))
        await conn.rollback()

    assert (unscoped, scoped) == (0, 1)
    assert "permission denied" in str(excinfo.value.orig)
    assert len(await override_rows(owner_engine, org)) == 1
