"""The evaluate path's performance changes keep their guarantees (SQLite and PostgreSQL):

- the session check runs in the unit of work the evaluation is recorded in
  (``identity.require_unit_of_work``): a logged-out token is still refused on the next request,
  and a refused request writes nothing;
- ``record_audit``'s fast path (a compare-and-set of the chain head this process last wrote)
  falls back to reading the head whenever another writer, a rollback or tampering moved it,
  so the chain verifies exactly whatever this process's hint says."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from clinicos.bootstrap import Container
from clinicos.cds.models import CdsEvaluation
from clinicos.governance import AuditEvent, record_audit, verify_audit_chain
from clinicos.governance.audit import services as audit_services
from clinicos.governance.models import AuditChainHead
from clinicos.platform.db.models import OutboxMessage
from tests.integration.cds.api_cases import EVALUATE, base_body, signed_in


async def _count(container: Container, organization_id: str, model: Any) -> int:
    async with container.uow(organization_id) as uow:
        query = (
            select(func.count()).select_from(model).where(model.organization_id == organization_id)
        )
        return int((await uow.session.execute(query)).scalar_one())


async def _append(container: Container, organization_id: str, *, commit: bool = True) -> None:
    async with container.uow(organization_id) as uow:
        await record_audit(
            uow,
            organization_id=organization_id,
            actor_type="user",
            actor_id="user-1",
            action="patient.read",
            target_type="patient",
            target_id="patient-1",
            purpose="treatment",
        )
        if commit:
            await uow.commit()


async def _verified_rows(container: Container, organization_id: str) -> int:
    async with container.uow(organization_id) as uow:
        report = await verify_audit_chain(uow, organization_id=organization_id)
    assert report.ok, report
    return report.rows_checked


async def test_each_evaluation_writes_one_row_one_audit_entry_one_outbox_message(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "perf-org", "clinician"))["clinician"]
    org = clinician.member.organization_id
    audit_before = await _count(container, org, AuditEvent)

    for _ in range(3):
        response = await client.post(EVALUATE, json=base_body(), headers=clinician.headers)
        assert response.status_code == 200, response.text

    assert await _count(container, org, CdsEvaluation) == 3
    assert await _count(container, org, AuditEvent) == audit_before + 3
    async with container.uow(org) as uow:
        outbox = (
            await uow.session.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.organization_id == org,
                    OutboxMessage.event_type == "cds.EvaluationRecorded",
                )
            )
        ).scalar_one()
    assert outbox == 3
    assert await _verified_rows(container, org) == audit_before + 3


async def test_logged_out_token_is_refused_on_the_next_evaluate_and_nothing_is_written(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "perf-logout", "clinician"))["clinician"]
    org = clinician.member.organization_id
    ok = await client.post(EVALUATE, json=base_body(), headers=clinician.headers)
    assert ok.status_code == 200, ok.text
    audit_before = await _count(container, org, AuditEvent)

    logout = await client.post("/api/v1/auth/logout", headers=clinician.headers)
    assert logout.status_code == 204
    refused = await client.post(EVALUATE, json=base_body(), headers=clinician.headers)

    assert refused.status_code == 401
    assert await _count(container, org, CdsEvaluation) == 1
    # The logout is audited; the refused evaluation adds nothing.
    assert await _count(container, org, AuditEvent) == audit_before + 1
    assert await _verified_rows(container, org) == audit_before + 1


async def test_audit_fast_path_falls_back_when_another_writer_moved_the_head(
    container: Container,
) -> None:
    org = str(uuid.uuid4())
    await _append(container, org)
    await _append(container, org)  # fast path: this process knows the head
    assert audit_services._known_heads[org][0] == 2

    # Another process appends: from here this process's hint is stale.
    saved = dict(audit_services._known_heads)
    audit_services._known_heads.pop(org)
    await _append(container, org)
    audit_services._known_heads.clear()
    audit_services._known_heads.update(saved)

    await _append(container, org)  # the compare-and-set fails, the head is read instead
    await _append(container, org)

    assert await _verified_rows(container, org) == 5
    async with container.uow(org) as uow:
        head = await uow.session.get(AuditChainHead, org)
        seqs = (
            await uow.session.scalars(
                select(AuditEvent.seq).where(AuditEvent.chain_key == org).order_by(AuditEvent.seq)
            )
        ).all()
    assert head is not None and head.last_seq == 5
    assert list(seqs) == [1, 2, 3, 4, 5]


async def test_audit_fast_path_after_a_rolled_back_append_links_to_the_committed_head(
    container: Container,
) -> None:
    org = str(uuid.uuid4())
    await _append(container, org)
    await _append(container, org, commit=False)  # rolled back: the hint is ahead of the head
    await _append(container, org)

    assert await _verified_rows(container, org) == 2


async def test_audit_fast_path_with_a_forged_hint_never_links_a_wrong_row(
    container: Container,
) -> None:
    org = str(uuid.uuid4())
    await _append(container, org)
    audit_services._known_heads[org] = (1, "f" * 64)  # right seq, wrong hash

    await _append(container, org)
    audit_services._known_heads[org] = (7, "0" * 64)  # a seq the chain never had
    await _append(container, org)

    assert await _verified_rows(container, org) == 3
