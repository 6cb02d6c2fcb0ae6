"""`clinicos cds packs list|show|approve|activate` end to end on SQLite and PostgreSQL: the
catalogue, approval recorded in the database (and audited on the installation chain),
activation with an overlay (audited on the organization's chain), production's refusal of
unapproved packs, and an edited pack file losing its approval."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds import catalogue
from clinicos.cds.models import CdsPackActivation, CdsRulePack
from clinicos.cds.packs import APPROVAL_VOID, APPROVED, list_packs
from clinicos.governance import AuditEvent
from tests.integration.cds.packs_support import (
    OVERLAY,
    cli,
    cli_env,
    cli_in_production,
    failed,
    ok,
    overlay_file,
)
from tests.support.tenancy_fixtures import new_organization


async def _audits(owner_engine: AsyncEngine, action: str) -> list[AuditEvent]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows.all())  # type: ignore[arg-type]


async def _activation(owner_engine: AsyncEngine, organization_id: str) -> CdsPackActivation:
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                select(CdsPackActivation).where(
                    CdsPackActivation.organization_id == organization_id
                )
            )
        ).one()
    return row  # type: ignore[return-value]


async def test_packs_list_and_show_when_fresh_register_unapproved_pack(
    container: Container, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    env = cli_env(container, tmp_path)

    listed = ok(await cli(env, "cds", "packs", "list"))
    shown = ok(await cli(env, "cds", "packs", "show", "doac", "1.0.0"))

    assert "doac 1.0.0  unapproved" in listed
    assert "used by: (no organization)" in listed
    assert "approval:  unapproved" in shown
    assert "rules (30):" in shown
    assert "rivaroxaban_crcl_15_29_limited_data" in shown and " WARN   local " in shown
    async with owner_engine.connect() as conn:
        (row,) = (await conn.execute(select(CdsRulePack))).all()
    packaged = catalogue.packaged_pack("doac", "1.0.0")
    assert (row.id, row.version, row.content_sha256) == ("doac", "1.0.0", packaged.sha256)
    assert row.approved_at is None and row.reviewer is None


async def test_packs_approve_records_reviewer_and_audits_installation_chain(
    container: Container, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    env = cli_env(container, tmp_path)

    out = ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    again = failed(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Y"))
    listed = ok(await cli(env, "cds", "packs", "list"))

    assert "doac 1.0.0 approved by Dr. X on " in out
    assert "already approved by Dr. X" in again
    assert "doac 1.0.0  approved by Dr. X" in listed
    async with owner_engine.connect() as conn:
        (row,) = (await conn.execute(select(CdsRulePack))).all()
    assert (row.reviewer, row.approved_by) == ("Dr. X", "cli")
    assert row.approved_sha256 == catalogue.packaged_pack("doac", "1.0.0").sha256
    (audit,) = await _audits(owner_engine, "cds.pack.approve")
    assert (audit.organization_id, audit.actor_type, audit.actor_id) == (None, "system", "cli")
    assert (audit.target_type, audit.target_id) == ("cds_rule_pack", "doac:1.0.0")


async def test_packs_activate_with_overlay_records_and_audits_organization_chain(
    container: Container, tmp_path: Path, owner_engine: AsyncEngine
) -> None:
    env = cli_env(container, tmp_path)
    org_id = await new_organization(container, "acme")
    await new_organization(container, "beta")

    out = ok(
        await cli(
            env,
            *("cds", "packs", "activate", "doac", "1.0.0", "--org", "acme"),
            *("--overlay", overlay_file(tmp_path)),
        )
    )
    listed = ok(await cli(env, "cds", "packs", "list"))

    row = await _activation(owner_engine, org_id)
    assert row.effective_version == f"1.0.0+local.{row.overlay_sha256[:8]}"
    assert f"activated doac {row.effective_version} for acme" in out
    assert "is not approved" in out  # a warning outside production
    assert f"used by: acme ({row.effective_version})" in listed
    assert (row.pack_id, row.pack_version, row.activated_by) == ("doac", "1.0.0", "cli")
    assert row.overlay["rules"]["rivaroxaban_crcl_15_29_limited_data"]["severity"] == "BLOCK"
    (audit,) = await _audits(owner_engine, "cds.pack.activate")
    assert (audit.organization_id, audit.actor_id) == (org_id, "cli")
    assert audit.target_id == f"doac:1.0.0_local.{row.overlay_sha256[:8]}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activate", "doac", "9.9.9", "--org", "acme"), "no packaged rule pack 'doac 9.9.9'"),
        (("activate", "doac", "1.0.0", "--org", "nowhere"), "no such organization"),
        (("show", "nope", "1.0.0"), "no packaged rule pack 'nope 1.0.0'"),
        (("approve", "doac", "1.0.0", "--reviewer", "  "), "--reviewer must be 1 to 200"),
        (("activate", "doac", "1.0.0", "--org", "acme", "--overlay", "/no/such.json"), "cannot"),
    ],
    ids=["unknown-version", "unknown-org", "unknown-pack", "blank-reviewer", "missing-file"],
)
async def test_packs_cli_when_input_is_wrong_exits_1_with_one_line(
    container: Container, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    await new_organization(container, "acme")

    line = failed(await cli(cli_env(container, tmp_path), "cds", "packs", *args))

    assert message in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_version": "0.9.0"}, "overlay is for doac 0.9.0"),
        (
            {"rules": {"active_bleeding": {"policy": "local", "source": "x", "severity": "WARN"}}},
            "may not lower the severity of 'active_bleeding'",
        ),
        ({"rules": {"no_such_rule": {"policy": "local", "source": "x"}}}, "unknown rule"),
        ({"rules": {"active_bleeding": {"policy": "label", "source": "x"}}}, "policy"),
    ],
    ids=["wrong-base", "weakens", "unknown-rule", "not-local"],
)
async def test_packs_activate_when_overlay_is_invalid_refuses_it(
    container: Container, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    await new_organization(container, "acme")
    path = overlay_file(tmp_path, OVERLAY | change)

    line = failed(
        await cli(
            cli_env(container, tmp_path),
            *("cds", "packs", "activate", "doac", "1.0.0", "--org", "acme", "--overlay", path),
        )
    )

    assert line.startswith("error: overlay rejected: ") and message in line


async def test_packs_activate_in_production_refuses_unapproved_pack(
    container: Container,
    tmp_path: Path,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = cli_env(container, tmp_path)
    await new_organization(container, "acme")
    cli_in_production(monkeypatch, container)
    activate = ("cds", "packs", "activate", "doac", "1.0.0", "--org", "acme")

    refused = failed(await cli(env, *activate))
    ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    accepted = ok(await cli(env, *activate))

    assert "refusing to activate doac 1.0.0 in production: unapproved" in refused
    assert "clinicos cds packs approve doac 1.0.0" in refused
    assert "activated doac 1.0.0 for acme" in accepted and "warning" not in accepted
    assert len(await _audits(owner_engine, "cds.pack.activate")) == 1


async def test_packs_activate_in_production_refuses_overlay_without_sign_off(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cli_env(container, tmp_path)
    await new_organization(container, "acme")
    ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    cli_in_production(monkeypatch, container)
    path = overlay_file(tmp_path, OVERLAY | {"reviewer": None, "approved_at": None})

    line = failed(
        await cli(
            env, "cds", "packs", "activate", "doac", "1.0.0", "--org", "acme", "--overlay", path
        )
    )

    assert "without its own sign-off" in line


async def test_packs_when_file_is_edited_after_approval_lose_approval(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cli_env(container, tmp_path)
    await new_organization(container, "acme")
    ok(await cli(env, "cds", "packs", "approve", "doac", "1.0.0", "--reviewer", "Dr. X"))
    shipped = catalogue.packaged_pack("doac", "1.0.0")
    text = shipped.text.replace('"severity": "WARN"', '"severity": "INFO"', 1)
    edited = replace(shipped, text=text, sha256=catalogue.sha256_text(text))
    monkeypatch.setattr(catalogue, "packaged_packs", lambda: {("doac", "1.0.0"): edited})

    (listing,) = await list_packs(container.uow)
    listed = ok(await cli(env, "cds", "packs", "list"))
    cli_in_production(monkeypatch, container)
    refused = failed(await cli(env, "cds", "packs", "activate", "doac", "1.0.0", "--org", "acme"))

    assert (listing.status, listing.content_sha256) == (APPROVAL_VOID, edited.sha256)
    assert APPROVAL_VOID in listed
    assert APPROVAL_VOID in refused
    monkeypatch.undo()
    (restored,) = await list_packs(container.uow)
    assert restored.status == APPROVED  # the approved content is back: so is its approval


async def test_activation_is_invisible_to_another_organization_on_postgresql(
    container: Container, tmp_path: Path
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and grants are PostgreSQL features")
    env = cli_env(container, tmp_path)
    acme = await new_organization(container, "acme")
    beta = await new_organization(container, "beta")
    ok(await cli(env, "cds", "packs", "activate", "doac", "1.0.0", "--org", "acme"))

    async with container.uow(beta) as uow:
        seen_by_beta = (await uow.session.scalars(select(CdsPackActivation))).all()
    async with container.uow() as uow:
        seen_without_tenant = (await uow.session.scalars(select(CdsPackActivation))).all()
    async with container.uow(acme) as uow:
        own = (await uow.session.scalars(select(CdsPackActivation))).all()

    assert (seen_by_beta, seen_without_tenant) == ([], [])
    assert [row.organization_id for row in own] == [acme]


async def test_catalogue_rows_cannot_be_deleted_by_the_app_role_on_postgresql(
    container: Container,
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("grants are a PostgreSQL feature")
    await list_packs(container.uow)

    async with container.uow() as uow:
        with pytest.raises(ProgrammingError, match="permission denied"):
            await uow.session.execute(text("DELETE FROM cds_rule_pack"))
