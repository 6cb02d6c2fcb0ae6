"""Settings: development defaults that work, production refusal naming each variable."""

from __future__ import annotations

import pytest

from clinicos.config import (
    DEV_SECRET_KEY,
    ConfigurationError,
    Environment,
    Settings,
    load_settings,
    mask_url,
    masked_view,
    normalize_database_url,
)

PROD_URL = "postgresql://clinicos:s3cretpw@db.internal:5432/clinicos"
GOOD_SECRET = "x" * 48


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    for key in list(os.environ):
        if key.startswith("CLINICOS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_when_nothing_set_use_embedded_sqlite() -> None:
    settings = load_settings()
    assert settings.env is Environment.development
    assert settings.effective_database_url == "sqlite+aiosqlite:///var/clinicos.db"
    assert settings.http.max_body_bytes == 1024 * 1024


def test_env_vars_with_prefix_and_nesting_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICOS_DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("CLINICOS_HTTP__MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("CLINICOS_OUTBOX__MAX_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"
    assert settings.http.max_body_bytes == 2048
    assert settings.outbox.max_attempts == 3


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("CLINICOS_HTTP__PORT=9123\n")
    assert load_settings().http.port == 9123


def test_production_with_defaults_refuses_naming_each_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(env="production", debug=True)
    message = str(info.value)
    for var in ("CLINICOS_SECRET_KEY", "CLINICOS_DATABASE_URL", "CLINICOS_DEBUG"):
        assert var in message
    assert {v for v, _ in info.value.problems} == {
        "CLINICOS_SECRET_KEY",
        "CLINICOS_DATABASE_URL",
        "CLINICOS_DEBUG",
    }


def test_production_with_sqlite_url_refuses() -> None:
    with pytest.raises(ConfigurationError, match="CLINICOS_DATABASE_URL"):
        load_settings(env="production", secret_key=GOOD_SECRET, database_url="sqlite:///x.db")


def test_production_with_short_secret_refuses() -> None:
    with pytest.raises(ConfigurationError, match="CLINICOS_SECRET_KEY"):
        load_settings(env="production", secret_key="short", database_url=PROD_URL)


def test_production_with_debug_logging_refuses() -> None:
    with pytest.raises(ConfigurationError, match="CLINICOS_OBSERVABILITY__LOG_LEVEL"):
        load_settings(
            env="production",
            secret_key=GOOD_SECRET,
            database_url=PROD_URL,
            observability={"log_level": "debug"},
        )


def test_production_when_safe_starts() -> None:
    settings = load_settings(env="production", secret_key=GOOD_SECRET, database_url=PROD_URL)
    assert settings.env is Environment.production


def test_masked_view_hides_every_secret() -> None:
    settings = Settings(
        secret_key=GOOD_SECRET, database_url=PROD_URL, redis_url="redis://:pw@r:6379/0"
    )
    dumped = str(masked_view(settings))
    assert GOOD_SECRET not in dumped and "s3cretpw" not in dumped and ":pw@" not in dumped
    assert "db.internal" in dumped


def test_mask_url_keeps_user_and_host() -> None:
    assert mask_url("postgresql://u:p@h:1/d") == "postgresql://u:***@h:1/d"
    assert mask_url("sqlite+aiosqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"


def test_normalize_database_url_picks_async_drivers() -> None:
    assert normalize_database_url("postgresql://h/d").startswith("postgresql+psycopg://")
    assert normalize_database_url("sqlite:///a.db") == "sqlite+aiosqlite:///a.db"


def test_dev_secret_is_never_accepted_in_production() -> None:
    with pytest.raises(ConfigurationError):
        load_settings(env="production", secret_key=DEV_SECRET_KEY, database_url=PROD_URL)
