"""`clinicos fhir generate` and `clinicos fhir import`: a Synthea-shaped file is stored one
patient per transaction as a named member; a re-import stores nothing twice and says why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from clinicos import cli as cli_module
from clinicos.bootstrap import Container
from tests.support.records_fixtures import clinic

runner = CliRunner()


async def cli(*args: str) -> Result:
    """Run `clinicos <args>` in a thread (it starts its own event loop)."""
    return await asyncio.to_thread(lambda: runner.invoke(cli_module.app, list(args)))


async def patient_count(owner_engine: AsyncEngine, organization_id: str) -> int:
    async with owner_engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM patient WHERE organization_id = :org"),
            {"org": organization_id},
        )
    return int(count or 0)


async def test_generate_then_import_stores_each_patient_once_as_the_named_member(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_module, "_settings", lambda: container.settings)
    staff = await clinic(container, client, "import-cli", "clinician")
    org = staff["clinician"].member.organization_id
    bundle_file = tmp_path / "synthea.json"
    bundle_file.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000000a",
                        "resource": {"resourceType": "Organization", "name": "Hospital"},
                        "request": {"method": "POST", "url": "Organization"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    generated = tmp_path / "generated.json"

    made = await cli("fhir", "generate", "--out", str(generated), "--patients", "3", "--seed", "7")
    first = await cli(
        "fhir", "import", str(generated), str(bundle_file),
        "--organization", "import-cli", "--as", "clinician@import-cli.example.com",
    )  # fmt: skip
    again = await cli(
        "fhir", "import", str(generated),
        "--organization", "import-cli", "--as", "clinician@import-cli.example.com",
    )  # fmt: skip

    assert made.exit_code == 0, made.output
    assert first.exit_code == 0, (first.output, first.exception)
    assert "imported 3 patients" in first.output
    assert "skipped 1 Organization" in first.output
    assert await patient_count(owner_engine, org) == 3
    assert again.exit_code == 1
    assert "imported 0 patients" in again.output and "failed 3" in again.output
    assert "patient_mrn_taken" in again.output
    assert await patient_count(owner_engine, org) == 3
    async with owner_engine.connect() as conn:
        actors = (
            await conn.execute(
                text(
                    "SELECT DISTINCT actor_id FROM audit_event "
                    "WHERE organization_id = :org AND action = 'records.patient.create'"
                ),
                {"org": org},
            )
        ).all()
    assert [a.actor_id for a in actors] == [staff["clinician"].member.user_id]


async def test_import_as_someone_outside_the_organization_is_refused(
    container: Container, client: AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_settings", lambda: container.settings)
    await clinic(container, client, "import-a", "clinician")
    await clinic(container, client, "import-b", "clinician")
    generated = tmp_path / "one.json"
    await cli("fhir", "generate", "--out", str(generated), "--patients", "1")

    result = await cli(
        "fhir", "import", str(generated),
        "--organization", "import-a", "--as", "clinician@import-b.example.com",
    )  # fmt: skip

    assert result.exit_code != 0
    assert "no active member" in result.output
