"""TOTP checks (one use per code, one step of drift each way) and recovery codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from clinicos.identity.mfa import (
    RECOVERY_CODE_COUNT,
    STEP_SECONDS,
    accepted_timestep,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    recovery_code_hash,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
CURRENT = int(NOW.timestamp()) // STEP_SECONDS


def code_at_step(step: int) -> str:
    return str(pyotp.TOTP(SECRET).at(step * STEP_SECONDS))


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        pytest.param(0, True, id="current-step"),
        pytest.param(-1, True, id="previous-step-drift"),
        pytest.param(1, True, id="next-step-drift"),
        pytest.param(-2, False, id="two-steps-old"),
        pytest.param(2, False, id="two-steps-ahead"),
    ],
)
def test_accepted_timestep_drift_window_is_one_step_each_way(offset: int, accepted: bool) -> None:
    # Act
    step = accepted_timestep(SECRET, code_at_step(CURRENT + offset), now=NOW, last_used=None)
    # Assert
    assert step == (CURRENT + offset if accepted else None)


def test_accepted_timestep_code_of_the_last_used_step_is_refused() -> None:
    # Act
    step = accepted_timestep(SECRET, code_at_step(CURRENT), now=NOW, last_used=CURRENT)
    # Assert
    assert step is None


def test_accepted_timestep_code_older_than_the_last_used_step_is_refused() -> None:
    # Act
    step = accepted_timestep(SECRET, code_at_step(CURRENT - 1), now=NOW, last_used=CURRENT)
    # Assert
    assert step is None


def test_accepted_timestep_code_newer_than_the_last_used_step_is_accepted() -> None:
    # Act
    step = accepted_timestep(SECRET, code_at_step(CURRENT + 1), now=NOW, last_used=CURRENT)
    # Assert
    assert step == CURRENT + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", " 123456", "ABCDEF"])
def test_accepted_timestep_malformed_code_is_refused(code: str) -> None:
    # Act / Assert
    assert accepted_timestep(SECRET, code, now=NOW, last_used=None) is None


def test_accepted_timestep_code_of_another_secret_is_refused() -> None:
    # Arrange
    other = str(pyotp.TOTP(new_totp_secret()).at(NOW))
    # Act
    step = accepted_timestep(SECRET, other, now=NOW, last_used=None)
    # Assert (a 1-in-a-million collision per step is possible; three steps are checked)
    assert step is None or pyotp.TOTP(SECRET).verify(other, for_time=NOW, valid_window=1)


def test_provisioning_uri_names_the_account_issuer_and_secret() -> None:
    # Act
    uri = provisioning_uri(SECRET, account="nurse@elalto.example", issuer="clinicos")
    # Assert
    assert uri.startswith("otpauth://totp/clinicos:nurse%40elalto.example?")
    assert f"secret={SECRET}" in uri
    assert "issuer=clinicos" in uri


def test_new_recovery_codes_are_ten_distinct_readable_codes() -> None:
    # Act
    codes = new_recovery_codes()
    # Assert
    assert len(codes) == RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        left, _, right = code.partition("-")
        assert len(left) == len(right) == 5
        assert not set(code) & set("01IO")  # no characters that read alike


def test_recovery_code_hash_ignores_case_and_spaces_but_not_content() -> None:
    # Act / Assert
    assert recovery_code_hash("ABCDE-FGHJK") == recovery_code_hash(" abcde-fghjk ")
    assert recovery_code_hash("ABCDE-FGHJK") == recovery_code_hash("ABC DE-FGHJK")
    assert recovery_code_hash("ABCDE-FGHJK") != recovery_code_hash("ABCDE-FGHJM")
    assert "ABCDE" not in recovery_code_hash("ABCDE-FGHJK")


def test_new_totp_secret_is_base32_and_random() -> None:
    # Act
    first, second = new_totp_secret(), new_totp_secret()
    # Assert
    assert first != second
    assert len(first) >= 32
    pyotp.TOTP(first).at(NOW + timedelta(seconds=1))  # usable by an authenticator
