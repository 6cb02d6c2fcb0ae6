"""Settings: development defaults that work, production refusal naming each variable."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

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
PHI_KEY_1 = base64.b64encode(bytes(range(32))).decode()
PHI_KEY_2 = base64.b64encode(bytes(range(32, 64))).decode()
BLIND_KEY = base64.b64encode(bytes(range(64, 96))).decode()
GOOD_PHI = {"keys": {"1": PHI_KEY_1}, "active_version": 1, "blind_index_key": BLIND_KEY}


def production(**overrides: object) -> Settings:
    """Load production settings that pass every rule except what ``overrides`` changes."""
    values: dict[str, object] = {
        "env": "production",
        "secret_key": GOOD_SECRET,
        "database_url": PROD_URL,
        "phi": GOOD_PHI,
    }
    return load_settings(**{**values, **overrides})


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
        "CLINICOS_PHI__KEYS",
        "CLINICOS_PHI__BLIND_INDEX_KEY",
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
    settings = production()
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


def test_phi_keys_from_env_json_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICOS_PHI__KEYS", json.dumps({"1": PHI_KEY_1, "2": PHI_KEY_2}))
    monkeypatch.setenv("CLINICOS_PHI__ACTIVE_VERSION", "2")
    monkeypatch.setenv("CLINICOS_PHI__BLIND_INDEX_KEY", BLIND_KEY)
    settings = load_settings()
    assert sorted(settings.phi.keys) == [1, 2]
    assert settings.phi.keys[2].get_secret_value() == PHI_KEY_2
    assert settings.phi.active_version == 2


def test_phi_key_version_below_one_is_invalid_in_every_environment() -> None:
    with pytest.raises(ValidationError):
        load_settings(phi={"keys": {"0": PHI_KEY_1}})


def test_production_with_derived_phi_keys_refuses_naming_both_variables() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={})
    assert {v for v, _ in info.value.problems} == {
        "CLINICOS_PHI__KEYS",
        "CLINICOS_PHI__BLIND_INDEX_KEY",
    }
    assert "derived from CLINICOS_SECRET_KEY" in str(info.value)


@pytest.mark.parametrize(
    "bad_key",
    [
        "not base64 at all!",
        base64.b64encode(b"x" * 16).decode(),  # AES-128-sized: too short
        base64.b64encode(b"x" * 33).decode(),
    ],
)
def test_production_with_malformed_phi_key_refuses(bad_key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={**GOOD_PHI, "keys": {"1": PHI_KEY_1, "2": bad_key}})
    assert info.value.problems[0][0] == "CLINICOS_PHI__KEYS"
    assert "version 2" in info.value.problems[0][1]
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__KEYS"]
    assert bad_key not in str(info.value)


def test_production_with_url_safe_unpadded_phi_key_starts() -> None:
    url_safe = base64.urlsafe_b64encode(bytes([0xFB] * 32)).decode().rstrip("=")
    settings = production(phi={**GOOD_PHI, "keys": {"1": url_safe}})
    assert settings.phi.keys[1].get_secret_value() == url_safe


def test_production_with_active_version_outside_keyring_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={**GOOD_PHI, "active_version": 2})
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__ACTIVE_VERSION"]
    assert "version 2 is not in CLINICOS_PHI__KEYS" in str(info.value)


def test_production_with_missing_blind_index_key_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={"keys": {"1": PHI_KEY_1}})
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__BLIND_INDEX_KEY"]


def test_production_with_malformed_blind_index_key_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={**GOOD_PHI, "blind_index_key": "c2hvcnQ="})
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__BLIND_INDEX_KEY"]
    assert "c2hvcnQ=" not in str(info.value)


def test_production_with_blind_index_key_equal_to_a_data_key_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(
            phi={
                **GOOD_PHI,
                "keys": {"1": PHI_KEY_1, "2": PHI_KEY_2},
                "active_version": 2,
                "blind_index_key": PHI_KEY_1,
            }
        )
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__BLIND_INDEX_KEY"]
    assert "version 1" in str(info.value) and PHI_KEY_1 not in str(info.value)


def test_production_with_two_versions_sharing_a_key_refuses() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(phi={**GOOD_PHI, "keys": {"1": PHI_KEY_1, "2": PHI_KEY_1}})
    assert [v for v, _ in info.value.problems] == ["CLINICOS_PHI__KEYS"]


def test_masked_view_hides_phi_keys() -> None:
    settings = Settings(phi={**GOOD_PHI, "keys": {"1": PHI_KEY_1, "2": PHI_KEY_2}})
    dumped = str(masked_view(settings))
    assert PHI_KEY_1 not in dumped and PHI_KEY_2 not in dumped and BLIND_KEY not in dumped
