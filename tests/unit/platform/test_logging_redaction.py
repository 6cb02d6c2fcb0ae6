"""PHI and secrets never reach a log line, at any depth of the event."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from clinicos.platform.observability.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    is_sensitive_key,
    redact_phi,
)


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "given_name",
        "familyName",
        "birth_date",
        "dob",
        "phone",
        "mobile_phone",
        "email",
        "password",
        "new_password",
        "access_token",
        "refreshToken",
        "note_text",
        "text",
        "address",
        "national_id",
        "mrn",
        "api_key",
        "mfa_code",
        "secret",
        "Authorization",
        "cookie",
        "reason",
    ],
)
def test_is_sensitive_key_for_phi_and_secrets_is_true(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "event",
        "request_id",
        "route",
        "status",
        "method",
        "duration_ms",
        "seq",
        "handler",
        "event_type",
        "organization_id",
        "worker",
        "job",
        "exc_type",
        "code",
    ],
)
def test_is_sensitive_key_for_technical_fields_is_false(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redact_phi_when_nested_replaces_values() -> None:
    event = {
        "event": "patient_registered",
        "patient": {"given_name": "Maria", "birth_date": "1950-01-01", "id": "p-1"},
        "contacts": [{"phone": "+59170000000"}, {"email": "m@example.org"}],
    }
    out = redact_phi(None, "info", event)
    dumped = json.dumps(out)
    for value in ("Maria", "1950-01-01", "+59170000000", "m@example.org"):
        assert value not in dumped
    assert out["patient"]["id"] == "p-1"
    assert out["patient"]["given_name"] == REDACTED


@given(st.text(min_size=1, max_size=40))
def test_redact_phi_for_any_value_under_name_key_hides_it(value: str) -> None:
    out = redact_phi(None, "info", {"event": "x", "name": value, "nested": {"email": value}})
    assert out["name"] == REDACTED and out["nested"]["email"] == REDACTED


def test_configured_logger_writes_json_without_phi() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    structlog.contextvars.bind_contextvars(request_id="rid-1")
    try:
        get_logger("test").info("login_failed", email="ana@example.org", password="hunter2")
    finally:
        structlog.contextvars.clear_contextvars()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "login_failed"
    assert line["request_id"] == "rid-1"
    assert line["email"] == REDACTED and line["password"] == REDACTED
    assert "ana@example.org" not in stream.getvalue() and "hunter2" not in stream.getvalue()


def test_stdlib_logger_extra_fields_never_reach_the_log() -> None:
    import logging

    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    logging.getLogger("thirdparty").warning("oops", extra={"phone": "+5511999999999"})
    assert "+5511999999999" not in stream.getvalue()


def test_exception_logged_without_its_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        raise ValueError("duplicate key (email)=(ana@example.org)")
    except ValueError as exc:
        get_logger("test").error("failed", exc_info=exc)
    out = stream.getvalue()
    assert "ana@example.org" not in out
    assert json.loads(out.strip().splitlines()[-1])["exc_type"] == "builtins.ValueError"


def test_database_driver_debug_lines_never_reach_the_log() -> None:
    import logging

    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    try:
        # aiosqlite logs each statement with its parameters at DEBUG.
        logging.getLogger("aiosqlite").debug("executing %s with %s", "INSERT", ("Maria Quispe",))
        logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    finally:
        configure_logging("INFO", json=True)
    assert "Maria Quispe" not in stream.getvalue()
    assert "SELECT 1" not in stream.getvalue()
