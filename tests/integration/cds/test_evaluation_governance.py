"""Every evaluation is a governance record: the cds_evaluation row, its audit entry and the
cds.EvaluationRecorded outbox message commit together or not at all, hold no patient facts,
and stay inside their organization (row-level security on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds import load_rule_pack
from clinicos.cds import services as cds_services
from clinicos.cds.engine import Facts, Order, evaluate
from clinicos.cds.models import CdsEvaluation
from clinicos.governance import AuditEvent
from clinicos.platform.db.models import OutboxMessage
from tests.integration.cds.api_cases import (
    AS_OF,
    EVALUATE,
    load_cases,
    patient_body,
    request_body,
    signed_in,
)
from tests.support.tenancy_fixtures import SignedIn


async def _rows(owner_engine: AsyncEngine, organization_id: str) -> dict[str, list[Any]]:
    """Evaluation, cds audit and cds outbox rows of one organization, read as the owner."""
    async with owner_engine.connect() as conn:
        evaluations = (
            await conn.execute(
                select(CdsEvaluation).where(CdsEvaluation.organization_id == organization_id)
            )
        ).all()
        audits = (
            await conn.execute(
                select(AuditEvent).where(
                    AuditEvent.organization_id == organization_id,
                    AuditEvent.action == "cds.evaluate",
                )
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage).where(
                    OutboxMessage.organization_id == organization_id,
                    OutboxMessage.event_type == "cds.EvaluationRecorded",
                )
            )
        ).all()
    return {"evaluation": list(evaluations), "audit": list(audits), "event": list(events)}


async def _clinician(container: Container, client: AsyncClient, slug: str) -> SignedIn:
    return (await signed_in(container, client, slug, "clinician"))["clinician"]


async def test_evaluate_writes_row_audit_and_event_together(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    case = load_cases()["G-006"]
    clinician = await _clinician(container, client, "gov-org")
    org = clinician.member.organization_id

    response = await client.post(EVALUATE, json=request_body(case), headers=clinician.headers)

    assert response.status_code == 200, response.text
    evaluation_id = response.json()["evaluation_id"]
    rows = await _rows(owner_engine, org)
    assert [len(rows[k]) for k in ("evaluation", "audit", "event")] == [1, 1, 1]
    (row,), (audit,), (event,) = rows["evaluation"], rows["audit"], rows["event"]
    engine = evaluate(patient_body(case["patient"]), case["order"], load_rule_pack(), AS_OF)
    assert (row.id, row.evaluated_by, row.outcome) == (
        evaluation_id,
        clinician.member.user_id,
        "BLOCK",
    )
    assert (row.drug, row.indication, row.as_of) == ("dabigatran", "vte_treatment", AS_OF)
    assert row.reason_keys == ["dabigatran_crcl_30_or_less_vte"]
    assert float(row.crcl_ml_min) == 29.0
    assert (row.rule_pack_id, row.rule_pack_version) == ("doac", load_rule_pack().version)
    assert row.input_hash == engine.input_hash
    assert row.patient_id is None  # inline facts name no patient
    assert (audit.target_type, audit.target_id, audit.purpose, audit.outcome) == (
        "cds_evaluation",
        evaluation_id,
        "treatment",
        "success",
    )
    assert audit.actor_id == clinician.member.user_id
    assert event.payload == {
        "evaluation_id": evaluation_id,
        "evaluated_by": clinician.member.user_id,
        "drug": "dabigatran",
        "indication": "vte_treatment",
        "outcome": "BLOCK",
        "reason_keys": ["dabigatran_crcl_30_or_less_vte"],
        "rule_pack_id": "doac",
        "rule_pack_version": load_rule_pack().version,
        "input_hash": engine.input_hash,
        "patient_id": None,
        "prescription_id": None,  # set by the prescribing gate only
        "prescription_version": None,
        "override_id": None,
        "attestation_ids": None,
    }


async def test_evaluate_when_each_call_repeats_records_each(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = await _clinician(container, client, "repeat-org")
    body = request_body(load_cases()["G-008"])

    ids = set()
    for _ in range(3):
        response = await client.post(EVALUATE, json=body, headers=clinician.headers)
        ids.add(response.json()["evaluation_id"])

    rows = await _rows(owner_engine, clinician.member.organization_id)
    assert len(ids) == 3
    assert {r.id for r in rows["evaluation"]} == {a.target_id for a in rows["audit"]} == ids
    assert {e.payload["evaluation_id"] for e in rows["event"]} == ids


async def test_evaluate_when_audit_fails_after_engine_leaves_nothing(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clinician = await _clinician(container, client, "fail-org")
    engine_calls: list[str] = []
    real_evaluate = cds_services.evaluate

    def counting_evaluate(*args: Any, **kwargs: Any) -> Any:
        result = real_evaluate(*args, **kwargs)
        engine_calls.append(result.outcome)
        return result

    async def failing_audit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(cds_services, "evaluate", counting_evaluate)
    monkeypatch.setattr(cds_services, "record_audit", failing_audit)

    response = await client.post(
        EVALUATE, json=request_body(load_cases()["G-006"]), headers=clinician.headers
    )

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert engine_calls == ["BLOCK"]
    rows = await _rows(owner_engine, clinician.member.organization_id)
    assert rows == {"evaluation": [], "audit": [], "event": []}


async def test_evaluate_row_holds_no_patient_facts(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = await _clinician(container, client, "phi-org")
    body = request_body(load_cases()["G-024"])  # weight 85, SCr 1.0, age 62, ketoconazole

    await client.post(EVALUATE, json=body, headers=clinician.headers)

    rows = await _rows(owner_engine, clinician.member.organization_id)
    stored = repr([tuple(r) for r in rows["evaluation"]]) + repr(rows["event"][0].payload)
    assert "ketoconazole" not in stored
    assert set(CdsEvaluation.__table__.columns.keys()).isdisjoint(Facts.model_fields)
    # The whole order is stored (codes, not patient facts): an attestation is scoped to it.
    assert set(CdsEvaluation.__table__.columns.keys()) & set(Order.model_fields) == {
        "drug",
        "dose_mg",
        "frequency",
        "indication",
    }


async def test_evaluate_row_is_invisible_to_another_organization(
    container: Container, client: AsyncClient
) -> None:
    first = await _clinician(container, client, "tenant-a")
    second = await _clinician(container, client, "tenant-b")
    response = await client.post(
        EVALUATE, json=request_body(load_cases()["G-008"]), headers=first.headers
    )
    evaluation_id = response.json()["evaluation_id"]

    async with container.uow(second.member.organization_id) as uow:
        seen = (
            await uow.session.scalars(
                select(CdsEvaluation).where(
                    CdsEvaluation.organization_id == second.member.organization_id
                )
            )
        ).all()
    async with container.uow(first.member.organization_id) as uow:
        own = await uow.session.get(CdsEvaluation, evaluation_id)

    assert seen == []
    assert own is not None


# -- PostgreSQL: row-level security and grants, as the non-owner app role -----------------------


@pytest.fixture
def pg(container: Container) -> Container:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and grants are PostgreSQL features")
    return container


async def test_app_role_under_other_tenant_sees_no_evaluation(
    pg: Container, client: AsyncClient
) -> None:
    first = await _clinician(pg, client, "rls-a")
    second = await _clinician(pg, client, "rls-b")
    await client.post(EVALUATE, json=request_body(load_cases()["G-006"]), headers=first.headers)

    counts = {}
    for name, tenant in (("other", second.member.organization_id), ("none", "")):
        async with pg.engine.begin() as conn:  # the app role (SET ROLE clinicos_app)
            await conn.execute(
                text("SELECT set_config('app.organization_id', :o, true)"), {"o": tenant}
            )
            counts[name] = (
                await conn.execute(text("SELECT count(*) FROM cds_evaluation"))
            ).scalar_one()
    async with pg.engine.begin() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :o, true)"),
            {"o": first.member.organization_id},
        )
        counts["own"] = (
            await conn.execute(text("SELECT count(*) FROM cds_evaluation"))
        ).scalar_one()

    assert counts == {"other": 0, "none": 0, "own": 1}


async def test_app_role_cannot_insert_for_another_tenant(
    pg: Container, client: AsyncClient
) -> None:
    first = await _clinician(pg, client, "rls-insert-a")
    second = await _clinician(pg, client, "rls-insert-b")

    async with pg.engine.begin() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :o, true)"),
            {"o": first.member.organization_id},
        )
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(
                CdsEvaluation.__table__.insert().values(
                    id="e-1",
                    organization_id=second.member.organization_id,
                    evaluated_by=first.member.user_id,
                    evaluated_at=AS_OF,
                    as_of=AS_OF,
                    drug="apixaban",
                    indication="nvaf",
                    outcome="PASS",
                    crcl_ml_min=None,
                    reason_keys=[],
                    rule_pack_id="doac",
                    rule_pack_version="1.0.0",
                    input_hash="0" * 64,
                )
            )
    assert "row-level security" in str(excinfo.value.orig)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE cds_evaluation SET outcome = 'PASS'", "DELETE FROM cds_evaluation"],
    ids=["update", "delete"],
)
async def test_app_role_cannot_change_or_remove_evaluations(
    pg: Container, client: AsyncClient, statement: str
) -> None:
    clinician = await _clinician(pg, client, "append-only")
    await client.post(EVALUATE, json=request_body(load_cases()["G-006"]), headers=clinician.headers)

    async with pg.engine.connect() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :o, false)"),
            {"o": clinician.member.organization_id},
        )
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(text(statement))

    assert "permission denied" in str(excinfo.value.orig)


async def test_owner_count_matches_one_row_per_evaluation(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = await _clinician(container, client, "count-org")
    for case_id in ("G-001", "G-040", "G-052"):
        await client.post(
            EVALUATE, json=request_body(load_cases()[case_id]), headers=clinician.headers
        )

    async with owner_engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(CdsEvaluation))).scalar_one()
    assert total == 3
