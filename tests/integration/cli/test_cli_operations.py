"""The operations CLI end to end: config check, db upgrade/current, guarded reset, serve refusal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinicos.cli import app
from tests.conftest import create_pg_database, drop_pg_database

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    url = create_pg_database("clinicos_cli")
    try:
        yield url
    finally:
        drop_pg_database(url)


def run(args: list[str], url: str, env: str = "development", stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app,
        args,
        input=stdin,
        env={"CLINICOS_DATABASE_URL": url, "CLINICOS_ENV": env},
    )


def test_db_current_on_empty_database_says_behind_and_exits_1(fresh_db_url: str) -> None:
    result = run(["db", "current"], fresh_db_url)
    assert result.exit_code == 1
    assert "behind" in result.output


def test_db_upgrade_then_current_is_current(fresh_db_url: str) -> None:
    upgraded = run(["db", "upgrade"], fresh_db_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert "environment marker: development" in upgraded.output
    result = run(["db", "current"], fresh_db_url)
    assert result.exit_code == 0
    assert "status:  current" in result.output


def test_db_reset_without_marker_refuses(fresh_db_url: str) -> None:
    result = run(["db", "reset", "--yes"], fresh_db_url)
    assert result.exit_code == 1
    assert "_environment_marker" in result.output


def test_db_reset_on_production_marked_database_refuses(fresh_db_url: str) -> None:
    assert run(["db", "upgrade"], fresh_db_url, env="test").exit_code == 0
    # Simulate a production database reached from a developer's shell: marker says production.
    from sqlalchemy import create_engine, text

    sync_url = fresh_db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE _environment_marker SET environment = 'production'"))
    engine.dispose()
    result = run(["db", "reset", "--yes"], fresh_db_url)
    assert result.exit_code == 1
    assert "production" in result.output


def test_db_reset_needs_typed_confirmation(fresh_db_url: str) -> None:
    assert run(["db", "upgrade"], fresh_db_url).exit_code == 0
    refused = run(["db", "reset"], fresh_db_url, stdin="yes\n")
    assert refused.exit_code == 1
    assert "not confirmed" in refused.output
    accepted = run(["db", "reset"], fresh_db_url, stdin="reset\n")
    assert accepted.exit_code == 0, accepted.output
    assert run(["db", "current"], fresh_db_url).exit_code == 0


def test_db_reset_with_yes_drops_data_and_remigrates(fresh_db_url: str) -> None:
    from sqlalchemy import create_engine, text

    assert run(["db", "upgrade"], fresh_db_url).exit_code == 0
    sync_url = fresh_db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job_schedule (name, next_run_at, run_count) "
                "VALUES ('x', CURRENT_TIMESTAMP, 0)"
            )
        )
    result = run(["db", "reset", "--yes"], fresh_db_url)
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_schedule")).scalar_one() == 0
        assert (
            conn.execute(text("SELECT environment FROM _environment_marker")).scalar_one()
            == "development"
        )
    engine.dispose()


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["config", "check"],
        env={
            "CLINICOS_DATABASE_URL": "postgresql://u:topsecretpw@h/d",
            "CLINICOS_SECRET_KEY": "k" * 40,
            "CLINICOS_ENV": "development",
        },
    )
    assert result.exit_code == 0, result.output
    assert "topsecretpw" not in result.output and "k" * 40 not in result.output
    assert "postgresql+psycopg://u:***@h/d" in result.output


def test_config_check_in_production_names_offending_variables() -> None:
    result = runner.invoke(
        app, ["config", "check"], env={"CLINICOS_ENV": "production", "CLINICOS_DEBUG": "1"}
    )
    assert result.exit_code == 1
    for var in ("CLINICOS_SECRET_KEY", "CLINICOS_DATABASE_URL", "CLINICOS_DEBUG"):
        assert var in result.output


@pytest.mark.slow
def test_serve_in_production_with_defaults_refuses_to_start(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
    env["CLINICOS_ENV"] = "production"
    proc = subprocess.run(
        [sys.executable, "-m", "clinicos.cli", "serve", "--port", "18999"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "CLINICOS_SECRET_KEY" in proc.stderr and "CLINICOS_DATABASE_URL" in proc.stderr
