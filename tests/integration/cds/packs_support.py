"""Helpers for the rule-pack lifecycle tests: the CLI in a worker thread, production settings,
the seed's "rivaroxaban CrCl < 30 -> BLOCK" overlay and a rivaroxaban order at CrCl 20."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from clinicos import cli as cli_module
from clinicos.bootstrap import Container
from clinicos.config import Environment, Settings
from tests.integration.cds.api_cases import AS_OF, AS_OF_TEXT

runner = CliRunner()
OVERLAY_SOURCE = "Acme anticoagulation committee 2026-10 (local policy)"
OVERLAY: dict[str, Any] = {
    "base_id": "doac",
    "base_version": "1.0.0",
    "version": "1.0.0+acme.1",
    "reviewer": "Dr A. Pharmacist",
    "approved_at": "2026-11-01T00:00:00Z",
    "rules": {
        "rivaroxaban_crcl_15_29_limited_data": {
            "policy": "local",
            "severity": "BLOCK",
            "source": OVERLAY_SOURCE,
        }
    },
}


def cli_env(container: Container, tmp_path: Path) -> dict[str, str | None]:
    assert container.settings.database_url is not None
    env: dict[str, str | None] = {
        "CLINICOS_DATABASE_URL": container.settings.database_url,
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(tmp_path / "cli-var"),
    }
    if container.engine.dialect.name == "postgresql":
        env["CLINICOS_DATABASE__APP_ROLE"] = "clinicos_app"
    return env


async def cli(env: dict[str, str | None], *args: str) -> Result:
    """Run `clinicos <args>` in a thread (the CLI starts its own event loop)."""
    return await asyncio.to_thread(lambda: runner.invoke(cli_module.app, list(args), env=env))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def failed(result: Result) -> str:
    """Exit 1 with one `error:` line and no traceback."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def production(settings: Settings) -> Settings:
    return settings.model_copy(update={"env": Environment.production})


def cli_in_production(monkeypatch: pytest.MonkeyPatch, container: Container) -> None:
    """The CLI's settings as in production (the environment check itself is config's job;
    production settings on SQLite would be refused before reaching the pack rules)."""
    prod = production(container.settings)
    monkeypatch.setattr(cli_module, "_settings", lambda: prod)


def overlay_file(tmp_path: Path, overlay: dict[str, Any] | None = None) -> str:
    path = tmp_path / "overlay.json"
    path.write_text(json.dumps(overlay or OVERLAY), encoding="utf-8")
    return str(path)


def rivaroxaban_at_crcl_20() -> dict[str, Any]:
    """60-year-old man, 72 kg, SCr 4.0 mg/dL a week ago: CrCl (80 x 72)/(72 x 4) = 20.0."""
    measured = AS_OF.date().replace(day=15).isoformat()
    return {
        "as_of": AS_OF_TEXT,
        "patient": {
            "age_years": 60,
            "sex": "male",
            "weight_kg": 72,
            "weight_measured_at": measured,
            "serum_creatinine_mg_dl": 4.0,
            "creatinine_measured_at": measured,
            "active_bleeding": False,
            "mechanical_valve": False,
            "pregnant": False,
            "other_medications": [],
        },
        "order": {"drug": "rivaroxaban", "dose_mg": 15, "frequency": "QD", "indication": "nvaf"},
    }
