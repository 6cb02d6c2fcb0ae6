"""Evaluation with each organization's active rule pack, on SQLite and PostgreSQL: a local
overlay changes the outcome only in its organization and is reported as local policy with
its own version; production evaluates only with an approved active pack (else 503)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds import catalogue, evaluate, load_rule_pack
from clinicos.cds.models import CdsEvaluation
from tests.integration.cds.api_cases import AS_OF, EVALUATE, signed_in
from tests.integration.cds.packs_support import (
    OVERLAY_SOURCE,
    cli,
    cli_env,
    ok,
    overlay_file,
    production,
    rivaroxaban_at_crcl_20,
)
from tests.support.tenancy_fixtures import SignedIn, assert_problem

LIMITED_DATA = "rivaroxaban_crcl_15_29_limited_data"


async def _clinician(container: Container, client: AsyncClient, slug: str) -> SignedIn:
    return (await signed_in(container, client, slug, "clinician"))["clinician"]


async def test_overlay_org_blocks_rivaroxaban_crcl_20_while_default_org_gets_label_outcome(
    container: Container, client: AsyncClient, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    org_a = await _clinician(container, client, "acme")
    org_b = await _clinician(container, client, "beta")
    env = cli_env(container, tmp_path)
    ok(
        await cli(
            env,
            *("cds", "packs", "activate", "doac", "1.0.0", "--org", "acme"),
            *("--overlay", overlay_file(tmp_path)),
        )
    )
    body = rivaroxaban_at_crcl_20()
    engine = evaluate(body["patient"], body["order"], load_rule_pack(), AS_OF)

    a = await client.post(EVALUATE, json=body, headers=org_a.headers)
    b = await client.post(EVALUATE, json=body, headers=org_b.headers)

    assert a.status_code == b.status_code == 200, (a.text, b.text)
    a_body, b_body = a.json(), b.json()
    assert a_body["crcl_ml_min"] == b_body["crcl_ml_min"] == 20.0
    assert a_body["outcome"] == "BLOCK"
    (a_reason,) = [r for r in a_body["reasons"] if r["key"] == LIMITED_DATA]
    assert (a_reason["severity"], a_reason["policy"]) == ("BLOCK", "local")
    assert a_reason["source"] == OVERLAY_SOURCE
    assert a_body["rule_pack"]["version"].startswith("1.0.0+local.")
    assert len(a_body["rule_pack"]["version"]) == len("1.0.0+local.") + 8
    assert b_body["outcome"] == engine.outcome == "WARN"
    assert {r["key"] for r in b_body["reasons"]} == {r.key for r in engine.reasons}
    assert b_body["rule_pack"] == {"id": "doac", "version": "1.0.0"}
    async with owner_engine.connect() as conn:
        rows = {
            row.id: row.rule_pack_version
            for row in (await conn.execute(select(CdsEvaluation))).all()
        }
    assert rows == {
        a_body["evaluation_id"]: a_body["rule_pack"]["version"],
        b_body["evaluation_id"]: "1.0.0",
    }


async def test_evaluate_in_production_without_active_pack_answers_503(
    container: Container, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinician = await _clinician(container, client, "prod-org")
    monkeypatch.setattr(container, "settings", production(container.settings))

    response = await client.post(EVALUATE, json=rivaroxaban_at_crcl_20(), headers=clinician.headers)

    body = assert_problem(response, 503, "rule_pack_not_active")
    assert "no approved rule pack is active" in body["detail"]
    assert "clinicos cds packs activate" in body["detail"]
    async with container.uow(clinician.member.organization_id) as uow:
        assert (await uow.session.scalars(select(CdsEvaluation))).all() == []


async def test_evaluate_in_production_with_approved_active_pack_succeeds(
    container: Container, client: AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinician = await _clinician(container, client, "prod-ok")
    env = cli_env(container, tmp_path)
    ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    ok(await cli(env, "cds", "packs", "activate", "doac", "1.0.0", "--org", "prod-ok"))
    monkeypatch.setattr(container, "settings", production(container.settings))

    response = await client.post(EVALUATE, json=rivaroxaban_at_crcl_20(), headers=clinician.headers)

    assert response.status_code == 200, response.text
    assert response.json()["rule_pack"] == {"id": "doac", "version": "1.0.0"}


async def test_evaluate_in_production_when_pack_file_edited_after_approval_answers_503(
    container: Container, client: AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinician = await _clinician(container, client, "prod-edit")
    env = cli_env(container, tmp_path)
    ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    ok(await cli(env, "cds", "packs", "activate", "doac", "1.0.0", "--org", "prod-edit"))
    shipped = catalogue.packaged_pack("doac", "1.0.0")
    text = shipped.text.replace("DOAC order check", "DOAC order check (edited)", 1)
    edited = replace(shipped, text=text, sha256=catalogue.sha256_text(text))
    monkeypatch.setattr(catalogue, "packaged_packs", lambda: {("doac", "1.0.0"): edited})
    monkeypatch.setattr(container, "settings", production(container.settings))

    response = await client.post(EVALUATE, json=rivaroxaban_at_crcl_20(), headers=clinician.headers)

    body = assert_problem(response, 503, "rule_pack_not_active")
    assert "approval void" in body["detail"]
